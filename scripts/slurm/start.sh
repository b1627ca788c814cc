#!/usr/bin/env bash
# scripts/slurm/start.sh - install, configure and start a one-node Slurm cluster
# (slurmctld + slurmd + munged) on Debian 12 without systemd, as root: what
# tests/farm.rs and .ci/run use to test `anim farm` against a real Slurm.
# Idempotent: re-running leaves running daemons alone (restarts them only if
# the generated slurm.conf changed) and returns once the node is ready.
# Several callers at once (parallel tests) take turns on a lock file.
#
# Exit status: 0 ready; 3 the packages are missing and cannot be installed
# here (not root, or apt-get failed): callers may skip; anything else: a
# real failure (see the log lines on stderr).
#
# Everything it writes lives under $SLURM_BASE (default /tmp/anim-slurm),
# apart from what apt-get installs. Clients need SLURM_CONF exported:
#   source "$SLURM_BASE/env.sh"      # or: export SLURM_CONF=$SLURM_BASE/etc/slurm.conf
#
# Knobs (environment):
#   SLURM_BASE   state/config/log root            (default /tmp/anim-slurm)
#   SLURM_CPUS   CPUs advertised for the node     (default: nproc; may exceed
#                nproc to oversubscribe, thanks to SlurmdParameters=config_overrides)
#   SLURM_READY_TIMEOUT  seconds to wait for the node to become idle (default 60)
set -euo pipefail

BASE=${SLURM_BASE:-/tmp/anim-slurm}
CPUS=${SLURM_CPUS:-$(nproc)}
NODE=$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)
TIMEOUT=${SLURM_READY_TIMEOUT:-60}
CONF=$BASE/etc/slurm.conf
SOCK=$BASE/munge/munge.socket.2
export SLURM_CONF=$CONF

t_start=$(date +%s.%N)
log() { echo "[slurm/start.sh] $*" >&2; }
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# running PID: process exists and is not a zombie (PID 1 in some sandboxes
# reaps orphans late, so kill -0 alone is not enough)
running() {
  [ -n "$1" ] && [ -r /proc/"$1"/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status 2>/dev/null
}

# alive PIDFILE NAME: true if PIDFILE names a live process whose comm is NAME
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  running "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]
}

# ---------------------------------------------------------------- not root
if [ "$(id -u)" -ne 0 ]; then
  # the daemons run as root; a cluster a root caller started is usable by anyone
  if sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mixed|allocated'; then
    log "ready (started by root earlier)"; exit 0
  fi
  log "Slurm is not running and only root can install and start it here"
  exit 3
fi

# ---------------------------------------------------------------- lock
# parallel callers (one per test) wait for each other here
mkdir -p "$(dirname "$BASE")"
exec 9>"$BASE.lock"
flock -w 600 9 || { log "timed out waiting for $BASE.lock"; exit 1; }

