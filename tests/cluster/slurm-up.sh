#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, from Debian's packages (slurm-wlm, munge), for the
# workflow's Slurm test and for trying the Slurm profile by hand. Root only: slurmd launches jobs.
#
#   tests/cluster/slurm-up.sh            # prints the SLURM_CONF line to export
#   export SLURM_CONF=/tmp/modelcollapse-slurm/slurm.conf
#   snakemake --workflow-profile workflow/profiles/slurm --configfile config/smoke.yaml
#   tests/cluster/slurm-down.sh
#
# Everything the cluster writes (config, state, spool, logs, job records) lives in one folder,
# $MC_SLURM_DIR (default /tmp/modelcollapse-slurm), so slurm-down.sh can remove it whole; nothing
# under /etc is changed. Works without systemd and without cgroups (process tracking by
# /proc, no task confinement, no accounting daemon): the settings an unprivileged container allows.
set -euo pipefail

DIR="${MC_SLURM_DIR:-/tmp/modelcollapse-slurm}"
PARTITION="${MC_SLURM_PARTITION:-debug}"
CTLD_PORT="${MC_SLURM_CTLD_PORT:-16817}"  # not 6817: a site's own Slurm may be running
SLURMD_PORT="${MC_SLURM_SLURMD_PORT:-16818}"

die() { echo "slurm-up: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (slurmd launches jobs as their user); run it as root or under sudo"
for program in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$program" >/dev/null 2>&1 || die "'$program' not found: apt-get install slurm-wlm munge"
done
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    die "a cluster is already running from $DIR (tests/cluster/slurm-down.sh stops it)"
fi
rm -rf "$DIR"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"

# munge: authentication between the Slurm daemons and clients. Reuse a running munged; else start
# one as the munge user with the package's key (made at install) or a fresh one.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        install -d -o munge -g munge -m 0700 /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged
    echo "started" > "$DIR/munged.ours"  # slurm-down.sh stops only a munged that we started
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munged did not come up (see /var/log/munge/munged.log)"
fi

HOST="$(hostname -s)"
CPUS="$(nproc)"
# Leave a tenth of the memory to the daemons and the submitting Snakemake.
MEM_MB="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"

cat > "$DIR/slurm.conf" <<EOF
# Written by tests/cluster/slurm-up.sh: a one-node cluster for tests.
ClusterName=modelcollapse
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: finished jobs are kept by slurmctld for MinJobAge seconds (what squeue and sacct
# then read) and written for good to the job-completion file (the test reads that record).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=3600
SchedulerParameters=sched_interval=1
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# Job steps must find the config at Slurm's default path: the Snakemake Slurm job-step plugin
# (0.6) strips every SLURM_* variable, SLURM_CONF included, before its inner `srun`. So the
# config is linked there, unless a site's own Slurm already owns that path.
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$DIR/slurm.conf" ]; then
    :
elif [ -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
    die "/etc/slurm/slurm.conf exists: this machine has a Slurm of its own; use that cluster, or move the file aside"
else
    mkdir -p /etc/slurm
    ln -s "$DIR/slurm.conf" /etc/slurm/slurm.conf
fi

export SLURM_CONF="$DIR/slurm.conf"
slurmctld -f "$SLURM_CONF" -c   # -c: a clean start, no jobs from an earlier cluster
slurmd -f "$SLURM_CONF" -N "$HOST"

for _ in $(seq 100); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)"
    case "$state" in idle*|mix*|alloc*) break ;; esac
    sleep 0.2
done
case "$state" in
    idle*|mix*|alloc*) ;;
    *) tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
       die "node $HOST did not become idle (state '$state'); logs above, all in $DIR/log" ;;
esac
echo "slurm-up: one-node cluster '$HOST' ($CPUS CPUs, $MEM_MB MB), partition '$PARTITION'"
echo "export SLURM_CONF=$SLURM_CONF"
