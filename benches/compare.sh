#!/usr/bin/env bash
# flowlib's benchmarks, optionally next to Metaflow's equivalents, as one Markdown table.
#
#   benches/compare.sh                     # flowlib only
#   benches/compare.sh --with-metaflow     # also Metaflow 2.19.x (or METAFLOW_COMPARE=1)
#
# What it does:
#   1. builds flowlib once: `cargo build --release --example hello` and
#      `cargo bench --no-run` for the benches, then runs the built executables directly
#      (with the `--bench` flag cargo would pass: the same as `cargo bench --bench X -- ARGS`);
#   2. flowlib: `hello run` as a whole process (median and mean of 20 runs after 2
#      warm-ups, hyperfine if installed, else a small Python loop), the foreach bench at
#      N = 100, 1000 (median of 5) and 10000 (median of 3), the large-artifact bench at 1024 and
#      256 MiB, and the resume bench if benches/resume.rs exists;
#   3. with --with-metaflow: installs `metaflow==2.19.*` (pip picks the newest 2.19.x) into
#      a venv under $FLOWLIB_BENCH_DIR (reused when present) and runs the flows in
#      benches/metaflow/ (see its README.md for what each measures and how);
#   4. prints the table (benchmark | flowlib | Metaflow | ratio), the machine, the load
#      average and the date, and saves it as $FLOWLIB_BENCH_DIR/results-<date>.md.
#
# Environment:
#   FLOWLIB_BENCH_DIR   scratch space, venv and saved tables (default /tmp/flowlib-bench);
#                       the large-artifact runs need ~3 GiB of disk there
#   METAFLOW_COMPARE=1  same as --with-metaflow
#   METAFLOW_SPEC       pip requirement for Metaflow (default "metaflow==2.19.*")
#   BENCH_KEEP=1        keep the per-run scratch directory (logs, datastores)
#   BENCH_QUICK=1       smaller sizes, for trying the script out (not for BENCHMARKS.md)
#
# Metaflow runs fully local: METAFLOW_DEFAULT_METADATA=local, METAFLOW_DEFAULT_DATASTORE=local,
# a throw-away HOME/METAFLOW_HOME, METAFLOW_USER set, a scrubbed environment (env -i), and,
# where `unshare -n` works (root), no network namespace at all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MF_DIR="$ROOT/benches/metaflow"
TOOLS="$MF_DIR/bench_tools.py"
BENCH_DIR=${FLOWLIB_BENCH_DIR:-/tmp/flowlib-bench}
WITH_MF=${METAFLOW_COMPARE:-0}
METAFLOW_SPEC=${METAFLOW_SPEC:-metaflow==2.19.*}
QUICK=${BENCH_QUICK:-0}

for arg in "$@"; do
  case "$arg" in
    --with-metaflow) WITH_MF=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "compare.sh: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done
