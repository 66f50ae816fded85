#!/usr/bin/env bash
# The whole flowlib test suite in one command, against real local protocol servers:
#   S3 -> moto, Azure -> Azurite, GCS -> our fake of the GCS XML API (tests/support/gcs_xml_fake.py)
# (see scripts/services.sh). Installs them on first use (~45 s, cached under
# $FLOWLIB_SERVICES_DIR, default /tmp/flowlib-services), starts them on loopback, builds the
# test binaries once, runs `cargo test --workspace --all-features --no-fail-fast` (doctests
# included; every binary runs even if one fails, and a per-binary summary is printed) and
# stops the servers again, whatever happens.
#
#   scripts/test-all.sh                 # everything
#   scripts/test-all.sh cloud           # extra arguments go to `cargo test` (here: a name filter)
#   scripts/test-all.sh -- --nocapture
#
# .ci/run calls this. Needs: cargo, python3 (with venv), node + npm; for the Slurm tests root
# and apt (scripts/slurm.sh installs slurmctld, slurmd, slurm-client and munge, ~15 s;
# scripts/chromium.sh installs chromium for the HTML report's tests).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"

export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

_T_START=${EPOCHREALTIME/./}
_T_SUMMARY=()
_phase_start() {
  _PHASE=$1
  _PHASE_T0=${EPOCHREALTIME/./}
  echo "==> [test-all] $1"
}
_phase_end() {
  local d=$(( ${EPOCHREALTIME/./} - _PHASE_T0 ))
  local s
  s=$(printf '%d.%01ds' $((d / 1000000)) $(((d % 1000000) / 100000)))
  _T_SUMMARY+=("$(printf '%-34s %8s' "$_PHASE" "$s")")
  echo "==> [test-all] $_PHASE: done in $s"
  _PHASE=""
}
_finish() {
  local rc=$?
  set +e
  if [ -n "${_PHASE:-}" ]; then
    _T_SUMMARY+=("$(printf '%-34s %8s' "$_PHASE" "FAILED")")
  fi
  if [ "${_KEEP_SERVICES:-0}" = 1 ]; then
    echo "==> [test-all] leaving the services you started running (scripts/services.sh stop)"
  else
    services_stop
  fi
  local d=$(( ${EPOCHREALTIME/./} - _T_START ))
  echo "==> [test-all] phase times:"
  printf '      %s\n' "${_T_SUMMARY[@]}"
  echo "==> [test-all] total $((d / 1000000))s, exit $rc"
  exit "$rc"
}
trap _finish EXIT
trap 'exit 130' INT   # make sure the EXIT trap (which stops the servers) runs on signals
trap 'exit 143' TERM

_phase_start "install services"
services_install
_phase_end

_phase_start "start services"
# services a developer started with `scripts/services.sh start` are reused and left running
if _svc_running; then _KEEP_SERVICES=1; fi
services_start
_phase_end

_phase_start "install and start Slurm"
# A real single-node Slurm for the Slurm executor's tests (scripts/slurm.sh; needs root and
# the Debian registry). In CI (FLOWLIB_CI=1, set by .ci/run) it must come up; elsewhere the
# Slurm tests skip, loudly, when it cannot.
if { [ "$(id -u)" = 0 ] && "$ROOT/scripts/slurm.sh" install && "$ROOT/scripts/slurm.sh" start; } ||
   "$ROOT/scripts/slurm.sh" status >/dev/null 2>&1; then
  eval "$("$ROOT/scripts/slurm.sh" env)"
elif [ "${FLOWLIB_CI:-0}" = 1 ]; then
  echo "==> [test-all] Slurm could not be installed or started, and CI requires it" >&2
  exit 1
else
  echo "==> [test-all] WARNING: no Slurm here (not root, or no Debian registry): the Slurm tests will skip"
fi
_phase_end

_phase_start "install Chromium"
# Debian's chromium for the HTML report's tests (scripts/chromium.sh, ~1 min the first
# time): in CI (FLOWLIB_CI=1) it must install; elsewhere those tests skip, loudly, without it.
if ! "$ROOT/scripts/chromium.sh" install; then
  if [ "${FLOWLIB_CI:-0}" = 1 ]; then
    echo "==> [test-all] Chromium could not be installed, and CI requires it" >&2
    exit 1
  fi
  echo "==> [test-all] WARNING: no Chromium (not root, or no Debian registry): the report's browser tests will skip"
fi
_phase_end

_phase_start "install Argo validators"
# hera (PyPI) and Argo's schema validators (npm) for the `export argo` tests
# (scripts/argo-tools.sh): in CI (FLOWLIB_CI=1) they must install; elsewhere those tests
# skip, loudly, without them.
if ! "$ROOT/scripts/argo-tools.sh" install; then
  if [ "${FLOWLIB_CI:-0}" = 1 ]; then
    echo "==> [test-all] the Argo validators could not be installed, and CI requires them" >&2
    exit 1
  fi
  echo "==> [test-all] WARNING: the Argo validators could not be installed: the Argo export tests will skip"
fi
_phase_end

_phase_start "build tests (cargo test --no-run)"
cargo test --workspace --all-features --no-run
_phase_end

_phase_start "run tests (cargo test --no-fail-fast)"
# Every test binary runs even when one fails, and the summary below names each binary's
# result, so one failure never hides the rest.
_LOG=$(mktemp)
set +e
cargo test --workspace --all-features --no-fail-fast "$@" 2>&1 | tee "$_LOG"
_RC=${PIPESTATUS[0]}
set -e
echo "==> [test-all] per test binary:"
awk '/^ *(Running|Doc-tests) / { bin = $0; sub(/^ */, "", bin)
       # `Running tests/main.rs (target/debug/deps/integration-<hash>)` -> `integration: tests/main.rs`
       if (match(bin, /\(.*\)/)) { exe = substr(bin, RSTART + 1, RLENGTH - 2); sub(/.*\//, "", exe)
         sub(/-[0-9a-f]+$/, "", exe); sub(/ \(.*$/, "", bin); sub(/^Running /, "", bin); bin = exe ": " bin } }
     /^test result:/ { printf "      %-58s %s\n", bin, $0 }' "$_LOG"
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "==> [test-all] all binaries: %d passed, %d failed, %d ignored\n", p, f, i }' "$_LOG"
rm -f "$_LOG"
if [ "$_RC" -ne 0 ]; then exit "$_RC"; fi
_phase_end
