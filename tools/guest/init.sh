#!/bin/sh
# /init of the Sluice test guest (busybox initramfs built by build-guest.sh).
#
# Reads sl.* parameters from the kernel command line, runs one scripted role and
# prints marker lines "SLUICE-GUEST: ..." on the console (ttyS0), then powers off.
#
#   sl.role=ping|serve|dhcp|blk   what to do (default: serve)
#   sl.ip=10.0.0.1/24             IPv4 address for the interface (ping, serve)
#   sl.ip6=fd00::1/64             optional IPv6 address (added with nodad)
#   sl.peer=10.0.0.2              address to ping (ping; dhcp optional); a comma-separated
#                                 list (10.0.0.2,10.0.0.3) pings each in turn, one round each
#   sl.count=5                    replies needed for one PING-OK round
#   sl.round=15                   seconds allowed for one round before PING-FAIL
#   sl.interval=1                 seconds between rounds
#   sl.timeout=60                 seconds from boot until DONE + poweroff (0: never)
#   sl.mac=52:54:00:00:00:01      pick the interface with this MAC (or set it)
#   sl.dhcp=4|6|46                dhcp role: which families (default 4)
#   sl.blk=rw|ro                  blk role: write+verify, or read + expect write refusal
#   sl.blocks=64                  blk role: number of 4 KiB blocks
#   sl.blkdev=vda                 blk role: device name
#   sl.debug=1                    keep kernel messages on the console
#
# Markers (one per line, key=value details after the fixed words):
#   BOOT <bootid> role=... uptime=...      once per boot (count them to see reboots)
#   MODULES-OK / MODULES-FAIL <module>
#   NET-UP <ifname> mac=... ip=...  /  NET-FAIL <reason>
#   SERVE-READY <ip>
#   PING-OK <peer> <got>/<count> round=... sent=... secs=... rtt_ms=...
#   PING-FAIL <peer> <got>/<count> round=... sent=... secs=...   (round ran out of sl.round)
#   PING-CUT ...                           last round cut short by sl.timeout (not a failure)
#   DHCP4-LEASE ip=a.b.c.d/len router=... / DHCP4-FAIL
#   SLAAC6 addr=... / DHCP6-UNSUPPORTED / DHCP6-LEASE ...
#   BLK-DEV <dev> sectors=... ro=... / BLK-OK ... / BLK-READ md5=... / BLK-RO-OK / BLK-FAIL ...
#   ERROR <text>
#   DONE role=... ok=<n> fail=<n>

# shellcheck disable=SC2013  # the files read with $(cat ...) are word lists
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "SLUICE-GUEST: $*"; }

uptime_s() { read -r up _ </proc/uptime; echo "${up%%.*}"; }
uptime_f() { read -r up _ </proc/uptime; echo "$up"; }

mount_basics() {
    mkdir -p /proc /sys /dev /tmp /run
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev 2>/dev/null
    mount -t tmpfs tmpfs /tmp
    mount -t tmpfs tmpfs /run
    [ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
}

# Parse sl.key=value from /proc/cmdline into shell variables P_key.
read_params() {
    for arg in $(cat /proc/cmdline); do
        case "$arg" in
            sl.*=*)
                key=${arg%%=*}
                key=${key#sl.}
                # shellcheck disable=SC2034  # read by the eval below
                val=${arg#*=}
                case "$key" in
                    *[!a-z0-9_]*|'') continue ;;
                esac
                eval "P_$key=\$val"
                ;;
        esac
    done
    ROLE=${P_role:-serve}
    TIMEOUT=${P_timeout:-60}
    COUNT=${P_count:-5}
    ROUND=${P_round:-15}
    INTERVAL=${P_interval:-1}
}

finish() {
    say "DONE role=$ROLE ok=$OK fail=$FAIL"
    sync
    poweroff -f
    sleep 2
    echo o >/proc/sysrq-trigger 2>/dev/null
    while :; do sleep 1000; done
}

# true while the overall deadline has not passed
time_left() {
    [ "$TIMEOUT" = 0 ] && return 0
    [ "$(uptime_s)" -lt "$DEADLINE" ]
}

load_modules() {
    failed=""
    for m in $(cat /etc/sluice/modules 2>/dev/null); do
        modprobe "$m" 2>/dev/null || failed="$failed $m"
    done
    if [ -n "$failed" ]; then
        # fallback: insmod the ordered file list made at build time
        for f in $(cat /etc/sluice/modules.files 2>/dev/null); do
            insmod "$f" 2>/dev/null
        done
        say "MODULES-FAIL$failed (modprobe; tried insmod list)"
    else
        say "MODULES-OK"
    fi
}

# Sets IFACE to the network interface to use; waits for it to appear.
find_iface() {
    want=$(echo "${P_mac:-}" | tr 'A-F' 'a-f')
    IFACE=""
    n=0
    while [ $n -lt 100 ]; do
        first=""
        for d in /sys/class/net/*; do
            name=${d##*/}
            [ "$name" = lo ] && continue
            [ -z "$first" ] && first=$name
            if [ -n "$want" ] && [ "$(cat "$d/address")" = "$want" ]; then
                IFACE=$name
                return 0
            fi
        done
        if [ -n "$first" ] && [ -z "$want" ]; then IFACE=$first; return 0; fi
        if [ -n "$first" ] && [ $n -ge 20 ]; then
            IFACE=$first
            ip link set dev "$IFACE" address "$want" 2>/dev/null ||
                say "ERROR cannot set mac $want on $IFACE"
            return 0
        fi
        n=$((n + 1))
        usleep 100000
    done
    return 1
}

