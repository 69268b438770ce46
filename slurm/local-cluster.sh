#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests and for trying sweeps (no systemd needed).
#
#   slurm/local-cluster.sh start    # write slurm.conf, start munged, slurmctld, slurmd; wait until idle
#   slurm/local-cluster.sh stop     # stop the daemons this script started (by their pid files)
#   slurm/local-cluster.sh status   # daemons, node state, queue
#
# Needs root and the Debian packages slurmctld, slurmd, munge (slurm-client). Everything it writes lives in
# $LOCAL_SLURM_DIR (default /var/lib/iqrl-local-slurm); /etc/slurm/slurm.conf is written (and an existing
# one saved once to slurm.conf.before-iqrl) because the Slurm commands read it from there.
# Settings chosen for fast tests, all in slurm.conf below:
#   AuthInfo=cred_expire=10  a requeued job waits cred_expire+1 s before it may run again (default 120 s)
#   MaxArraySize=4           small on purpose, so that sweeps exercise array chunking (indices 0..3)
#   KillWait=5               scancel / time limit: SIGTERM, then SIGKILL 5 s later
#   no accounting            sacct fails; submitit warns and job states come from squeue
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-/var/lib/iqrl-local-slurm}
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)
CPUS=${LOCAL_SLURM_CPUS:-$(nproc)}
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)

die() { echo "local-cluster: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_conf() {
    mkdir -p "$DIR"/{state,spool,log} /etc/slurm
    if [ -f "$CONF" ] && ! grep -q "^# iqrl-bench local cluster" "$CONF" && [ ! -f "$CONF.before-iqrl" ]; then
        cp "$CONF" "$CONF.before-iqrl"
    fi
    cat > "$CONF" <<EOF
# iqrl-bench local cluster (written by slurm/local-cluster.sh; safe to delete)
ClusterName=iqrl-local
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ReturnToService=2
MaxArraySize=4
KillWait=5
MinJobAge=60
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null;
                                     chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.2; done
    die "munged did not come up"
}

start() {
    [ "$(id -u)" = 0 ] || die "start needs root"
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null ||
        die "missing packages: apt-get update && apt-get install -y --no-install-recommends slurmctld slurmd munge slurm-client"
    write_conf
    start_munge
    alive "$DIR/slurmctld.pid" || slurmctld
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
    alive "$DIR/slurmd.pid" || slurmd
    for _ in $(seq 150); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
        case "$state" in
            idle|mix|alloc) echo "local-cluster: up (node $NODE, $CPUS cpus, state $state)"; return 0 ;;
            drain*|down*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.2
    done
    status || true
    die "node did not become idle; logs in $DIR/log"
}

stop() {
    for d in slurmd slurmctld; do
        if alive "$DIR/$d.pid"; then
            pid=$(cat "$DIR/$d.pid"); kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        rm -f "$DIR/$d.pid"
    done
    echo "local-cluster: stopped (munged left running; it is harmless)"
}

status() {
    for d in slurmctld slurmd; do
        if alive "$DIR/$d.pid"; then echo "$d: running (pid $(cat "$DIR/$d.pid"))"; else echo "$d: not running"; fi
    done
    if scontrol ping >/dev/null 2>&1; then sinfo -N; squeue; else echo "controller not reachable"; return 1; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    restart) stop; start ;;
    *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