[[ "$WITH_MF" == 1 ]] || WITH_MF=0

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "compare.sh: needs python3" >&2; exit 1; }

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
RESULTS="$WORK/results.kv"
: >"$RESULTS"
cleanup() {
  local rc=$?
  if [[ "${BENCH_KEEP:-0}" == 1 || $rc != 0 ]]; then
    echo "compare.sh: scratch directory kept: $WORK" >&2
    # The datastores are big; the logs are what helps.
    rm -rf "$WORK"/*/ds "$WORK"/*/mf "$WORK"/*/la 2>/dev/null || true
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT

say() { printf '==> [compare] %s\n' "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime | sed 's/.*average[s]*: //'; }
LOADS=()
note_load() { LOADS+=("$1: $(loadavg)"); say "$1 (load average $(loadavg))"; }
put() { printf '%s=%s\n' "$1" "$2" >>"$RESULTS"; }
tool() { PYTHONDONTWRITEBYTECODE=1 "$PY" "$TOOLS" "$@"; }

if [[ "$QUICK" == 1 ]]; then
  HELLO_RUNS=5 FOREACH_NS=(100 1000) LARGE_MIBS=(64) MF_LARGE_MIB=64 MF_HELLO_RUNS=3
else
  HELLO_RUNS=20 FOREACH_NS=(100 1000 10000) LARGE_MIBS=(1024 256) MF_LARGE_MIB=1024 MF_HELLO_RUNS=5
fi
MF_FOREACH_N=100
MF_RESUME_N=100
FOREACH_REPS=5   # N=10000: 3

# Time a command run repeatedly in directory DIR, its output appended to LOG.
#   [ALLOW_FAIL=1] time_series KEY WARMUP RUNS DIR LOG -- CMD...
# Series of 5 or more runs use hyperfine if it is installed; everything else (and the
# fallback) uses bench_tools.py's loop, which also records CPU time and the process tree's
# peak RSS.
time_series() {
  local key=$1 warm=$2 runs=$3 dir=$4 log=$5
  [[ "$6" == -- ]] || { echo "time_series: expected --" >&2; exit 2; }
  shift 6
  if ((runs >= 5)) && command -v hyperfine >/dev/null && [[ "${BENCH_NO_HYPERFINE:-0}" != 1 ]]; then
    local cmdline extra=()
    cmdline=$(printf '%q ' "$@")
    [[ "${ALLOW_FAIL:-0}" == 1 ]] && extra=(--ignore-failure)
    (cd "$dir" && hyperfine -N "${extra[@]}" --warmup "$warm" --runs "$runs" \
      --export-json "$WORK/$key.json" --command-name "$key" "$cmdline" >>"$log" 2>&1)
    tool hyperfine-json --key "$key" --results "$RESULTS" "$WORK/$key.json"
    put "$key.warmup" "$warm"
  else
    local extra=()
    [[ "${ALLOW_FAIL:-0}" == 1 ]] && extra=(--allow-fail)
    tool time --key "$key" --results "$RESULTS" --warmup "$warm" --runs "$runs" --cwd "$dir" \
      --log "$log" "${extra[@]}" -- "$@"
  fi
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
note_load "start"

# ----------------------------------------------------------------------------- build
cd "$ROOT"
say "building flowlib (release example hello; benches with the bench profile)"
BENCHES=(foreach large_artifact)
# >>> resume bench slot: benches/resume.rs is added separately; built and run only if present.
HAVE_RESUME=0
if [[ -f "$ROOT/benches/resume.rs" ]]; then
  HAVE_RESUME=1
  BENCHES+=(resume)
fi
# <<< resume bench slot
cargo build --release --example hello >&2
bench_args=()
for b in "${BENCHES[@]}"; do bench_args+=(--bench "$b"); done
cargo bench --no-run "${bench_args[@]}" --message-format=json-render-diagnostics |
  tool cargo-exes >"$WORK/exes.txt"
declare -A EXE
while read -r name path; do EXE[$name]=$path; done <"$WORK/exes.txt"
for b in "${BENCHES[@]}"; do
  [[ -n "${EXE[$b]:-}" && -x "${EXE[$b]}" ]] || { echo "compare.sh: no executable for bench $b" >&2; exit 1; }
done
HELLO="$ROOT/target/release/examples/hello"
[[ -x "$HELLO" ]] || { echo "compare.sh: $HELLO missing after the build" >&2; exit 1; }
put flowlib.commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
put flowlib.dirty "$(git -C "$ROOT" status --porcelain -- flowlib flowlib-macros tests/support benches examples Cargo.toml 2>/dev/null | wc -l)"


# flowlib commands inherit no FLOWLIB_* settings from the caller (set here, not through an
# `env` wrapper, so that hello's timing holds no extra exec).
unset FLOWLIB_DATASTORE FLOWLIB_CACHE FLOWLIB_CACHE_DIR FLOWLIB_CACHE_MAX FLOWLIB_GPUS RUST_BACKTRACE

# ------------------------------------------------------------------------ flowlib: hello
note_load "flowlib: hello run x$HELLO_RUNS"
D="$WORK/fl-hello"
mkdir -p "$D"
FLOWLIB_CACHE_DIR="$D/.cache" time_series hello.fl 2 "$HELLO_RUNS" "$D" "$WORK/fl-hello.log" -- \
  "$HELLO" run

# ---------------------------------------------------------------------- flowlib: foreach
for n in "${FOREACH_NS[@]}"; do
  note_load "flowlib: foreach N=$n"
  D="$WORK/fl-foreach-$n"
  mkdir -p "$D"
  logs=()
  reps=$FOREACH_REPS
  ((n < 10000)) || reps=3
  for rep in $(seq "$reps"); do
    (cd "$D" && TMPDIR="$D" "${EXE[foreach]}" "$n" --bench) >"$D/out.$rep" 2>&1 ||
      { cat "$D/out.$rep" >&2; exit 1; }
    grep -h "foreach n=" "$D/out.$rep" >&2
    logs+=("$D/out.$rep")
  done
  tool foreach --key "foreach.fl.$n" --results "$RESULTS" "${logs[@]}"
done

# --------------------------------------------------------------- flowlib: large artifact
for mib in "${LARGE_MIBS[@]}"; do
  note_load "flowlib: large artifact $mib MiB"
  D="$WORK/fl-large-$mib"
  mkdir -p "$D/la"
  (cd "$D" && BENCH_DIR="$D/la" "${EXE[large_artifact]}" "$mib" --bench) >"$D/out" 2>&1 ||
    { cat "$D/out" >&2; exit 1; }
  cat "$D/out" >&2
  tool large --key "large.fl.$mib" --results "$RESULTS" "$D/out"
  rm -rf "$D/la"
done

# ----------------------------------------------------------------------- flowlib: resume
# >>> resume bench slot (benches/resume.rs, added separately): run only if it exists.
# = `cargo bench --bench resume` (already built above), at its default N = 1000 and at
# Metaflow's N = 100. bench_tools.py resume knows its output lines; should they change, it
# takes a line `RESULT resume_s=<seconds>`, else the first line mentioning "resume" with a
# time in s or ms.
if [[ "$HAVE_RESUME" == 1 ]]; then
  for n in 1000 "$MF_RESUME_N"; do
    key=resume.fl
    [[ "$n" == 1000 ]] || key=resume.fl$n
    note_load "flowlib: resume N=$n"
    D="$WORK/fl-resume-$n"
    mkdir -p "$D"
    (cd "$D" && TMPDIR="$D" BENCH_DIR="$D" "${EXE[resume]}" "$n" --bench) >"$D/out" 2>&1 ||
      { cat "$D/out" >&2; exit 1; }
    cat "$D/out" >&2
    tool resume --key "$key" --results "$RESULTS" "$D/out"
  done
else
  say "benches/resume.rs not present: flowlib resume bench skipped"
  put resume.fl.absent 1
fi
# <<< resume bench slot

# ----------------------------------------------------------------------------- Metaflow
put metaflow.enabled "$WITH_MF"
if [[ "$WITH_MF" == 1 ]]; then
  VENV="$BENCH_DIR/venv-metaflow"
  MFPY="$VENV/bin/python"
  if [[ -x "$MFPY" ]] && "$MFPY" -c 'import metaflow' 2>/dev/null; then
    say "reusing $VENV (metaflow $("$MFPY" -c 'import metaflow; print(metaflow.__version__)'))"
  else
    say "installing $METAFLOW_SPEC into $VENV"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$METAFLOW_SPEC" >&2
  fi
  MF_VERSION=$("$MFPY" -c 'import metaflow; print(metaflow.__version__)')
  put metaflow.version "$MF_VERSION"
  put metaflow.python "$("$MFPY" -c 'import platform; print(platform.python_version())')"
  case "$MF_VERSION" in
    2.19.*) ;;
    *) say "warning: Metaflow $MF_VERSION is not a 2.19.x release (METAFLOW_SPEC=$METAFLOW_SPEC)" ;;
  esac

  # No network for Metaflow where we can have that for sure.
  NONET=()
  if unshare -n true 2>/dev/null; then NONET=(unshare -n); fi
  put metaflow.nonet "${#NONET[@]}"

  # mf_cmd DIR -> the command prefix running Metaflow locally with a scrubbed environment
  # in DIR (its own HOME, config dir, datastore root and user).
  mf_cmd() {
    local dir=$1
    mkdir -p "$dir/home/.metaflowconfig" "$dir/mf"
    MF=("${NONET[@]}" env -i
      PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin"
      HOME="$dir/home" USER=bench LOGNAME=bench LANG=C.UTF-8 TMPDIR="$dir" PYTHONDONTWRITEBYTECODE=1
      METAFLOW_HOME="$dir/home/.metaflowconfig"
      METAFLOW_USER=bench
      METAFLOW_DEFAULT_METADATA=local
      METAFLOW_DEFAULT_DATASTORE=local
      METAFLOW_DATASTORE_SYSROOT_LOCAL="$dir/mf"
      "${EXTRA_ENV[@]}"
      "$MFPY")
  }
  EXTRA_ENV=()

  # -- the floor every Metaflow task pays: interpreter + import metaflow
  note_load "metaflow: python -c 'import metaflow' x5"
  D="$WORK/mf-import"
  mf_cmd "$D"
  time_series import.mf 1 5 "$D" "$WORK/mf-import.log" -- "${MF[@]}" -c 'import metaflow'

  # -- hello
  note_load "metaflow: hello_flow.py run x$MF_HELLO_RUNS"
  D="$WORK/mf-hello"
  mf_cmd "$D"
  time_series hello.mf 1 "$MF_HELLO_RUNS" "$D" "$WORK/mf-hello.log" -- \
    "${MF[@]}" "$MF_DIR/hello_flow.py" --no-pylint run
  grep -q "HELLO, WORLD! (10 letters)" "$WORK/mf-hello.log" ||
    { echo "compare.sh: hello_flow.py did not print its greeting" >&2; exit 1; }
  tool mf-tasks --key hello.mf --results "$RESULTS" "$WORK/mf-hello.log"

  # -- foreach (N=100) with --max-workers = nproc, the worker count flowlib's bench uses.
  # (Metaflow's default is 16 processes; on 2 cores that was ~30% slower in our runs.)
  note_load "metaflow: foreach_flow.py run --n $MF_FOREACH_N"
  D="$WORK/mf-foreach"
  mf_cmd "$D"
  time_series foreach.mf.$MF_FOREACH_N 0 1 "$D" "$WORK/mf-foreach.log" -- \
    "${MF[@]}" "$MF_DIR/foreach_flow.py" --no-pylint run --n "$MF_FOREACH_N" --max-workers "$(nproc)"
  put "foreach.mf.$MF_FOREACH_N.wall_s" "$(tool get --results "$RESULTS" "foreach.mf.$MF_FOREACH_N.median_s")"
  put "foreach.mf.$MF_FOREACH_N.tasks" "$((MF_FOREACH_N + 3))"
  put "foreach.mf.$MF_FOREACH_N.max_workers" "$(nproc)"
  grep -q "foreach n=$MF_FOREACH_N total=" "$WORK/mf-foreach.log" ||
    { echo "compare.sh: foreach_flow.py did not finish" >&2; exit 1; }
  tool mf-tasks --key "foreach.mf.$MF_FOREACH_N" --results "$RESULTS" "$WORK/mf-foreach.log"
  rm -rf "$D/mf"

  # -- large artifact
  note_load "metaflow: large_artifact_flow.py run --mib $MF_LARGE_MIB"
  D="$WORK/mf-large"
  EXTRA_ENV=(LARGE_ARTIFACT_REPORT="$D/report.jsonl")
  mf_cmd "$D"
  EXTRA_ENV=()
  time_series "large.mf.$MF_LARGE_MIB.run" 0 1 "$D" "$WORK/mf-large.log" -- \
    "${MF[@]}" "$MF_DIR/large_artifact_flow.py" --no-pylint run --mib "$MF_LARGE_MIB"
  put "large.mf.$MF_LARGE_MIB.wall_s" "$(tool get --results "$RESULTS" "large.mf.$MF_LARGE_MIB.run.median_s")"
  put "large.mf.$MF_LARGE_MIB.rss_tree_bytes" "$(tool get --results "$RESULTS" "large.mf.$MF_LARGE_MIB.run.maxrss_bytes")"
  tool mf-large --key "large.mf.$MF_LARGE_MIB" --results "$RESULTS" "$D/report.jsonl"
  cat "$D/report.jsonl" >&2
  rm -rf "$D/mf"

  # -- resume: a run whose join fails, then `resume`
  note_load "metaflow: resume_flow.py (N=$MF_RESUME_N)"
  D="$WORK/mf-resume"
  EXTRA_ENV=(RESUME_BENCH_FAIL=1)
  mf_cmd "$D"
  EXTRA_ENV=()
  ALLOW_FAIL=1 time_series resume.mf.fail 0 1 "$D" "$WORK/mf-resume-fail.log" -- \
    "${MF[@]}" "$MF_DIR/resume_flow.py" --no-pylint run --n "$MF_RESUME_N" --max-workers "$(nproc)"
  [[ "$(tool get --results "$RESULTS" resume.mf.fail.exit_codes)" != 0 ]] ||
    { echo "compare.sh: resume_flow.py's first run did not fail" >&2; exit 1; }
  mf_cmd "$D"
  time_series resume.mf.resume 0 1 "$D" "$WORK/mf-resume.log" -- \
    "${MF[@]}" "$MF_DIR/resume_flow.py" --no-pylint resume
  grep -q "resume n=$MF_RESUME_N total=" "$WORK/mf-resume.log" ||
    { echo "compare.sh: resume_flow.py resume did not finish" >&2; exit 1; }
  put resume.mf.n "$MF_RESUME_N"
  put resume.mf.fail_run_s "$(tool get --results "$RESULTS" resume.mf.fail.median_s)"
  put resume.mf.resume_s "$(tool get --results "$RESULTS" resume.mf.resume.median_s)"
  put resume.mf.cloned "$(grep -c 'Cloning previously run task' "$WORK/mf-resume.log" || true)"
  rm -rf "$D/mf"
fi
note_load "end"

# ------------------------------------------------------------------------------- table
cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || true)
[[ -n "$cpu_model" ]] || cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || echo "?")
OUT="$BENCH_DIR/results-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "### flowlib vs Metaflow — $START_DATE"
  echo
  echo "Machine: $(nproc) CPUs ($cpu_model), $mem RAM, $(uname -sr); $(rustc --version 2>/dev/null || echo rustc ?)."
  if [[ "$WITH_MF" == 1 ]]; then
    echo "Metaflow $(tool get --results "$RESULTS" metaflow.version) on Python $(tool get --results "$RESULTS" metaflow.python), local metadata + local datastore$([[ $(tool get --results "$RESULTS" metaflow.nonet) != 0 ]] && echo ", run without network (unshare -n)")."
  fi
  dirty=$(tool get --results "$RESULTS" flowlib.dirty)
  echo "flowlib at $(tool get --results "$RESULTS" flowlib.commit)$([[ "$dirty" != 0 ]] && echo " plus $dirty uncommitted changed files") (release build; benches with the bench profile)."
  [[ "$QUICK" == 1 ]] && echo "**BENCH_QUICK=1: reduced sizes, not for BENCHMARKS.md.**"
  echo
  tool table --results "$RESULTS"
  echo
  echo "Load average (1/5/15 min) when each part started — a busy machine makes every number worse:"
  echo
  for l in "${LOADS[@]}"; do echo "- $l"; done
  echo
  echo "Notes: hello is timed as a whole process in a fresh directory (its datastore grows over"
  echo "the runs). Metaflow's foreach is run at N=$MF_FOREACH_N only: every task is a Python"
  echo "subprocess, so N=10000 would take hours; its per-task cost is the whole run's wall time"
  echo "divided by its N+3 tasks, like flowlib's, with --max-workers $(nproc) (flowlib's worker"
  echo "count; Metaflow's default of 16 was slower here). Metaflow large-artifact times come from"
  echo "timestamps inside the flow (see benches/metaflow/README.md); peak RSS is each task"
  echo "process's getrusage(RUSAGE_SELF) at exit. flowlib's foreach time is mostly kernel time"
  echo "creating files in its datastore (under \$FLOWLIB_BENCH_DIR, here $(findmnt -no FSTYPE -T "$BENCH_DIR" 2>/dev/null || echo ?)), so it swings"
  echo "with other disk activity on the machine; compare the best run with the median."
} | tee "$OUT"
say "saved as $OUT"