net_up() {
    ip link set lo up
    if ! find_iface; then
        say "NET-FAIL no network interface"
        FAIL=$((FAIL + 1))
        return 1
    fi
    ip link set dev "$IFACE" up || { say "NET-FAIL link up $IFACE"; FAIL=$((FAIL + 1)); return 1; }
    if [ -n "${P_ip:-}" ]; then
        ip addr add "$P_ip" dev "$IFACE" || { say "NET-FAIL addr $P_ip"; FAIL=$((FAIL + 1)); return 1; }
    fi
    if [ -n "${P_ip6:-}" ]; then
        ip -6 addr add "$P_ip6" dev "$IFACE" nodad || say "ERROR ip6 addr $P_ip6"
    fi
    say "NET-UP $IFACE mac=$(cat "/sys/class/net/$IFACE/address") ip=${P_ip:-none} ip6=${P_ip6:-none}"
}

# One round: ping $PEER until COUNT replies or ROUND seconds pass.
ping_round() {
    got=0; sent=0; rtt=""
    t0=$(uptime_f); s0=$(uptime_s)
    while [ $got -lt "$COUNT" ] && [ $(( $(uptime_s) - s0 )) -lt "$ROUND" ] && time_left; do
        sent=$((sent + 1))
        if out=$(ping -c 1 -W 1 "$PEER" 2>&1); then
            got=$((got + 1))
            r=$(echo "$out" | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | head -n 1)
            [ -n "$r" ] && rtt=$r
            usleep 200000
        fi
    done
    secs=$(awk -v a="$t0" -v b="$(uptime_f)" 'BEGIN { printf "%.1f", b - a }')
    if [ $got -ge "$COUNT" ]; then
        say "PING-OK $PEER $got/$COUNT round=$ROUNDNO sent=$sent secs=$secs rtt_ms=${rtt:-?}"
        OK=$((OK + 1))
    elif ! time_left; then
        say "PING-CUT $PEER $got/$COUNT round=$ROUNDNO sent=$sent secs=$secs (sl.timeout reached)"
    else
        say "PING-FAIL $PEER $got/$COUNT round=$ROUNDNO sent=$sent secs=$secs"
        FAIL=$((FAIL + 1))
    fi
}

ping_loop() {
    if [ -z "${P_peer:-}" ]; then say "ERROR no sl.peer"; FAIL=$((FAIL + 1)); return; fi
    ROUNDNO=0
    while time_left; do
        ROUNDNO=$((ROUNDNO + 1))
        for PEER in $(echo "$P_peer" | tr ',' ' '); do
            ping_round
            time_left || break
        done
        time_left || break
        sleep "$INTERVAL"
    done
}

serve_loop() {
    say "SERVE-READY ${P_ip:-none}"
    OK=$((OK + 1))
    while time_left; do sleep 1; done
}

dhcp4() {
    if udhcpc -f -q -n -t 20 -T 1 -i "$IFACE" -s /etc/sluice/udhcpc.script >/tmp/udhcpc.log 2>&1; then
        OK=$((OK + 1))
    else
        say "DHCP4-FAIL $(tail -n 1 /tmp/udhcpc.log)"
        FAIL=$((FAIL + 1))
    fi
}

