#!/usr/bin/env bash
# Local storage servers for flowlib's test suite, on loopback only.
#
#   S3    -> moto server (PyPI moto[server], in a venv)       real S3 protocol server
#   Azure -> Azurite blob service (npm azurite)               real Azure Blob protocol server
#   GCS   -> tests/support/gcs_xml_fake.py (stdlib Python)    a FAKE of the GCS XML API written
#            by us: no published emulator speaks the XML API that object_store's GCS client uses.
#            Treat GCS test results as "against a fake".
#
# Use it as a command:
#   scripts/services.sh install   # install moto + Azurite into the cache dir (idempotent)
#   scripts/services.sh start     # install if needed, start all three, create bucket/container
#   eval "$(scripts/services.sh env)"   # export the variables below into your shell
#   cargo test --workspace --all-features
#   scripts/services.sh stop
#   scripts/services.sh status
# or source it (scripts/test-all.sh does) and call services_install / services_start /
# services_stop / services_env; services_start also exports the variables in the caller.
#
# Variables exported after start (the Rust tests read exactly these):
#   FLOWLIB_TEST_S3=s3://flowlib-ci     + AWS_ENDPOINT AWS_ALLOW_HTTP=true AWS_REGION=us-east-1
#                                         AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
#                                         AWS_COPY_IF_NOT_EXISTS=multipart
#        read by AmazonS3Builder::from_env() (every AWS_* variable); conditional put
#        (PutMode::Create/Update) needs nothing extra: object_store's default
#        aws_conditional_put is "etag" and moto honours If-None-Match/If-Match.
#        AWS_COPY_IF_NOT_EXISTS=multipart enables copy_if_not_exists/rename_if_not_exists
#        (CreateMultipartUpload + UploadPartCopy + CompleteMultipartUpload with If-None-Match).
#   FLOWLIB_TEST_AZURE=az://flowlib-ci  + AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL
#                                         AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1 AZURE_ALLOW_HTTP=true
#        read by MicrosoftAzureBuilder::from_env() (AZURE_*); AZURITE_BLOB_STORAGE_URL is read
#        by build() itself when use_emulator is set (account devstoreaccount1, well-known key).
#   FLOWLIB_TEST_GCS=gs://flowlib-ci    + GOOGLE_SERVICE_ACCOUNT=<json path> GOOGLE_ALLOW_HTTP=true
#        read by GoogleCloudStorageBuilder::from_env() (GOOGLE_*). The JSON carries
#        gcs_base_url (the fake's URL), disable_oauth=true and empty client_email,
#        private_key, private_key_id (all three must be present). GOOGLE_ALLOW_HTTP is parsed
#        as ClientConfigKey::AllowHttp ("google_" prefix stripped -> "allow_http"); the GCS
#        builder already defaults to allow_http=true in object_store 0.14, it is explicit here.
# Build stores with e.g. AmazonS3Builder::from_env().with_url(std::env::var("FLOWLIB_TEST_S3")?):
# with_url() only takes the bucket/container from the URL (any path is ignored), so put a
# per-test prefix in with object_store::prefix::PrefixStore.
#
# Settings (environment, all optional):
#   FLOWLIB_SERVICES_DIR      cache + state dir          (default /tmp/flowlib-services)
#   FLOWLIB_MOTO_PORT         moto port                  (default 19000)
#   FLOWLIB_AZURITE_PORT      Azurite blob port          (default 10000)
#   FLOWLIB_GCS_PORT          GCS fake port              (default 14443)
#   FLOWLIB_SERVICES_BUCKET   bucket/container name      (default flowlib-ci)
#   FLOWLIB_SERVICES_TIMEOUT  seconds to wait for ready  (default 60)
#   FLOWLIB_PYTHON            python for venv + fake     (default python3)

