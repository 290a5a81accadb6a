#!/usr/bin/env bash
# Stops the cluster that slurm-up.sh started and removes its folder. Safe to run twice, and after a
# half-finished slurm-up.sh: each step does what it can and the script always exits 0 when nothing
# of the cluster is left running.
set -uo pipefail

DIR="${MC_SLURM_DIR:-/tmp/modelcollapse-slurm}"

stop() {  # stop the daemon whose pid file is $1, waiting up to 10 s before SIGKILL
    local pid
    [ -f "$1" ] || return 0
    pid="$(cat "$1")"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

if [ -f "$DIR/slurm.conf" ]; then
    # Cancel what is left so that no job step outlives the cluster.
    SLURM_CONF="$DIR/slurm.conf" scancel --full --quiet --user=root 2>/dev/null || true
fi
stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"
if [ -f "$DIR/munged.ours" ]; then
    munged --stop >/dev/null 2>&1 || true
fi
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    echo "slurm-down: slurmctld still running (pid $(cat "$DIR/slurmctld.pid"))" >&2
    exit 1
fi
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$DIR/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
rm -rf "$DIR"
echo "slurm-down: stopped; $DIR removed"
