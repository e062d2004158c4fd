#!/bin/bash
# Start one Sluice test guest (TCG) attached to vhost-user sockets; execs QEMU, so the
# caller can kill it by the pid it started.
#
#   tools/guest/run-vm.sh --socket /tmp/vh0.sock --log /tmp/a.log --monitor /tmp/a.mon \
#       --append "sl.role=ping sl.ip=10.0.0.1/24 sl.peer=10.0.0.2"
#
# Options (environment variable in brackets gives the default):
#   --socket PATH        vhost-user-net socket; repeat for more NICs        [SLUICE_VM_SOCKET]
#   --mac MAC            MAC of the matching --socket (n-th --mac for n-th NIC)   [SLUICE_VM_MAC]
#                        default 52:54:00:53:00:<nic index + 1>
#   --queues N           queue pairs per NIC (netdev queues=N, mq=on)       [SLUICE_VM_QUEUES, 1]
#   --blk-socket PATH    vhost-user-blk socket; repeat for more disks: the n-th (from 0) sits
#                        at PCI slot 0x10+n (guest: /dev/vda, vdb, ...)     [SLUICE_VM_BLK_SOCKET]
#   --client-chardev     QEMU listens on the sockets (server=on,wait=off): the backend
#                        connects as a client                              [SLUICE_VM_CLIENT_CHARDEV=1]
#   --reconnect SECS     when QEMU is the client: reconnect interval, 0 = off; QEMU also waits
#                        for the socket to appear at start-up               [SLUICE_VM_RECONNECT, 1]
#   --append "PARAMS"    kernel command line parameters (sl.role=... ); repeatable [SLUICE_VM_APPEND]
#   --log FILE           serial console (ttyS0) log, truncated at start; default stdout [SLUICE_VM_LOG]
#   --monitor PATH       HMP monitor unix socket (e.g. system_reset, quit)  [SLUICE_VM_MONITOR]
#   --qmp PATH           QMP unix socket                                    [SLUICE_VM_QMP]
#   --mem SIZE           guest RAM, memfd shared                            [SLUICE_VM_MEM, 256M]
#   --smp N              vCPUs                                              [SLUICE_VM_SMP, 1]
#   --name NAME          QEMU -name                                         [SLUICE_VM_NAME]
#   --guest-dir DIR      where vmlinuz and initramfs.gz are   [SLUICE_GUEST_DIR, /var/cache/sluice-guest]
#   --dry-run            print the QEMU command line instead of running it
#   -- ARGS...           extra QEMU arguments
# shellcheck disable=SC2054  # commas are QEMU option syntax, not array separators
set -euo pipefail

sockets=()
macs=()
[ -n "${SLUICE_VM_SOCKET:-}" ] && sockets+=("$SLUICE_VM_SOCKET")
[ -n "${SLUICE_VM_MAC:-}" ] && macs+=("$SLUICE_VM_MAC")
queues=${SLUICE_VM_QUEUES:-1}
blks=()
[ -n "${SLUICE_VM_BLK_SOCKET:-}" ] && blks+=("$SLUICE_VM_BLK_SOCKET")
client_chardev=${SLUICE_VM_CLIENT_CHARDEV:-0}
reconnect=${SLUICE_VM_RECONNECT:-1}
append=${SLUICE_VM_APPEND:-}
log=${SLUICE_VM_LOG:-}
monitor=${SLUICE_VM_MONITOR:-}
qmp=${SLUICE_VM_QMP:-}
mem=${SLUICE_VM_MEM:-256M}
smp=${SLUICE_VM_SMP:-1}
name=${SLUICE_VM_NAME:-sluice-guest}
guest_dir=${SLUICE_GUEST_DIR:-/var/cache/sluice-guest}
dry_run=0
extra=()

usage() { sed -n '2,28p' "$0"; }
need() { [ $# -ge 2 ] || { echo "run-vm: $1 needs a value" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
    case "$1" in
        --socket) need "$@"; sockets+=("$2"); shift ;;
        --mac) need "$@"; macs+=("$2"); shift ;;
        --queues) need "$@"; queues=$2; shift ;;
        --blk-socket) need "$@"; blks+=("$2"); shift ;;
        --client-chardev) client_chardev=1 ;;
        --reconnect) need "$@"; reconnect=$2; shift ;;
        --append) need "$@"; append="$append $2"; shift ;;
        --log) need "$@"; log=$2; shift ;;
        --monitor) need "$@"; monitor=$2; shift ;;
        --qmp) need "$@"; qmp=$2; shift ;;
        --mem) need "$@"; mem=$2; shift ;;
        --smp) need "$@"; smp=$2; shift ;;
        --name) need "$@"; name=$2; shift ;;
        --guest-dir) need "$@"; guest_dir=$2; shift ;;
        --dry-run) dry_run=1 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "run-vm: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for f in vmlinuz initramfs.gz; do
    [ -s "$guest_dir/$f" ] || {
        echo "run-vm: $guest_dir/$f missing; run tools/guest/build-guest.sh $guest_dir" >&2
        exit 1
    }
done

# Options of a socket chardev: QEMU listens, or connects (and optionally reconnects).
chardev_mode() {
    if [ "$client_chardev" = 1 ]; then
        echo ",server=on,wait=off"
    elif [ "$reconnect" != 0 ]; then
        echo ",reconnect=$reconnect"
    fi
}

cmd=(qemu-system-x86_64
    -name "$name"
    -accel tcg
    -nodefaults -no-user-config -nographic
    -smp "$smp"
    -m "$mem"
    -object "memory-backend-memfd,id=mem,size=$mem,share=on"
    -numa node,memdev=mem
    -kernel "$guest_dir/vmlinuz"
    -initrd "$guest_dir/initramfs.gz"
    -append "console=ttyS0 quiet loglevel=3 mitigations=off$append")

if [ -n "$log" ]; then
    cmd+=(-serial "file:$log")
else
    cmd+=(-chardev stdio,id=ser0,signal=off -serial chardev:ser0)
fi

i=0
for sock in "${sockets[@]}"; do
    mac=${macs[$i]:-$(printf '52:54:00:53:00:%02x' $((i + 1)))}
    mq=""
    [ "$queues" -gt 1 ] && mq=",mq=on"
    cmd+=(-chardev "socket,id=vhu$i,path=$sock$(chardev_mode)"
        -netdev "vhost-user,id=net$i,chardev=vhu$i,queues=$queues"
        -device "virtio-net-pci,netdev=net$i,mac=$mac,vectors=0,romfile=$mq")
    i=$((i + 1))
done

i=0
for sock in "${blks[@]}"; do
    cmd+=(-chardev "socket,id=vhublk$i,path=$sock$(chardev_mode)"
        -device "vhost-user-blk-pci,chardev=vhublk$i,num-queues=1,addr=$(printf '0x%x' $((0x10 + i)))")
    i=$((i + 1))
done
if [ -n "$monitor" ]; then
    cmd+=(-chardev "socket,id=hmp,path=$monitor,server=on,wait=off" -mon chardev=hmp,mode=readline)
fi
if [ -n "$qmp" ]; then
    cmd+=(-chardev "socket,id=qmp,path=$qmp,server=on,wait=off" -mon chardev=qmp,mode=control)
fi
cmd+=("${extra[@]}")

if [ "$dry_run" = 1 ]; then
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi
exec "${cmd[@]}"