FLOWLIB_SERVICES_DIR=${FLOWLIB_SERVICES_DIR:-/tmp/flowlib-services}
FLOWLIB_MOTO_PORT=${FLOWLIB_MOTO_PORT:-19000}
FLOWLIB_AZURITE_PORT=${FLOWLIB_AZURITE_PORT:-10000}
FLOWLIB_GCS_PORT=${FLOWLIB_GCS_PORT:-14443}
FLOWLIB_SERVICES_BUCKET=${FLOWLIB_SERVICES_BUCKET:-flowlib-ci}
FLOWLIB_SERVICES_TIMEOUT=${FLOWLIB_SERVICES_TIMEOUT:-60}
FLOWLIB_PYTHON=${FLOWLIB_PYTHON:-python3}

_SVC_MOTO_SPEC='moto[server]==5.2.5'
# The official Kubernetes schemas, to validate the Job manifests the Kubernetes executor makes
_SVC_K8S_VALIDATE_SPEC='kubernetes-validate==1.37.0'
_SVC_K8S_VENV="$FLOWLIB_SERVICES_DIR/k8s-venv"
# The official OpenTelemetry protobuf messages, for the OTLP/HTTP receiver the `otel` tests
# start (tests/support/otlp_receiver.py decodes ExportTraceServiceRequest with them)
_SVC_OTLP_SPEC='opentelemetry-proto==1.45.2'
_SVC_OTLP_VENV="$FLOWLIB_SERVICES_DIR/otlp-venv"
_SVC_AZURITE_SPEC='azurite@3.35.0'
_SVC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_SVC_MOTO_VENV="$FLOWLIB_SERVICES_DIR/moto-venv"
_SVC_AZURITE_DIR="$FLOWLIB_SERVICES_DIR/azurite"
_SVC_RUN="$FLOWLIB_SERVICES_DIR/run"
_SVC_NAMES="moto azurite gcs"

# ---------------------------------------------------------------- helpers
_svc_now_us() { echo "${EPOCHREALTIME/./}"; }
_svc_secs_since() { # $1 = start in microseconds -> "1.23"
  local d=$(( $(_svc_now_us) - $1 ))
  printf '%d.%02d' $((d / 1000000)) $(((d % 1000000) / 10000))
}
_svc_log() { echo "[services] $*" >&2; }

# HTTP status code of a GET (000 when nothing answers), 2 s cap per try
_svc_http_code() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
  else
    "$FLOWLIB_PYTHON" - "$1" <<'PY' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
  fi
}

_svc_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_svc_pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
_svc_pid_of() { [ -s "$_SVC_RUN/$1.pid" ] && cat "$_SVC_RUN/$1.pid"; }

# _svc_spawn NAME CMD... : start CMD in its own session (so stop can kill its whole
# process group), stdin closed, output to $_SVC_RUN/NAME.log, pid to $_SVC_RUN/NAME.pid
_svc_spawn() {
  local name=$1 pidfile="$_SVC_RUN/$1.pid"
  shift
  rm -f "$pidfile"
  # the child writes its own pid: `setsid` forks when started from an interactive shell,
  # so $! would not be the server's pid there
  # shellcheck disable=SC2016  # $$ / $@ are for the inner bash
  ( cd "$_SVC_RUN" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
      </dev/null >"$_SVC_RUN/$name.log" 2>&1 ) &
  for _ in $(seq 1 50); do [ -s "$pidfile" ] && return 0; sleep 0.05; done
  _svc_log "$name: could not spawn $*"
  return 1
}

# ---------------------------------------------------------------- install
_svc_install_moto() {
  local marker="$_SVC_MOTO_VENV/.flowlib-installed"
  if [ -x "$_SVC_MOTO_VENV/bin/moto_server" ] && [ "$(cat "$marker" 2>/dev/null)" = "$_SVC_MOTO_SPEC" ]; then
    echo "moto: already installed ($_SVC_MOTO_SPEC)"
    return 0
  fi
  rm -rf "$_SVC_MOTO_VENV"
  "$FLOWLIB_PYTHON" -m venv "$_SVC_MOTO_VENV" || return 1
  "$_SVC_MOTO_VENV/bin/pip" install -q --disable-pip-version-check --no-input "$_SVC_MOTO_SPEC" || return 1
  echo "$_SVC_MOTO_SPEC" >"$marker"
  echo "moto: installed ($_SVC_MOTO_SPEC)"
}