# ---------------------------------------------------------------- install
if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] ||
   [ ! -x /usr/bin/sbatch ] || [ ! -x /usr/sbin/munged ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "Slurm is not installed and cannot be installed here (needs apt-get)"
    exit 3
  fi
  log "installing slurmctld slurmd slurm-client munge ..."
  # postinst scripts call invoke-rc.d: refused where policy-rc.d exits 101,
  # else the slurm init scripts exit 0 (no /etc/slurm/slurm.conf) and munge's
  # may start a system munged on /run/munge, which is harmless here
  if ! { apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           slurmctld slurmd slurm-client munge >/dev/null; }; then
    log "apt-get could not install slurmctld slurmd slurm-client munge"
    exit 3
  fi
  log "installed after $(elapsed)s"
fi

# ---------------------------------------------------------------- dirs
mkdir -p "$BASE"/etc "$BASE"/run "$BASE"/log "$BASE"/state/ctld "$BASE"/state/d "$BASE"/munge
# munged insists that its key and socket dirs belong to the user it runs as
# and are not group/other-writable
chown munge:munge "$BASE"/munge
chmod 0755 "$BASE"/munge

# ---------------------------------------------------------------- munge
KEY=$BASE/munge/munge.key
if [ ! -s "$KEY" ]; then
  if [ -s /etc/munge/munge.key ]; then
    cp /etc/munge/munge.key "$KEY"
  else
    dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
  fi
  chown munge:munge "$KEY"; chmod 0600 "$KEY"
fi

if alive "$BASE"/munge/munged.pid munged; then
  log "munged already running (pid $(cat "$BASE"/munge/munged.pid))"
else
  rm -f "$BASE"/munge/munged.pid
  # (started detached: see the daemons section below)
  # munged refuses to run as root with a key owned by munge: run it as munge
  runuser -u munge -- /usr/sbin/munged \
    --socket="$SOCK" --key-file="$KEY" \
    --pid-file="$BASE"/munge/munged.pid --log-file="$BASE"/munge/munged.log \
    --seed-file="$BASE"/munge/munged.seed </dev/null >/dev/null 2>&1 9>&-
  log "started munged"
fi
# the munge client itself retries a refused socket for several seconds,
# so bound the wait by time, not by attempts
munge_ok() { timeout 5 munge -S "$SOCK" -n 2>/dev/null | timeout 5 unmunge -S "$SOCK" >/dev/null 2>&1; }
deadline=$(( $(date +%s) + 15 ))
until munge_ok; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "munge not working"; tail -n 20 "$BASE"/munge/munged.log >&2; exit 1
  fi
  sleep 0.1
done

# ---------------------------------------------------------------- slurm.conf
new_conf=$(cat <<EOF
# generated by scripts/slurm/start.sh - one-node test cluster, no systemd, no cgroups
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$BASE/state/ctld
SlurmdSpoolDir=$BASE/state/d
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# lets 'sacct -c' list finished jobs without slurmdbd
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
# no mail client installed; silences "Configured MailProg is invalid"
MailProg=/bin/true
ReturnToService=2
# keep finished jobs visible to scontrol/squeue -t all for an hour
MinJobAge=3600
KillWait=5
# cancel jobs whose dependency can never be met (else they pend forever with
# Reason=DependencyNeverSatisfied). NB: belongs in DependencyParameters since
# 20.02; under SchedulerParameters it is silently ignored.
DependencyParameters=kill_invalid_depend
# schedule on every job event instead of at most every 3 s (default)
SchedulerParameters=batch_sched_delay=0
# allow CPUs= to differ from the hardware (oversubscription for light tasks)
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 9 / 10 )) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
conf_changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$CONF"
  conf_changed=1
fi
printf 'export SLURM_CONF=%s\n' "$CONF" > "$BASE"/env.sh

if [ "$conf_changed" = 1 ] && { alive "$BASE"/run/slurmctld.pid slurmctld || alive "$BASE"/run/slurmd.pid slurmd; }; then
  log "slurm.conf changed: restarting slurm daemons"
  for d in slurmd slurmctld; do
    if alive "$BASE"/run/$d.pid $d; then
      pid=$(cat "$BASE"/run/$d.pid); kill "$pid"
      for _ in $(seq 1 100); do running "$pid" || break; sleep 0.1; done
    fi
  done
fi

# ---------------------------------------------------------------- daemons
# (each started with </dev/null >/dev/null 2>&1 9>&-: a daemon must not keep the
# lock or the caller's output pipes open, or a caller reading this script's
# output would wait for the daemons to exit)
if alive "$BASE"/run/slurmctld.pid slurmctld; then
  log "slurmctld already running (pid $(cat "$BASE"/run/slurmctld.pid))"
else
  rm -f "$BASE"/run/slurmctld.pid
  /usr/sbin/slurmctld -f "$CONF" </dev/null >/dev/null 2>&1 9>&-    # daemonizes, writes its pid file
  log "started slurmctld"
fi
if alive "$BASE"/run/slurmd.pid slurmd; then
  log "slurmd already running (pid $(cat "$BASE"/run/slurmd.pid))"
else
  rm -f "$BASE"/run/slurmd.pid
  /usr/sbin/slurmd -f "$CONF" -N "$NODE" </dev/null >/dev/null 2>&1 9>&-
  log "started slurmd"
fi

# ---------------------------------------------------------------- ready?
deadline=$(( $(date +%s) + TIMEOUT ))
state=
while :; do
  state=$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)
  case $state in
    # after a restart slurmctld may report the saved state before slurmd is
    # back, so also require the local slurmd to answer
    idle|mixed|allocated|completing)
      scontrol show slurmd >/dev/null 2>&1 && break ;;
    down*|drain*|fail*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "node not ready after ${TIMEOUT}s (state='$state')"
    tail -n 20 "$BASE"/log/slurmctld.log "$BASE"/log/slurmd.log >&2 || true
    exit 1
  fi
  sleep 0.2
done
log "ready: node $NODE state=$state cpus=$CPUS after $(elapsed)s; run: source $BASE/env.sh"
