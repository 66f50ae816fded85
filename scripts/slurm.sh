#!/usr/bin/env bash
# Single-node Slurm (Debian bookworm slurm-wlm 22.05) on loopback, for flowlib's Slurm
# executor tests. No systemd: munged, slurmctld and slurmd are started directly. Needs root.
#
# Use it as a command:
#   scripts/slurm.sh install            # apt-get install slurmctld slurmd slurm-client munge (idempotent)
#   scripts/slurm.sh start              # write slurm.conf, start munge + slurmctld + slurmd, wait for idle
#   eval "$(scripts/slurm.sh env)"      # export FLOWLIB_TEST_SLURM=1 (only when the node is usable)
#   scripts/slurm.sh status             # sinfo; exit 0 if the node is usable, 1 otherwise
#   scripts/slurm.sh stop               # scancel all jobs, stop the daemons
# or source it and call slurm_install / slurm_start / slurm_stop / slurm_status / slurm_env.
#
# Cluster layout (see scripts/slurm-notes.md for the observed behaviour):
#   one node = this host (hostname -s, NodeAddr=127.0.0.1), CPUs=$(nproc),
#   RealMemory = 3/4 of MemTotal (MB)
#   partition debug  (Default=YES, MaxTime=INFINITE, no memory cap)
#   partition small  (MaxTime=${FLOWLIB_SLURM_SMALL_MAXTIME}, MaxMemPerNode=${FLOWLIB_SLURM_SMALL_MAXMEM} MB)
#   EnforcePartLimits=ALL: requests above a partition/node limit are refused by sbatch.
#   MinJobAge=3600: finished jobs stay visible to 'scontrol show job' for 1 h (no slurmdbd/sacct).
#   JobAcctGatherParams=OverMemoryKill polled every 1 s (no cgroups in the sandbox).
#   SchedulerParameters=batch_sched_delay=0: ~2 trivial jobs/s on 2 CPUs (default: 2 per 3 s).
#
# Settings (environment, all optional):
#   SLURM_RUN                      state/spool/log dir           (default /tmp/ci-slurm)
#   FLOWLIB_SLURM_SMALL_MAXMEM     small partition MaxMemPerNode (MB, default 512)
#   FLOWLIB_SLURM_SMALL_MAXTIME    small partition MaxTime       (default 10 = 10 minutes)
#   FLOWLIB_SLURM_TIMEOUT          seconds to wait for idle      (default 60)

SLURM_RUN=${SLURM_RUN:-/tmp/ci-slurm}
FLOWLIB_SLURM_SMALL_MAXMEM=${FLOWLIB_SLURM_SMALL_MAXMEM:-512}
FLOWLIB_SLURM_SMALL_MAXTIME=${FLOWLIB_SLURM_SMALL_MAXTIME:-10}
FLOWLIB_SLURM_TIMEOUT=${FLOWLIB_SLURM_TIMEOUT:-60}
_SLURM_CONF=/etc/slurm/slurm.conf
_SLURM_PKGS="slurmctld slurmd slurm-client munge"

_slurm_log() { echo "slurm.sh: $*" >&2; }

_slurm_need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    _slurm_log "must run as root"
    return 1
  fi
}

_slurm_installed() {
  local p
  for p in $_SLURM_PKGS; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || return 1
  done
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null
}

slurm_install() {
  _slurm_need_root || return 1
  if _slurm_installed; then
    return 0
  fi
  # refresh the package lists only if apt does not know the package yet
  local policy
  policy=$(apt-cache policy slurmctld 2>/dev/null || true)
  if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
    _slurm_log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || return 1
  fi
  _slurm_log "installing $_SLURM_PKGS"
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    $_SLURM_PKGS >/dev/null || return 1
  _slurm_installed
}

# slurm.conf on stdout
_slurm_conf() {
  local host mem cpus
  host=$(hostname -s)
  cpus=$(nproc)
  # advertise a bit less than the machine has (MB)
  mem=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 3 / 4 ))
  cat <<EOF
# written by flowlib scripts/slurm.sh -- do not edit, 'scripts/slurm.sh start' rewrites it
ClusterName=ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroup inside the sandbox: plain /proc process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SchedulerType=sched/backfill
# start queued batch jobs as soon as resources free up (default batch_sched_delay=3 s
# makes a 2-CPU node run only ~2 trivial jobs every 3 s)
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# keep finished jobs visible to 'scontrol show job' for 1 h
MinJobAge=3600
# without this a job with no --mem gets the whole node's memory and jobs serialize
DefMemPerCPU=1024
# reject impossible requests at submit time instead of leaving them PENDING forever
EnforcePartLimits=ALL
# no cgroups in the sandbox: let jobacct_gather kill jobs that exceed --mem (polled every 1 s)
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${SLURM_RUN}/log/jobcomp.txt
StateSaveLocation=${SLURM_RUN}/state
SlurmdSpoolDir=${SLURM_RUN}/spool
SlurmctldPidFile=${SLURM_RUN}/slurmctld.pid
SlurmdPidFile=${SLURM_RUN}/slurmd.pid
SlurmctldLogFile=${SLURM_RUN}/log/slurmctld.log
SlurmdLogFile=${SLURM_RUN}/log/slurmd.log
# bind daemons to the (loopback) address the host name resolves to, not 0.0.0.0
CommunicationParameters=NoInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
PartitionName=small Nodes=${host} Default=NO MaxTime=${FLOWLIB_SLURM_SMALL_MAXTIME} MaxMemPerNode=${FLOWLIB_SLURM_SMALL_MAXMEM} State=UP
EOF
}

