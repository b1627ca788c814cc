#!/usr/bin/env bash
# scripts/slurm/stop.sh - stop the one-node cluster started by scripts/slurm/start.sh.
# Cancels remaining jobs, then ends slurmd, slurmctld and munged by their pid
# files (only if the pid still belongs to that daemon). Idempotent.
#   --purge   also delete job state, logs and config under $SLURM_BASE
set -uo pipefail

BASE=${SLURM_BASE:-/tmp/anim-slurm}
export SLURM_CONF=$BASE/etc/slurm.conf
log() { echo "[slurm/stop.sh] $*" >&2; }

# running PID: process exists and is not a zombie (PID 1 in some sandboxes
# reaps orphans late, so kill -0 alone is not enough)
running() {
  [ -n "$1" ] && [ -r /proc/"$1"/status ] && ! grep -q '^State:[[:space:]]*Z' /proc/"$1"/status 2>/dev/null
}

alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  running "$pid" && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]
}

# stop PIDFILE NAME: SIGTERM, wait up to 10 s, then SIGKILL
stop() {
  local pid
  if ! alive "$1" "$2"; then log "$2 not running"; rm -f "$1"; return 0; fi
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then log "$2 ($pid) ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$1"
  log "stopped $2 (pid $pid)"
}

# slurmstepd processes outlive slurmd, so cancel jobs while slurmctld is up
if alive "$BASE"/run/slurmctld.pid slurmctld; then
  jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 1 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
fi

stop "$BASE"/run/slurmd.pid slurmd
stop "$BASE"/run/slurmctld.pid slurmctld
stop "$BASE"/munge/munged.pid munged

if [ "${1:-}" = "--purge" ]; then
  rm -rf "$BASE"/state "$BASE"/log "$BASE"/run "$BASE"/etc "$BASE"/env.sh "$BASE"/munge
  log "purged state under $BASE"
fi