dhcp6() {
    if command -v dhcpcd >/dev/null 2>&1; then
        if dhcpcd -6 -1 -t 20 "$IFACE" >/tmp/dhcpcd.log 2>&1; then
            addr=$(ip -6 addr show dev "$IFACE" scope global | sed -n 's/.*inet6 \([^ ]*\).*/\1/p' | head -n 1)
            say "DHCP6-LEASE addr=${addr:-?}"
            OK=$((OK + 1))
        else
            say "DHCP6-FAIL $(tail -n 1 /tmp/dhcpcd.log)"
            FAIL=$((FAIL + 1))
        fi
        return
    fi
    say "DHCP6-UNSUPPORTED (no DHCPv6 client in image); waiting for SLAAC"
    n=0
    while [ $n -lt 20 ]; do
        addr=$(ip -6 addr show dev "$IFACE" scope global | sed -n 's/.*inet6 \([^ ]*\).*/\1/p' | head -n 1)
        if [ -n "$addr" ]; then
            say "SLAAC6 addr=$addr"
            OK=$((OK + 1))
            return
        fi
        n=$((n + 1))
        sleep 1
    done
    say "SLAAC6-FAIL no global address after 20s"
    FAIL=$((FAIL + 1))
}

role_dhcp() {
    net_up || return
    case "${P_dhcp:-4}" in
        *4*) dhcp4 ;;
    esac
    case "${P_dhcp:-4}" in
        *6*) dhcp6 ;;
    esac
    if [ -n "${P_peer:-}" ]; then ping_loop; else serve_loop; fi
}

role_blk() {
    dev=${P_blkdev:-vda}
    blocks=${P_blocks:-64}
    n=0
    while [ ! -b "/dev/$dev" ] && [ $n -lt 50 ]; do n=$((n + 1)); usleep 100000; done
    if [ ! -b "/dev/$dev" ]; then say "BLK-FAIL no /dev/$dev"; FAIL=$((FAIL + 1)); return; fi
    say "BLK-DEV $dev sectors=$(cat "/sys/block/$dev/size") ro=$(cat "/sys/block/$dev/ro")"
    if [ "${P_blk:-rw}" = ro ]; then
        if ! dd if="/dev/$dev" of=/tmp/rd bs=4096 count="$blocks" iflag=direct 2>/tmp/dd.err; then
            say "BLK-FAIL read $(head -n 1 /tmp/dd.err)"; FAIL=$((FAIL + 1)); return
        fi
        say "BLK-READ md5=$(md5sum </tmp/rd | cut -d' ' -f1) blocks=$blocks"
        OK=$((OK + 1))
        if dd if=/tmp/rd of="/dev/$dev" bs=4096 count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
            say "BLK-FAIL write-accepted on read-only device"; FAIL=$((FAIL + 1))
        else
            say "BLK-RO-OK write refused: $(head -n 1 /tmp/dd.err)"; OK=$((OK + 1))
        fi
        return
    fi
    dd if=/dev/urandom of=/tmp/wr bs=4096 count="$blocks" 2>/dev/null
    want=$(md5sum </tmp/wr | cut -d' ' -f1)
    if ! dd if=/tmp/wr of="/dev/$dev" bs=4096 count="$blocks" oflag=direct conv=fsync 2>/tmp/dd.err; then
        say "BLK-FAIL write $(head -n 1 /tmp/dd.err)"; FAIL=$((FAIL + 1)); return
    fi
    say "BLK-WRITE md5=$want blocks=$blocks"
    if ! dd if="/dev/$dev" of=/tmp/rd bs=4096 count="$blocks" iflag=direct 2>/tmp/dd.err; then
        say "BLK-FAIL read $(head -n 1 /tmp/dd.err)"; FAIL=$((FAIL + 1)); return
    fi
    got=$(md5sum </tmp/rd | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then
        say "BLK-OK md5=$got blocks=$blocks"; OK=$((OK + 1))
    else
        say "BLK-FAIL md5 mismatch wrote=$want read=$got"; FAIL=$((FAIL + 1))
    fi
}

main() {
    mount_basics
    read_params
    [ "${P_debug:-0}" = 1 ] || echo 1 >/proc/sys/kernel/printk
    OK=0; FAIL=0
    DEADLINE=$(( $(uptime_s) + TIMEOUT ))
    bootid=$(cut -c1-8 /proc/sys/kernel/random/boot_id)
    echo    # the firmware leaves the cursor mid-line
    say "BOOT $bootid role=$ROLE uptime=$(uptime_f) timeout=$TIMEOUT"
    load_modules
    case "$ROLE" in
        ping)  net_up && ping_loop ;;
        serve) net_up && serve_loop ;;
        dhcp)  role_dhcp ;;
        blk)   role_blk ;;
        *)     say "ERROR unknown role $ROLE"; FAIL=$((FAIL + 1)) ;;
    esac
    finish
}

main