_slurm_pid_alive() {
  local f=$SLURM_RUN/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# node state as sinfo reports it (idle, mixed, allocated, down*, ...); empty if unreachable
_slurm_node_state() {
  timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -1 || true
}

_slurm_usable() {
  _slurm_pid_alive slurmctld && _slurm_pid_alive slurmd || return 1
  case "$(_slurm_node_state)" in
    idle | idle~ | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
  esac
}

_slurm_start_munge() {
  # munge: key is generated by the package postinst; make sure it exists
  [ -s /etc/munge/munge.key ] || mungekey --create
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
  fi
  for _ in $(seq 1 50); do
    munge -n >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  _slurm_log "munged did not start"
  tail -20 /var/log/munge/munged.log >&2 2>/dev/null || true
  return 1
}

_slurm_fail() {
  _slurm_log "$*"
  local f
  for f in "$SLURM_RUN"/log/slurmctld.log "$SLURM_RUN"/log/slurmd.log; do
    if [ -f "$f" ]; then
      echo "---- tail $f" >&2
      tail -20 "$f" >&2
    fi
  done
  return 1
}

slurm_start() {
  _slurm_need_root || return 1
  _slurm_installed || { _slurm_log "slurm is not installed (scripts/slurm.sh install)"; return 1; }
  local new
  new=$(_slurm_conf)
  if _slurm_usable && [ -f "$_SLURM_CONF" ] && [ "$new" = "$(cat "$_SLURM_CONF")" ]; then
    echo "slurm already running ($(_slurm_node_state))"
    return 0
  fi
  # running with another config (or half-started): restart from a clean slate
  if _slurm_pid_alive slurmctld || _slurm_pid_alive slurmd; then
    _slurm_log "restarting daemons (config changed or node not usable)"
    _slurm_stop_daemons
  fi
  mkdir -p "$SLURM_RUN"/state "$SLURM_RUN"/spool "$SLURM_RUN"/log /etc/slurm
  chown -R slurm:slurm "$SLURM_RUN"
  printf '%s\n' "$new" >"$_SLURM_CONF"
  _slurm_start_munge || return 1
  # both daemonize; slurmctld runs as SlurmUser, slurmd as root
  /usr/sbin/slurmctld || { _slurm_fail "slurmctld failed to start"; return 1; }
  /usr/sbin/slurmd || { _slurm_fail "slurmd failed to start"; return 1; }
  # wait until the node is idle (usually < 2 s)
  local st="" n=$((FLOWLIB_SLURM_TIMEOUT * 2))
  for _ in $(seq 1 "$n"); do
    st=$(_slurm_node_state)
    case "$st" in
      idle | idle~ | mixed)
        echo "slurm ready (node $(hostname -s) ${st}, partitions debug*, small)"
        return 0
        ;;
    esac
    sleep 0.5
  done
  _slurm_fail "slurm not ready after ${FLOWLIB_SLURM_TIMEOUT}s: node state='${st}'"
}

_slurm_wait_gone() {
  local name=$1 pid=$2
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  _slurm_log "$name (pid $pid) did not exit, sending SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
}

_slurm_stop_daemons() {
  local f pid
  for f in slurmd slurmctld; do
    if _slurm_pid_alive "$f"; then
      pid=$(cat "$SLURM_RUN/$f.pid")
      kill "$pid" 2>/dev/null || true
      _slurm_wait_gone "$f" "$pid"
    fi
    rm -f "$SLURM_RUN/$f.pid"
  done
}

slurm_stop() {
  if _slurm_pid_alive slurmctld; then
    timeout 10 scancel --full --user=root 2>/dev/null || true
    timeout 10 scancel --full --state=PENDING 2>/dev/null || true
    sleep 1
  fi
  _slurm_stop_daemons
  if [ -s /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  fi
  echo "slurm stopped"
  return 0
}

slurm_status() {
  if ! _slurm_pid_alive slurmctld; then
    echo "slurmctld: not running"
    return 1
  fi
  if ! _slurm_pid_alive slurmd; then
    echo "slurmd: not running"
  fi
  timeout 10 sinfo || true
  _slurm_usable
}

# Print the export lines for a shell: eval "$(scripts/slurm.sh env)"
slurm_env() {
  if ! _slurm_usable; then
    _slurm_log "slurm is not running/usable (scripts/slurm.sh start)"
    return 1
  fi
  echo "export FLOWLIB_TEST_SLURM=1"
  echo "export FLOWLIB_TEST_SLURM_PARTITION_SMALL=small"
  echo "export FLOWLIB_TEST_SLURM_SMALL_MAXMEM=${FLOWLIB_SLURM_SMALL_MAXMEM}"
}

# ---------------------------------------------------------------- command line
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    install) slurm_install ;;
    start) slurm_start ;;
    stop) slurm_stop ;;
    restart) slurm_stop; slurm_start ;;
    env) slurm_env ;;
    status) slurm_status ;;
    *) echo "usage: $0 install|start|stop|restart|status|env" >&2; exit 2 ;;
  esac
fi
