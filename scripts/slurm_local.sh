#!/usr/bin/env bash
# Start a single-node Slurm on localhost (Debian slurm-wlm + munge), as root. Idempotent.
#
#   scripts/slurm_local.sh          # install if needed, configure, start, wait until the node is idle
#   scripts/slurm_local.sh status   # exit 0 when sinfo shows an idle/mixed/allocated node
#   scripts/slurm_local.sh stop     # stop the daemons this script started (by their pid files)
#
# Recipe measured on a 2-core Debian 12 VM with Slurm 22.05 (install ~10 s, bring-up ~1 min;
# tests/test_slurm.py runs it when it can):
# packages slurmctld slurmd slurm-client munge; munged as user munge; slurm.conf with
# proctrack/linuxproc, task/none, no accounting, select/cons_tres CR_Core, one node, partition
# "debug"; cgroup.conf with cgroup/v1 (22.05 rejects CgroupPlugin=disabled).
# The node line comes from `slurmd -C` so the declared CPUs/memory match the machine.
# Exits non-zero with a one-line reason when it cannot (not root, no apt, install failed, daemons
# do not come up). Logs: /var/log/slurm/{slurmctld,slurmd}.log.
set -u
ACTION="${1:-start}"
PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
CONF_DIR=/etc/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid

die() { echo "slurm_local: $*" >&2; exit 1; }
say() { echo "slurm_local: $*"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
node_ready() { sinfo -h -p "$PARTITION" -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'; }

if [ "$ACTION" = "status" ]; then
  alive "$CTLD_PID" && node_ready && { sinfo; exit 0; }
  echo "slurm_local: not running (sinfo shows no usable node in partition $PARTITION)" >&2; exit 1
fi

if [ "$ACTION" = "stop" ]; then
  [ "$(id -u)" = 0 ] || die "stop needs root"
  for pf in "$SLURMD_PID" "$CTLD_PID" "$MUNGE_PID"; do
    if alive "$pf"; then
      pid=$(cat "$pf"); kill "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
      say "stopped $(basename "$pf" .pid) (pid $pid)"
    fi
  done
  exit 0
fi

[ "$ACTION" = "start" ] || die "unknown action '$ACTION'; use start, status or stop"
t0=$(date +%s)
[ "$(id -u)" = 0 ] || die "needs root (installs packages and starts slurmctld/slurmd/munged); run as root or skip"

if alive "$CTLD_PID" && alive "$SLURMD_PID" && node_ready; then  # pid checks first: sinfo waits ~8 s for a dead slurmctld
  say "already running"; sinfo -p "$PARTITION"; exit 0
fi

# 1. packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
   || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "slurm is not installed and apt-get is not available (not a Debian/Ubuntu system)"
  say "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >/tmp/slurm_local_apt.log 2>&1; then
    apt-get update >>/tmp/slurm_local_apt.log 2>&1
    apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge >>/tmp/slurm_local_apt.log 2>&1 \
      || die "apt-get install failed (no package mirror reachable?); see /tmp/slurm_local_apt.log"
  fi
fi
id slurm >/dev/null 2>&1 || die "user 'slurm' missing after install (slurm-wlm postinst did not run?)"
id munge >/dev/null 2>&1 || die "user 'munge' missing after install"

# 2. directories and munge
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/munge "$CONF_DIR"
chown slurm: /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown munge: /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey -c -f -k /etc/munge/munge.key
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; fi
  chown munge: /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
fi
if ! alive "$MUNGE_PID"; then
  runuser -u munge -- /usr/sbin/munged --force || die "munged did not start (see /var/log/munge/munged.log)"
fi
for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n | unmunge >/dev/null 2>&1 || die "munge does not work (munge -n | unmunge failed)"

# 3. configuration (rewritten only when it changes; daemons restarted then)
HOST=$(hostname -s)
NODE_LINE=$(slurmd -C 2>/dev/null | grep '^NodeName=' | sed 's/ UpTime=.*//')
[ -n "$NODE_LINE" ] || NODE_LINE="NodeName=$HOST CPUs=$(nproc) RealMemory=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 512 ))"
NEW_CONF=$(cat <<EOF
# written by scripts/slurm_local.sh (single-node Slurm on localhost)
ClusterName=harness-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [ "$(cat $CONF_DIR/slurm.conf 2>/dev/null)" != "$NEW_CONF" ]; then
  printf '%s\n' "$NEW_CONF" > $CONF_DIR/slurm.conf; changed=1
fi
CGROUP_CONF=$'CgroupPlugin=cgroup/v1\nCgroupAutomount=no'
if [ "$(cat $CONF_DIR/cgroup.conf 2>/dev/null)" != "$CGROUP_CONF" ]; then
  printf '%s\n' "$CGROUP_CONF" > $CONF_DIR/cgroup.conf; changed=1
fi

# 4. daemons
if [ "$changed" = 1 ]; then
  for pf in "$SLURMD_PID" "$CTLD_PID"; do
    if alive "$pf"; then kill "$(cat "$pf")"; sleep 1; fi
  done
fi
alive "$CTLD_PID" || /usr/sbin/slurmctld || die "slurmctld did not start; see /var/log/slurm/slurmctld.log"
for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'UP' && break; sleep 0.2; done
alive "$SLURMD_PID" || /usr/sbin/slurmd || die "slurmd did not start; see /var/log/slurm/slurmd.log"

# 5. wait for the node
for _ in $(seq 1 150); do node_ready && break; sleep 0.2; done
if ! node_ready; then
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1
  for _ in $(seq 1 50); do node_ready && break; sleep 0.2; done
fi
node_ready || die "node $HOST not idle after start: $(sinfo -h -o '%T %E' 2>&1 | head -1); see /var/log/slurm/slurmd.log"
say "up in $(( $(date +%s) - t0 )) s"
sinfo -p "$PARTITION"