_svc_install_k8s_validate() {
  local marker="$_SVC_K8S_VENV/.flowlib-installed"
  if [ -x "$_SVC_K8S_VENV/bin/kubernetes-validate" ] && [ "$(cat "$marker" 2>/dev/null)" = "$_SVC_K8S_VALIDATE_SPEC" ]; then
    echo "kubernetes-validate: already installed ($_SVC_K8S_VALIDATE_SPEC)"
    return 0
  fi
  rm -rf "$_SVC_K8S_VENV"
  "$FLOWLIB_PYTHON" -m venv "$_SVC_K8S_VENV" || return 1
  "$_SVC_K8S_VENV/bin/pip" install -q --disable-pip-version-check --no-input "$_SVC_K8S_VALIDATE_SPEC" || return 1
  echo "$_SVC_K8S_VALIDATE_SPEC" >"$marker"
  echo "kubernetes-validate: installed ($_SVC_K8S_VALIDATE_SPEC)"
}

_svc_install_otlp() {
  local marker="$_SVC_OTLP_VENV/.flowlib-installed"
  if [ -x "$_SVC_OTLP_VENV/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "$_SVC_OTLP_SPEC" ]; then
    echo "opentelemetry-proto: already installed ($_SVC_OTLP_SPEC)"
    return 0
  fi
  rm -rf "$_SVC_OTLP_VENV"
  "$FLOWLIB_PYTHON" -m venv "$_SVC_OTLP_VENV" || return 1
  "$_SVC_OTLP_VENV/bin/pip" install -q --disable-pip-version-check --no-input "$_SVC_OTLP_SPEC" || return 1
  echo "$_SVC_OTLP_SPEC" >"$marker"
  echo "opentelemetry-proto: installed ($_SVC_OTLP_SPEC)"
}

_svc_install_azurite() {
  local marker="$_SVC_AZURITE_DIR/.flowlib-installed"
  if [ -x "$_SVC_AZURITE_DIR/node_modules/.bin/azurite-blob" ] && [ "$(cat "$marker" 2>/dev/null)" = "$_SVC_AZURITE_SPEC" ]; then
    echo "azurite: already installed ($_SVC_AZURITE_SPEC)"
    return 0
  fi
  rm -rf "$_SVC_AZURITE_DIR"
  mkdir -p "$_SVC_AZURITE_DIR" || return 1
  # the own package.json keeps npm from walking up to some unrelated project
  echo '{"name":"flowlib-test-services","private":true}' >"$_SVC_AZURITE_DIR/package.json"
  npm install --prefix "$_SVC_AZURITE_DIR" --no-audit --no-fund --no-update-notifier \
      --loglevel=error "$_SVC_AZURITE_SPEC" || return 1
  echo "$_SVC_AZURITE_SPEC" >"$marker"
  echo "azurite: installed ($_SVC_AZURITE_SPEC)"
}

# Install moto (venv), Azurite (npm), kubernetes-validate (venv) and opentelemetry-proto
# (venv) concurrently under
# $FLOWLIB_SERVICES_DIR.
# Skips what is already installed. The GCS fake needs nothing (stdlib only).
services_install() {
  local t0 rc=0 p_moto p_az p_kv p_otlp name
  t0=$(_svc_now_us)
  mkdir -p "$FLOWLIB_SERVICES_DIR/logs" || return 1
  command -v "$FLOWLIB_PYTHON" >/dev/null || { _svc_log "$FLOWLIB_PYTHON not found"; return 1; }
  command -v npm >/dev/null || { _svc_log "npm not found (Azurite needs Node.js + npm)"; return 1; }
  _svc_install_moto >"$FLOWLIB_SERVICES_DIR/logs/install-moto.log" 2>&1 &
  p_moto=$!
  _svc_install_azurite >"$FLOWLIB_SERVICES_DIR/logs/install-azurite.log" 2>&1 &
  p_az=$!
  _svc_install_k8s_validate >"$FLOWLIB_SERVICES_DIR/logs/install-k8s-validate.log" 2>&1 &
  p_kv=$!
  _svc_install_otlp >"$FLOWLIB_SERVICES_DIR/logs/install-otlp.log" 2>&1 &
  p_otlp=$!
  wait "$p_moto" || rc=1
  wait "$p_az" || rc=$((rc | 2))
  wait "$p_kv" || rc=$((rc | 4))
  wait "$p_otlp" || rc=$((rc | 8))
  for name in moto azurite k8s-validate otlp; do
    if { [ "$name" = moto ] && [ $((rc & 1)) -ne 0 ]; } || { [ "$name" = azurite ] && [ $((rc & 2)) -ne 0 ]; } ||
       { [ "$name" = k8s-validate ] && [ $((rc & 4)) -ne 0 ]; } ||
       { [ "$name" = otlp ] && [ $((rc & 8)) -ne 0 ]; }; then
      _svc_log "$name install FAILED; log:"
      tail -n 40 "$FLOWLIB_SERVICES_DIR/logs/install-$name.log" >&2
    else
      _svc_log "$(tail -n 1 "$FLOWLIB_SERVICES_DIR/logs/install-$name.log")"
    fi
  done
  _svc_log "install finished in $(_svc_secs_since "$t0")s (dir $FLOWLIB_SERVICES_DIR)"
  [ "$rc" -eq 0 ]
}

# ---------------------------------------------------------------- start / stop
_svc_running() { # all three up and the env file written
  local n
  [ -s "$_SVC_RUN/env.sh" ] || return 1
  for n in $_SVC_NAMES; do _svc_pid_alive "$(_svc_pid_of "$n")" || return 1; done
}

# _svc_wait NAME URL : wait until URL answers with any HTTP status (or 200 with $3=ok)
_svc_wait() {
  local name=$1 url=$2 want=${3:-any} t0 code pid deadline
  t0=$(_svc_now_us)
  deadline=$(( t0 + FLOWLIB_SERVICES_TIMEOUT * 1000000 ))
  pid=$(_svc_pid_of "$name")
  while :; do
    code=$(_svc_http_code "$url")
    if [ "$want" = any ] && [ "$code" != 000 ]; then break; fi
    if [ "$want" = ok ] && [ "$code" = 200 ]; then break; fi
    if ! _svc_pid_alive "$pid"; then
      _svc_log "$name exited during startup; log ($_SVC_RUN/$name.log):"
      cat "$_SVC_RUN/$name.log" >&2
      return 1
    fi
    if [ "$(_svc_now_us)" -gt "$deadline" ]; then
      _svc_log "$name not ready after ${FLOWLIB_SERVICES_TIMEOUT}s ($url gave $code); log:"
      cat "$_SVC_RUN/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  local hostport=${url#http://}
  _svc_log "$name ready on ${hostport%%/*} in $(_svc_secs_since "$t0")s"
}

_svc_write_env() {
  local b=$FLOWLIB_SERVICES_BUCKET sa="$_SVC_RUN/gcs-service-account.json"
  printf '{"gcs_base_url":"http://127.0.0.1:%s","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}\n' \
      "$FLOWLIB_GCS_PORT" >"$sa"
  cat >"$_SVC_RUN/env.sh" <<EOF
# flowlib test services (scripts/services.sh); loopback only
# variables that would redirect object_store elsewhere or clash with these are cleared
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN AWS_TOKEN AWS_DEFAULT_REGION \\
      AWS_VIRTUAL_HOSTED_STYLE_REQUEST AWS_S3_EXPRESS AWS_SKIP_SIGNATURE AWS_CONDITIONAL_PUT \\
      AWS_REQUEST_PAYER AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN \\
      AZURE_STORAGE_ACCOUNT_KEY AZURE_STORAGE_ACCESS_KEY AZURE_STORAGE_MASTER_KEY \\
      AZURE_STORAGE_SAS_KEY AZURE_STORAGE_SAS_TOKEN AZURE_STORAGE_TOKEN AZURE_SKIP_SIGNATURE \\
      GOOGLE_SERVICE_ACCOUNT_KEY GOOGLE_SERVICE_ACCOUNT_PATH SERVICE_ACCOUNT GOOGLE_BASE_URL \\
      GOOGLE_BEARER_TOKEN GOOGLE_SKIP_SIGNATURE
export FLOWLIB_TEST_S3='s3://$b'
export AWS_ENDPOINT='http://127.0.0.1:$FLOWLIB_MOTO_PORT'
export AWS_ALLOW_HTTP='true'
export AWS_REGION='us-east-1'
export AWS_ACCESS_KEY_ID='flowlib-test'
export AWS_SECRET_ACCESS_KEY='flowlib-test-secret'
export AWS_COPY_IF_NOT_EXISTS='multipart'
export FLOWLIB_TEST_AZURE='az://$b'
export AZURE_STORAGE_USE_EMULATOR='true'
export AZURITE_BLOB_STORAGE_URL='http://127.0.0.1:$FLOWLIB_AZURITE_PORT'
export AZURE_STORAGE_ACCOUNT_NAME='devstoreaccount1'
export AZURE_ALLOW_HTTP='true'
export FLOWLIB_TEST_GCS='gs://$b'
export GOOGLE_SERVICE_ACCOUNT='$sa'
export GOOGLE_ALLOW_HTTP='true'
EOF
}

# Start moto, Azurite and the GCS fake on 127.0.0.1, wait until ready, create the
# bucket/container, write $FLOWLIB_SERVICES_DIR/run/env.sh and export it here.
services_start() {
  local t0 n port
  t0=$(_svc_now_us)
  mkdir -p "$_SVC_RUN" || return 1
  if _svc_running; then
    _svc_log "already running (scripts/services.sh stop to restart)"
    # shellcheck disable=SC1091
    . "$_SVC_RUN/env.sh"
    return 0
  fi
  services_stop >/dev/null 2>&1 || true   # leftovers of a partial start
  [ -x "$_SVC_MOTO_VENV/bin/moto_server" ] && [ -x "$_SVC_AZURITE_DIR/node_modules/.bin/azurite-blob" ] || {
    _svc_log "not installed: run services_install (scripts/services.sh install) first"
    return 1
  }
  for port in "$FLOWLIB_MOTO_PORT" "$FLOWLIB_AZURITE_PORT" "$FLOWLIB_GCS_PORT"; do
    if _svc_port_in_use "$port"; then
      _svc_log "port $port on 127.0.0.1 is already in use; set FLOWLIB_MOTO_PORT / FLOWLIB_AZURITE_PORT / FLOWLIB_GCS_PORT"
      return 1
    fi
  done

  # -H 127.0.0.1: never listen beyond loopback
  _svc_spawn moto "$_SVC_MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$FLOWLIB_MOTO_PORT" || return 1
  # --disableTelemetry is REQUIRED (Azurite otherwise ships telemetry off the machine).
  # --inMemoryPersistence: nothing on disk (cannot be combined with --location).
  _svc_spawn azurite "$_SVC_AZURITE_DIR/node_modules/.bin/azurite-blob" \
      --blobHost 127.0.0.1 --blobPort "$FLOWLIB_AZURITE_PORT" --inMemoryPersistence \
      --skipApiVersionCheck --loose --disableTelemetry || { services_stop; return 1; }
  _svc_spawn gcs "$FLOWLIB_PYTHON" "$_SVC_ROOT/tests/support/gcs_xml_fake.py" \
      --host 127.0.0.1 --port "$FLOWLIB_GCS_PORT" --bucket "$FLOWLIB_SERVICES_BUCKET" || { services_stop; return 1; }

  # all three boot concurrently; wait for each in turn
  _svc_wait moto "http://127.0.0.1:$FLOWLIB_MOTO_PORT/moto-api/" ok &&
  _svc_wait azurite "http://127.0.0.1:$FLOWLIB_AZURITE_PORT/" any &&
  _svc_wait gcs "http://127.0.0.1:$FLOWLIB_GCS_PORT/_fake/health" ok || { services_stop; return 1; }

  # moto does not check SigV4 signatures: an unsigned PUT creates the bucket (us-east-1)
  "$FLOWLIB_PYTHON" - "http://127.0.0.1:$FLOWLIB_MOTO_PORT/$FLOWLIB_SERVICES_BUCKET" <<'PY' >&2 || {
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], method="PUT", data=b"")
try:
    urllib.request.urlopen(req, timeout=10).read()
except Exception as e:  # HTTPError included
    sys.exit(f"PUT {sys.argv[1]}: {e} {getattr(e, 'read', lambda: b'')().decode(errors='replace')}")
PY
    _svc_log "moto: creating bucket $FLOWLIB_SERVICES_BUCKET failed"
    services_stop
    return 1
  }
  # object_store cannot create containers: SharedKey-signed PUT ?restype=container
  "$FLOWLIB_PYTHON" "$_SVC_ROOT/tests/support/az_create_container.py" \
      "$FLOWLIB_SERVICES_BUCKET" "http://127.0.0.1:$FLOWLIB_AZURITE_PORT" >&2 || {
    _svc_log "azurite: creating container failed; log:"
    cat "$_SVC_RUN/azurite.log" >&2
    services_stop
    return 1
  }

  _svc_write_env
  # shellcheck disable=SC1091
  . "$_SVC_RUN/env.sh"
  _svc_log "all services up in $(_svc_secs_since "$t0")s: S3 $AWS_ENDPOINT, Azure $AZURITE_BLOB_STORAGE_URL, GCS (fake) http://127.0.0.1:$FLOWLIB_GCS_PORT; bucket/container $FLOWLIB_SERVICES_BUCKET"
}

