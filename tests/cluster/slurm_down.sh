#!/usr/bin/env bash
# slurm_down.sh - stop the daemons started by slurm_up.sh, each by its PID file (never
# pkill/killall), in the order slurmd, slurmctld, slurmdbd, mariadbd, munged. Idempotent.
# Packages, configs and state stay on disk.
set -u
for pf in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid \
          /run/munge/munged.pid; do
  [ -s "$pf" ] || continue
  pid=$(cat "$pf")
  kill -0 "$pid" 2>/dev/null || { rm -f "$pf"; continue; }
  kill "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm_down.sh: pid $pid ($pf) ignored SIGTERM; sending SIGKILL"; kill -9 "$pid"
  fi
  echo "slurm_down.sh: stopped $pf (pid $pid)"
done
