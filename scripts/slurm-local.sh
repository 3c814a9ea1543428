#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, to try `reluflow sweep --cluster slurm`
# (and to test it) before a university cluster.
#
#   scripts/slurm-local.sh start    install (Debian/Ubuntu packages) and start munge, slurmctld, slurmd
#   scripts/slurm-local.sh status   daemons, partition and queue; exit 0 when the cluster takes jobs
#   scripts/slurm-local.sh stop     cancel every job, stop the daemons this script started
#
# Needs root (apt-get, /etc/slurm, daemons). No systemd or cgroups needed: the daemons run in
# the foreground (-D) in the background, their PIDs kept in $STATE; processes are tracked
# with proctrack/linuxproc, no task plugin, no accounting. One node, 127.0.0.1, with this
# machine's CPUs and memory (`slurmd -C`), one partition "local". `start` is idempotent:
# run it again and it only checks that the cluster answers.
set -euo pipefail

STATE=${RELUFLOW_SLURM_STATE:-/run/reluflow-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by reluflow scripts/slurm-local.sh"
PARTITION=local
WAIT_S=${RELUFLOW_SLURM_WAIT_S:-60}

say() { echo "slurm-local: $*" >&2; }
die() { say "error: $*"; exit 1; }

alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

install() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root (or install them yourself)"
  command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} with your package manager"
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "apt-get could not install ${missing[*]}"
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0  # a munged is already serving (ours or the system's)
  fi
  [[ -f /etc/munge/munge.key ]] || {
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  # munged daemonizes itself and writes /run/munge/munged.pid
  runuser -u munge -- munged --force
  local i
  for i in $(seq 50); do
    if [[ -s /run/munge/munged.pid ]] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
      cp /run/munge/munged.pid "$STATE/munged.pid"
      return 0
    fi
    sleep 0.1
  done
  die "munged did not start (see /var/log/munge/munged.log)"
}

write_conf() {
  if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: not touching a real cluster's configuration"
  fi
  local host node cpus mem defmem
  host=$(hostname -s)
  # `slurmd -C` prints this machine's node line: NodeName=... CPUs=... RealMemory=...
  node=$(slurmd -C | head -n1)
  [[ $node == NodeName=* ]] || die "slurmd -C printed no node line: $node"
  cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  # Leave the system some memory; without DefMemPerCPU a job that does not say --mem claims
  # all of RealMemory under CR_Core_Memory and a second job waits forever.
  mem=$((mem * 9 / 10))
  node=$(sed "s/ RealMemory=[0-9]*/ RealMemory=$mem/" <<<"$node")
  defmem=$((mem / cpus))
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  cat >"$CONF" <<EOF
$MARK: a single-node test cluster.
ClusterName=reluflow-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.daemon.pid
SlurmdPidFile=$STATE/slurmd.daemon.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
ReturnToService=2
SlurmdTimeout=300
KillWait=5
$(sed 's/^NodeName=[^ ]*/NodeName='"$host"'/' <<<"$node") NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  # the node line as slurmd printed it (name included) also goes in $STATE for `status`
  say "wrote $CONF: node $host, $cpus CPUs, ${mem} MB, DefMemPerCPU=$defmem MB"
}

node_state() { sinfo -h -N -o %T 2>/dev/null | head -n1; }

ready() {
  scontrol ping 2>/dev/null | grep -q "UP" || return 1
  case $(node_state) in
    idle*|mixed*|allocated*|completing*) return 0 ;;
    *) return 1 ;;
  esac
}

wait_ready() {
  local deadline=$((SECONDS + WAIT_S)) state
  while ((SECONDS < deadline)); do
    ready && return 0
    state=$(node_state || true)
    case $state in
      down*|drain*|fail*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
    esac
    alive slurmctld || die "slurmctld exited (see /var/log/slurm/slurmctld.log)"
    alive slurmd || die "slurmd exited (see /var/log/slurm/slurmd.log)"
    sleep 0.2
  done
  die "the cluster did not take jobs within ${WAIT_S} s (node state: $(node_state || echo unknown))"
}

start() {
  mkdir -p "$STATE"
  if alive slurmctld && alive slurmd && ready; then
    say "already running"
    return 0
  fi
  install
  start_munge
  alive slurmctld && alive slurmd || write_conf
  if ! alive slurmctld; then
    setsid slurmctld -D -c >>/var/log/slurm/slurmctld.out 2>&1 </dev/null &
    echo $! >"$STATE/slurmctld.pid"
  fi
  if ! alive slurmd; then
    setsid slurmd -D >>/var/log/slurm/slurmd.out 2>&1 </dev/null &
    echo $! >"$STATE/slurmd.pid"
  fi
  wait_ready
  say "up: partition '$PARTITION' on $(hostname -s) ($(sinfo -h -o '%c CPUs, %m MB'))"
}

stop_pid() {
  local name=$1 pid i
  [[ -f "$STATE/$name.pid" ]] || return 0
  pid=$(cat "$STATE/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$name.pid"
}

stop() {
  if alive slurmctld; then
    scancel --full --state=PENDING,RUNNING,SUSPENDED -u "$(id -un)" 2>/dev/null || true
    # every user's jobs: this cluster exists for tests only
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  fi
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged  # only when this script started it
  say "stopped"
}

status() {
  local up=0
  for d in munged slurmctld slurmd; do
    if alive "$d"; then echo "$d: running (pid $(cat "$STATE/$d.pid"))"; else echo "$d: not started by this script"; fi
  done
  if command -v sinfo >/dev/null && ready; then
    sinfo
    squeue
    up=1
  else
    echo "cluster: not taking jobs"
  fi
  ((up))
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