# Stop what services_start started (by recorded pid / process group). Always returns 0.
services_stop() {
  local n pid
  for n in $_SVC_NAMES; do
    pid=$(_svc_pid_of "$n" 2>/dev/null || true)
    if _svc_pid_alive "$pid"; then
      # own session => pgid == pid; the group also covers any helper children
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do _svc_pid_alive "$pid" || break; sleep 0.1; done
      if _svc_pid_alive "$pid"; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      fi
      _svc_log "$n stopped (pid $pid)"
    fi
    rm -f "$_SVC_RUN/$n.pid"
  done
  rm -f "$_SVC_RUN/env.sh"
  return 0
}

# Print the export lines for a shell: eval "$(scripts/services.sh env)"
services_env() {
  if ! _svc_running; then
    _svc_log "services are not running (scripts/services.sh start)"
    return 1
  fi
  cat "$_SVC_RUN/env.sh"
}

services_status() {
  local n pid rc=0
  for n in $_SVC_NAMES; do
    pid=$(_svc_pid_of "$n" 2>/dev/null || true)
    if _svc_pid_alive "$pid"; then echo "$n: running (pid $pid, log $_SVC_RUN/$n.log)"
    else echo "$n: stopped"; rc=1; fi
  done
  return $rc
}

# ---------------------------------------------------------------- command line
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    install) services_install ;;
    start) services_install && services_start ;;
    stop) services_stop ;;
    restart) services_stop; services_install && services_start ;;
    env) services_env ;;
    status) services_status ;;
    *) echo "usage: $0 install|start|stop|restart|env|status" >&2; exit 2 ;;
  esac
fi
