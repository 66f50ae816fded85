#!/usr/bin/env bash
# The validators the Argo export tests (tests/tests/argo/) check exported workflows with.
# No Argo or Kubernetes can run on these machines, so an exported WorkflowTemplate is
# validated against Argo's own models and schema, and executed by the in-test interpreter
# (tests/support/argo/argo_run.py, stdlib Python plus PyYAML):
#
#   hera (PyPI)                             Argo's models as pydantic classes: the export must
#                                           parse as hera.workflows.models.WorkflowTemplate
#   @kubernetes-models/argo-workflows (npm) validators compiled from Argo's OpenAPI/JSON
#                                           schema (types, required fields, oneOf)
#
#   scripts/argo-tools.sh install   # into $FLOWLIB_SERVICES_DIR (idempotent, about 20 s)
#   scripts/argo-tools.sh status    # exit 0 when both are installed
#
# Settings: FLOWLIB_SERVICES_DIR (default /tmp/flowlib-services), FLOWLIB_PYTHON (python3).
set -euo pipefail

FLOWLIB_SERVICES_DIR=${FLOWLIB_SERVICES_DIR:-/tmp/flowlib-services}
FLOWLIB_PYTHON=${FLOWLIB_PYTHON:-python3}
PY_SPEC='hera==7.1.0 PyYAML==6.0.4'
NPM_SPEC='@kubernetes-models/argo-workflows@2.0.0'
VENV="$FLOWLIB_SERVICES_DIR/argo-venv"
NPM_DIR="$FLOWLIB_SERVICES_DIR/argo-npm"

installed() {
  [ "$(cat "$VENV/.flowlib-installed" 2>/dev/null)" = "$PY_SPEC" ] &&
    [ "$(cat "$NPM_DIR/.flowlib-installed" 2>/dev/null)" = "$NPM_SPEC" ]
}

install() {
  if installed; then
    echo "argo validators: already installed ($PY_SPEC; $NPM_SPEC)"
    return 0
  fi
  mkdir -p "$FLOWLIB_SERVICES_DIR"
  if [ "$(cat "$VENV/.flowlib-installed" 2>/dev/null)" != "$PY_SPEC" ]; then
    rm -rf "$VENV"
    "$FLOWLIB_PYTHON" -m venv "$VENV"
    # shellcheck disable=SC2086 # two specs
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-input $PY_SPEC
    echo "$PY_SPEC" >"$VENV/.flowlib-installed"
  fi
  if [ "$(cat "$NPM_DIR/.flowlib-installed" 2>/dev/null)" != "$NPM_SPEC" ]; then
    rm -rf "$NPM_DIR"
    mkdir -p "$NPM_DIR"
    # the own package.json keeps npm from walking up to some unrelated project
    echo '{"name":"flowlib-argo-validators","private":true}' >"$NPM_DIR/package.json"
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --no-update-notifier \
      --loglevel=error "$NPM_SPEC"
    echo "$NPM_SPEC" >"$NPM_DIR/.flowlib-installed"
  fi
  echo "argo validators: installed ($PY_SPEC; $NPM_SPEC) under $FLOWLIB_SERVICES_DIR"
}

case "${1:-}" in
  install) install ;;
  status) installed ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
