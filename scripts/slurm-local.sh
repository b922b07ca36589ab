#!/bin/bash
# Start or stop a one-node Slurm on this machine, for tests of `gcl-repro plan --emit slurm`.
#   scripts/slurm-local.sh start   # needs root and `apt-get install -y slurm-wlm munge`
#   scripts/slurm-local.sh stop    # stops only the daemons that `start` started
# State, logs and pid files live in $GCL_SLURM_DIR (default /tmp/gcl-slurm). The config goes to
# /etc/slurm/slurm.conf (where sbatch looks) unless a config not written by this script is there.
set -euo pipefail
DIR=${GCL_SLURM_DIR:-/tmp/gcl-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by gcl-repro scripts/slurm-local.sh"

start() {
    for bin in slurmctld slurmd munged sbatch; do
        command -v "$bin" >/dev/null || { echo "slurm-local: $bin not found; install with: apt-get install -y slurm-wlm munge" >&2; exit 1; }
    done
    [ "$(id -u)" = 0 ] || { echo "slurm-local: must run as root (starts system daemons)" >&2; exit 1; }
    mkdir -p "$DIR/state" "$DIR/spool" /etc/slurm /etc/munge /run/munge
    # munge: authentication between the Slurm daemons and commands.
    if [ ! -f /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    chown munge:munge /run/munge
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        su -s /bin/sh munge -c /usr/sbin/munged
        touch "$DIR/munged.ours"
        for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    fi
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        echo "slurm-local: $CONF exists and was not written by this script; leaving it (and Slurm) alone" >&2
        exit 1
    fi
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
    cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    /usr/sbin/slurmctld
    /usr/sbin/slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            echo "slurm-local: up ($host, $cpus CPUs); stop with: $0 stop"
            return 0
        fi
        sleep 0.5
    done
    echo "slurm-local: the node did not become idle; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
    sinfo >&2 || true
    exit 1
}

stop_pid_file() {
    local f=$1
    if [ -f "$f" ]; then
        local pid
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        rm -f "$f"
    fi
}

stop() {
    stop_pid_file "$DIR/slurmd.pid"
    stop_pid_file "$DIR/slurmctld.pid"
    if [ -f "$DIR/munged.ours" ]; then
        stop_pid_file /run/munge/munged.pid
        rm -f "$DIR/munged.ours"
    fi
    if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then rm -f "$CONF"; fi
    echo "slurm-local: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
