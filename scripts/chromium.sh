#!/usr/bin/env bash
# Headless Chromium (Debian's `chromium`) for the HTML report's tests and benchmark
# (tests/tests/report/, benches/report.rs): they drive it through the DevTools protocol.
#
#   scripts/chromium.sh install     # apt-get install chromium (idempotent; needs root)
#   scripts/chromium.sh status      # exit 0 if a chromium binary is on the PATH
set -euo pipefail

_chromium_log() { echo "chromium.sh: $*" >&2; }

chromium_status() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

chromium_install() {
  if chromium_status; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    _chromium_log "must run as root to install chromium"
    return 1
  fi
  # refresh the package lists only if apt does not know the package yet
  if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    _chromium_log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || return 1
  fi
  _chromium_log "installing chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null || return 1
  chromium_status
}

case "${1:-}" in
  install) chromium_install ;;
  status) chromium_status ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
