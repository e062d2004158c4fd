#!/bin/sh
# Guest side of tools/guest/test-sluice-router.sh: the /init of a test guest on a routed
# Sluice network (kernel parameter rdinit=/etc/sluice/router-guest.sh; the test adds this
# file, router-udhcpc.script and, when the host has it, dhcpcd to the standard initramfs).
#
# At boot: bring up the first network interface, take an IPv4 lease with busybox udhcpc and
# router-udhcpc.script (a /32 plus option 121's routes), then an IPv6 address with
# `dhcpcd -6` (DHCPv6 IA_NA after the router advertisement) when the image has dhcpcd.
# Then it reads commands, one per line, from /dev/ttyS1 (the test's second serial port,
# a unix socket on the host):
#
#   ping ADDR...     ping each address (IPv6 with ping6; fe80::... on the interface)
#   dhcp4            forget the lease and run udhcpc again (a fresh DISCOVER, no requested address)
#   dhcp6            forget the DHCPv6 lease and run dhcpcd -6 again (the DUID is kept)
#   off              power off
#
# Markers on the console (ttyS0), `SLUICE-GUEST: ` then:
#   BOOT <id> role=router / NET-UP <if> mac=... / NET-FAIL ...
#   DHCP4-LEASE ip=A/32 ... (from router-udhcpc.script) / DHCP4-FAIL <last udhcpc line>
#   DHCP6-LEASE addr=A/LEN default=<gateway> / DHCP6-FAIL ... / DHCP6-UNSUPPORTED <why>
#   READY (after the boot-time leases) / CMD <line> / CMD-DONE <word>
#   PING-OK <addr> <got>/<count> / PING-FAIL <addr> <got>/<count> <last ping line>
# Parameters: sl.count=N replies per ping (default 3), sl.wait=S seconds allowed per ping (10).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
say() { echo "SLUICE-GUEST: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run /var/lib/dhcpcd /run/dhcpcd
mount -t tmpfs tmpfs /tmp
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
grep -q 'sl.debug=1' /proc/cmdline || echo 1 >/proc/sys/kernel/printk
COUNT=3
WAIT=10
# shellcheck disable=SC2013  # words
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        sl.count=*) COUNT=${arg#*=} ;;
        sl.wait=*) WAIT=${arg#*=} ;;
    esac
done
echo
say "BOOT $(cut -c1-8 /proc/sys/kernel/random/boot_id) role=router"

# shellcheck disable=SC2013  # word lists
for m in $(cat /etc/sluice/modules 2>/dev/null); do
    modprobe "$m" 2>/dev/null || say "ERROR modprobe $m"
done

IFACE=""
n=0
while [ -z "$IFACE" ] && [ $n -lt 100 ]; do
    for d in /sys/class/net/*; do
        [ "${d##*/}" = lo ] || { IFACE=${d##*/}; break; }
    done
    [ -n "$IFACE" ] || usleep 100000
    n=$((n + 1))
done
ip link set lo up
if [ -z "$IFACE" ] || ! ip link set dev "$IFACE" up; then
    say "NET-FAIL no network interface"
    poweroff -f
fi
say "NET-UP $IFACE mac=$(cat "/sys/class/net/$IFACE/address")"

dhcp4() {
    udhcpc -f -q -n -t 10 -T 1 -O staticroutes -O mtu -O domain -i "$IFACE" \
        -s /etc/sluice/router-udhcpc.script >/tmp/udhcpc.log 2>&1 ||
        say "DHCP4-FAIL $(tail -n 1 /tmp/udhcpc.log)"
}

dhcp6() {
    if ! command -v dhcpcd >/dev/null 2>&1; then
        say "DHCP6-UNSUPPORTED no DHCPv6 client in the image (busybox has no udhcpc6; the host had no dhcpcd)"
        return
    fi
    # -6: DHCPv6 only; -1: exit once configured; -p: leave the address in place on exit;
    # -B: stay in the foreground. dhcpcd waits for the router advertisement (M=1) first.
    dhcpcd -6 -1 -p -B -t 20 -c /bin/true "$IFACE" >/tmp/dhcpcd.log 2>&1
    rc=$?
    addr=$(ip -6 addr show dev "$IFACE" scope global | sed -n 's/.*inet6 \([^ ]*\).*/\1/p' | head -n 1)
    if [ -z "$addr" ]; then
        say "DHCP6-FAIL rc=$rc $(tail -n 2 /tmp/dhcpcd.log | tr '\n' ' ')"
        return
    fi
    # The RA (router lifetime > 0) gives the default route through fe80::1; set it if not.
    ip -6 route show default | grep -q . || ip -6 route replace default via fe80::1 dev "$IFACE"
    gw=$(ip -6 route show default | sed -n 's/.*via \([^ ]*\).*/\1/p' | head -n 1)
    say "DHCP6-LEASE addr=$addr default=${gw:-none}"
}

ping_one() {
    case "$1" in
        fe80:*) out=$(ping6 -c "$COUNT" -w "$WAIT" -I "$IFACE" "$1" 2>&1) ;;
        *:*) out=$(ping6 -c "$COUNT" -w "$WAIT" "$1" 2>&1) ;;
        *) out=$(ping -c "$COUNT" -w "$WAIT" "$1" 2>&1) ;;
    esac
    got=$(echo "$out" | sed -n 's/.* \([0-9]*\) packets received.*/\1/p')
    if [ "${got:-0}" -ge "$COUNT" ]; then
        say "PING-OK $1 $got/$COUNT"
    else
        say "PING-FAIL $1 ${got:-0}/$COUNT $(echo "$out" | tail -n 1)"
    fi
}

dhcp4
dhcp6
say "READY"

if [ ! -c /dev/ttyS1 ]; then
    say "ERROR no /dev/ttyS1 (the command port)"
    poweroff -f
fi
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3</dev/ttyS1
while read -r cmd args <&3; do
    cmd=$(echo "$cmd" | tr -d '\r')
    [ -n "$cmd" ] || continue
    say "CMD $cmd $args"
    case "$cmd" in
        ping) for a in $args; do ping_one "$a"; done ;;
        dhcp4) dhcp4 ;;
        dhcp6)
            ip -6 addr flush dev "$IFACE" scope global
            rm -f /var/lib/dhcpcd/*.lease6
            dhcp6
            ;;
        off) say "CMD-DONE off"; sync; poweroff -f ;;
        *) say "ERROR unknown command $cmd" ;;
    esac
    say "CMD-DONE $cmd"
done
say "ERROR command port closed"
while :; do sleep 1000; done
