#!/bin/sh
# /init of the Sluice test guest (busybox initramfs built by build-guest.sh).
#
# Reads sl.* parameters from the kernel command line, runs one scripted role and
# prints marker lines "SLUICE-GUEST: ..." on the console (ttyS0), then powers off.
#
#   sl.role=ping|serve|dhcp|blk|vfio-probe|nvme-test|nvme-bench   what to do (default: serve)
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
#   sl.blkchk=10:rw:64,11:tail:16 blk role: checks per disk, SLOT:KIND[:BLOCKS] (PCI slot in hex,
#                                 KIND rw|ro|tail|loop); replaces sl.blk/sl.blkdev
#   sl.loopsecs=15                blk role, loop check: seconds the write+verify loop runs at most
#   sl.debug=1                    keep kernel messages on the console
#   vfio-probe role (needs the modules nvme vfio_pci vfio_iommu_type1 in the image and an
#   IOMMU, e.g. q35 + intel-iommu + intel_iommu=on): every NVMe controller (class 010802) is
#   moved from nvme to vfio-pci and back; /usr/bin/vfio-nvme-probe and /usr/bin/sluice run
#   when an added archive carries them (sl.sluicecfg=FILE: also `sluice --check --config FILE`;
#   sl.probeargs=WORD: an extra argument for the probe, e.g. admin-mmio-only; sl.kbench=N: time
#   N 4 KiB direct reads through the kernel driver first)
#   nvme-test role: sources /etc/sluice/nvme-guest.sh from the archive tools/guest/test-nvme.sh
#   adds (sluice on the NVMe controller through vfio-pci, sluice-gen blk, the kernel driver
#   reading back); its markers are listed in that file
#   nvme-bench role: sources nvme-guest.sh and /etc/sluice/nvme-bench-guest.sh from the archive
#   tools/bench/nvme-vs-kernel.sh adds (the kernel's nvme driver vs sluice on vfio-pci, random
#   reads timed); its markers are listed in that file
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
#   BLK-DEV <dev> sectors=... ro=... serial=... / BLK-WRITE md5=... / BLK-OK md5=... /
#   BLK-READ md5=... / BLK-RO-OK / BLK-TAIL-OK md5=... block=N / BLK-LOOP-START /
#   BLK-LOOP-PROGRESS iter=N / BLK-LOOP-OK blocks=N ... md5=... / BLK-DMESG-OK / BLK-FAIL ...
#   (with sl.blkchk each ends with " dev=vdX slot=SLOT")
#   VFIO-IOMMU ... / VFIO-CTRL <bdf> driver=... group=... members=... / VFIO-NS <dev> ... /
#   VFIO-BOUND <bdf> driver=vfio-pci dev=/dev/vfio/N / VFIO-REBOUND <bdf> driver=nvme md5=... /
#   VFIO-SLUICE ... / VFIO-FAIL ...   (probe output: "PROBE ..." lines)
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

# blk_wait_dev DEV: wait up to 5 s for /dev/DEV.
blk_wait_dev() {
    n=0
    while [ ! -b "/dev/$1" ] && [ $n -lt 50 ]; do n=$((n + 1)); usleep 100000; done
    [ -b "/dev/$1" ]
}

# blk_find SLOT: print the vdX whose PCI function is 0000:00:SLOT.0 (waits up to 5 s).
blk_find() {
    n=0
    while [ $n -lt 50 ]; do
        for d in /sys/block/vd*; do
            [ -e "$d" ] || continue
            case "$(readlink -f "$d")" in
                */0000:00:"$1".0/*) echo "${d##*/}"; return 0 ;;
            esac
        done
        n=$((n + 1))
        usleep 100000
    done
    return 1
}

# now_cs: NOW = uptime in centiseconds (no fork).
now_cs() {
    read -r up _ </proc/uptime
    NOW=$(( ${up%%.*} * 100 + 1${up#*.} - 100 ))
}

# blk_fail TEXT: one BLK-FAIL marker (TEXT names the check and the device).
blk_fail() { say "BLK-FAIL $*"; FAIL=$((FAIL + 1)); }

# blk_ro DEV BLOCKS TAG: read BLOCKS 4 KiB blocks (md5), then a write must be refused.
blk_ro() {
    if ! dd if="/dev/$1" of=/tmp/rd bs=4096 count="$2" iflag=direct 2>/tmp/dd.err; then
        blk_fail "read $(head -n 1 /tmp/dd.err)$3"; return
    fi
    say "BLK-READ md5=$(md5sum </tmp/rd | cut -d' ' -f1) blocks=$2$3"
    OK=$((OK + 1))
    if dd if=/tmp/rd of="/dev/$1" bs=4096 count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
        blk_fail "write-accepted on read-only device$3"
    else
        say "BLK-RO-OK write refused: $(head -n 1 /tmp/dd.err)$3"; OK=$((OK + 1))
    fi
}

# blk_rw DEV BLOCKS TAG BS: write BLOCKS random 4 KiB blocks from offset 0 in BS-byte
# requests, read them back in 4 KiB requests, compare md5.
blk_rw() {
    dd if=/dev/urandom of=/tmp/wr bs=4096 count="$2" 2>/dev/null
    want=$(md5sum </tmp/wr | cut -d' ' -f1)
    if ! dd if=/tmp/wr of="/dev/$1" bs="$4" oflag=direct conv=fsync 2>/tmp/dd.err; then
        blk_fail "write $(head -n 1 /tmp/dd.err)$3"; return
    fi
    say "BLK-WRITE md5=$want blocks=$2 bs=$4$3"
    if ! dd if="/dev/$1" of=/tmp/rd bs=4096 count="$2" iflag=direct 2>/tmp/dd.err; then
        blk_fail "read $(head -n 1 /tmp/dd.err)$3"; return
    fi
    got=$(md5sum </tmp/rd | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then
        say "BLK-OK md5=$got blocks=$2$3"; OK=$((OK + 1))
    else
        blk_fail "md5 mismatch wrote=$want read=$got$3"
    fi
}

# blk_tail DEV BLOCKS TAG: md5 of the first BLOCKS 4 KiB blocks, then one random block
# written to the device's last 4 KiB and read back.
blk_tail() {
    sectors=$(cat "/sys/block/$1/size")
    if [ $((sectors % 8)) != 0 ] || [ "$sectors" -lt 8 ]; then
        blk_fail "tail: $sectors sectors is not a whole number of 4 KiB blocks$3"; return
    fi
    if ! dd if="/dev/$1" of=/tmp/rd bs=4096 count="$2" iflag=direct 2>/tmp/dd.err; then
        blk_fail "read $(head -n 1 /tmp/dd.err)$3"; return
    fi
    say "BLK-READ md5=$(md5sum </tmp/rd | cut -d' ' -f1) blocks=$2$3"
    last=$((sectors / 8 - 1))
    dd if=/dev/urandom of=/tmp/wr bs=4096 count=1 2>/dev/null
    if ! dd if=/tmp/wr of="/dev/$1" bs=4096 seek="$last" count=1 oflag=direct conv=fsync 2>/tmp/dd.err; then
        blk_fail "tail write block $last: $(head -n 1 /tmp/dd.err)$3"; return
    fi
    if ! dd if="/dev/$1" of=/tmp/rd bs=4096 skip="$last" count=1 iflag=direct 2>/tmp/dd.err; then
        blk_fail "tail read block $last: $(head -n 1 /tmp/dd.err)$3"; return
    fi
    want=$(md5sum </tmp/wr | cut -d' ' -f1)
    got=$(md5sum </tmp/rd | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then
        say "BLK-TAIL-OK md5=$got block=$last$3"; OK=$((OK + 1))
    else
        blk_fail "tail md5 mismatch block=$last wrote=$want read=$got$3"
    fi
}

# blk_loop DEV BLOCKS TAG: write + read back + compare one new random 4 KiB block at a time
# (blocks 0, 1, 2, ...) for sl.loopsecs seconds or until BLOCKS blocks are written; then read
# all written blocks again and compare (so blocks written before a backend restart are read
# from the restarted backend); then no I/O error may be in the kernel log.
blk_loop() {
    secs=${P_loopsecs:-15}
    : >/tmp/exp
    now_cs; t0=$NOW; iter=0; maxcs=0
    say "BLK-LOOP-START blocks=$2 secs=$secs$3"
    while [ "$iter" -lt "$2" ] && [ $((NOW - t0)) -lt $((secs * 100)) ]; do
        dd if=/dev/urandom of=/tmp/b bs=4096 count=1 2>/dev/null
        now_cs; s=$NOW
        if ! dd if=/tmp/b of="/dev/$1" bs=4096 seek="$iter" count=1 oflag=direct 2>/tmp/dd.err; then
            blk_fail "loop write block=$iter: $(head -n 1 /tmp/dd.err)$3"; return
        fi
        if ! dd if="/dev/$1" of=/tmp/r bs=4096 skip="$iter" count=1 iflag=direct 2>/tmp/dd.err; then
            blk_fail "loop read block=$iter: $(head -n 1 /tmp/dd.err)$3"; return
        fi
        now_cs
        [ $((NOW - s)) -gt "$maxcs" ] && maxcs=$((NOW - s))
        if ! cmp -s /tmp/b /tmp/r; then
            blk_fail "loop verify block=$iter: read back differs$3"; return
        fi
        cat /tmp/b >>/tmp/exp
        iter=$((iter + 1))
        [ $((iter % 100)) = 0 ] && say "BLK-LOOP-PROGRESS iter=$iter slowest_ms=$((maxcs * 10))$3"
    done
    if [ "$iter" = 0 ]; then blk_fail "loop wrote nothing$3"; return; fi
    if ! dd if="/dev/$1" of=/tmp/rd bs=4096 count="$iter" iflag=direct 2>/tmp/dd.err; then
        blk_fail "loop final read: $(head -n 1 /tmp/dd.err)$3"; return
    fi
    want=$(md5sum </tmp/exp | cut -d' ' -f1)
    got=$(md5sum </tmp/rd | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        blk_fail "loop final verify: expected md5=$want read md5=$got$3"; return
    fi
    say "BLK-LOOP-OK blocks=$iter verified=$iter md5=$got slowest_ms=$((maxcs * 10))$3"
    OK=$((OK + 1))
    bad=$(dmesg | grep -i -E 'I/O error|blk_update_request|critical .*error|virtio_blk.*(fail|error)' | head -n 1)
    if [ -n "$bad" ]; then
        blk_fail "loop dmesg: $bad$3"
    else
        say "BLK-DMESG-OK$3"; OK=$((OK + 1))
    fi
}

# blk_check DEV KIND BLOCKS TAG: one check on /dev/DEV (rw, ro, tail, loop).
blk_check() {
    if ! blk_wait_dev "$1"; then blk_fail "no /dev/$1$4"; return; fi
    serial=$(tr -cd 'A-Za-z0-9_.:-' <"/sys/block/$1/serial" 2>/dev/null)
    say "BLK-DEV $1 sectors=$(cat "/sys/block/$1/size") ro=$(cat "/sys/block/$1/ro") serial=${serial:-none}$4"
    case "$2" in
        rw)   blk_rw "$1" "$3" "$4" 65536 ;;
        ro)   blk_ro "$1" "$3" "$4" ;;
        tail) blk_tail "$1" "$3" "$4" ;;
        loop) blk_loop "$1" "$3" "$4" ;;
        *)    blk_fail "unknown check '$2'$4" ;;
    esac
}

# Without sl.blkchk: one check (sl.blk=rw|ro) on sl.blkdev. With sl.blkchk=SLOT:KIND:BLOCKS,...
# (SLOT = the PCI slot in hex as run-vm.sh assigns it, 10 for the first --blk-socket): each
# check in turn on the disk at that slot; its markers end with " dev=vdX slot=SLOT".
role_blk() {
    if [ -z "${P_blkchk:-}" ]; then
        blk_check "${P_blkdev:-vda}" "${P_blk:-rw}" "${P_blocks:-64}" ""
        return
    fi
    for chk in $(echo "$P_blkchk" | tr ',' ' '); do
        slot=${chk%%:*}
        rest=${chk#*:}
        kind=${rest%%:*}
        blocks=${rest#*:}
        [ "$blocks" = "$rest" ] && blocks=${P_blocks:-64}
        if ! dev=$(blk_find "$slot"); then
            blk_fail "no virtio disk at PCI slot $slot ($chk) slot=$slot"
            continue
        fi
        blk_check "$dev" "$kind" "$blocks" " dev=$dev slot=$slot"
    done
}

# vfio_driver BDF: the driver bound to a PCI function (none when unbound).
vfio_driver() { d=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null); d=${d##*/}; echo "${d:-none}"; }

# vfio_bind BDF DRIVER: unbind from the current driver, bind DRIVER through driver_override.
vfio_bind() {
    [ -e "/sys/bus/pci/devices/$1/driver" ] && echo "$1" >"/sys/bus/pci/devices/$1/driver/unbind"
    echo "$2" >"/sys/bus/pci/devices/$1/driver_override"
    echo "$1" >/sys/bus/pci/drivers_probe
    n=0
    while [ "$(vfio_driver "$1")" != "$2" ] && [ $n -lt 50 ]; do n=$((n + 1)); usleep 100000; done
    [ "$(vfio_driver "$1")" = "$2" ]
}

# vfio_fail TEXT: one VFIO-FAIL marker.
vfio_fail() { say "VFIO-FAIL $*"; FAIL=$((FAIL + 1)); }

# vfio_sluice_blk: sluice (event mode) exports an 8 MiB file in /tmp; sluice-gen blk writes a
# pattern over it and verifies it through the socket; SIGTERM must end sluice with status 0.
vfio_sluice_blk() {
    mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm    # the stats segment lives there
    dd if=/dev/zero of=/tmp/disk.img bs=1M count=8 2>/dev/null
    printf '[dataplane]\ncores = 0\nsocket-dir = /tmp\n[disk d]\nfile = /tmp/disk.img\n[blk vdb]\ndevice = disk:d\nsocket = vdb.sock\n' >/tmp/run.ini
    /usr/bin/sluice --config /tmp/run.ini >/tmp/sluice.log 2>&1 &
    spid=$!
    n=0
    while [ ! -S /tmp/vdb.sock ] && [ $n -lt 100 ]; do n=$((n + 1)); usleep 100000; done
    w=$(/usr/bin/sluice-gen blk write --socket /tmp/vdb.sock --pattern 42 --offset 1m --length 2m 2>&1); wr=$?
    v=$(/usr/bin/sluice-gen blk verify --socket /tmp/vdb.sock --pattern 42 --offset 1m --length 2m 2>&1); vr=$?
    kill -TERM "$spid"; wait "$spid"; sr=$?
    say "VFIO-SLUICE log $(grep -E 'huge|mempool' /tmp/sluice.log | cut -c26- | tr '\n' '|')"
    say "VFIO-SLUICE blk write=$wr verify=$vr sluice_exit=$sr | $(echo "$v" | tail -n 1) | $(tail -n 2 /tmp/sluice.log | tr '\n' '|')"
    if [ "$wr$vr$sr" = 000 ]; then OK=$((OK + 1)); else vfio_fail "sluice blk in the guest: $w"; fi
}

# shellcheck disable=SC2012  # sysfs names are plain
# Every NVMe controller: what the kernel driver sees, then vfio-pci (group, /dev/vfio/N,
# the probe, sluice), then nvme again and the same first 64 KiB of each namespace.
role_vfio_probe() {
    say "VFIO-IOMMU classes=$(ls /sys/class/iommu 2>/dev/null | tr '\n' ' ')groups=$(ls /sys/kernel/iommu_groups 2>/dev/null | wc -l) cmdline_iommu=$(grep -o 'intel_iommu=[^ ]*' /proc/cmdline)"
    found=0
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/class")" = 0x010802 ] || continue
        bdf=${d##*/}; found=$((found + 1))
        grp=$(readlink "$d/iommu_group"); grp=${grp##*/}
        members=$(ls "/sys/kernel/iommu_groups/$grp/devices" 2>/dev/null | tr '\n' ',')
        say "VFIO-CTRL $bdf id=$(cat "$d/vendor"):$(cat "$d/device") driver=$(vfio_driver "$bdf") group=${grp:-none} members=${members%,}"
        [ -n "$grp" ] || { vfio_fail "$bdf has no IOMMU group (no IOMMU: intel-iommu device + intel_iommu=on)"; continue; }
        n=0
        while ! ls "$d"/nvme/nvme*/nvme*n* >/dev/null 2>&1 && [ $n -lt 50 ]; do n=$((n + 1)); usleep 100000; done
        sums=""; nscount=0
        for ns in "$d"/nvme/nvme*/nvme*n*; do
            [ -e "$ns" ] || continue
            nd=${ns##*/}
            sum=$(dd if="/dev/$nd" bs=65536 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
            sums="$sums $nd=$sum"; nscount=$((nscount + 1))
            say "VFIO-NS $nd sectors=$(cat "/sys/block/$nd/size") lbs=$(cat "/sys/block/$nd/queue/logical_block_size") serial=$(tr -d ' ' <"${ns%/*}/serial") md5_64k=$sum"
        done
        if [ -n "${P_kbench:-}" ] && [ -n "$nd" ]; then    # QD1 4 KiB direct reads through the kernel driver
            now_cs; t0=$NOW
            i=0
            while [ $i -lt "$P_kbench" ]; do
                dd if="/dev/$nd" of=/dev/null bs=4096 count=1 skip=$(( (i * 7919) % 2048 )) iflag=direct 2>/dev/null
                i=$((i + 1))
            done
            now_cs
            say "VFIO-KBENCH $nd reads=$P_kbench ms=$(( (NOW - t0) * 10 )) (one dd process per read)"
            now_cs; t0=$NOW
            dd if="/dev/$nd" of=/dev/null bs=4096 count="$P_kbench" iflag=direct 2>/dev/null
            now_cs
            say "VFIO-KBENCH $nd sequential reads=$P_kbench ms=$(( (NOW - t0) * 10 )) (one dd)"
        fi
        if ! vfio_bind "$bdf" vfio-pci; then vfio_fail "$bdf did not bind vfio-pci (driver=$(vfio_driver "$bdf"))"; continue; fi
        if [ -c "/dev/vfio/$grp" ]; then
            say "VFIO-BOUND $bdf driver=vfio-pci dev=/dev/vfio/$grp"; OK=$((OK + 1))
        else
            vfio_fail "$bdf bound but no /dev/vfio/$grp"
        fi
        if [ -x /usr/bin/vfio-nvme-probe ]; then
            # shellcheck disable=SC2086  # sl.probeargs: extra words for the probe
            /usr/bin/vfio-nvme-probe "$bdf" ${P_probeargs:-} 2>&1
        fi
        if [ -x /usr/bin/sluice ] && [ "$found" = 1 ]; then
            say "VFIO-SLUICE version=$(/usr/bin/sluice --version 2>&1 | head -n 1) rc=$?"
            if [ -n "${P_sluicecfg:-}" ]; then
                out=$(/usr/bin/sluice --check --config "$P_sluicecfg" 2>&1); rc=$?
                say "VFIO-SLUICE check rc=$rc $(echo "$out" | tr '\n' '|' | cut -c1-300)"
            fi
            [ -x /usr/bin/sluice-gen ] && vfio_sluice_blk
        fi
        echo "" >"$d/driver_override"
        if ! vfio_bind "$bdf" nvme; then vfio_fail "$bdf did not rebind nvme (driver=$(vfio_driver "$bdf"))"; continue; fi
        n=0    # wait for as many namespaces as before
        while [ "$(ls -d "$d"/nvme/nvme*/nvme*n* 2>/dev/null | wc -l)" != "$nscount" ] && [ $n -lt 100 ]; do
            n=$((n + 1)); usleep 100000
        done
        again=""
        for ns in "$d"/nvme/nvme*/nvme*n*; do
            [ -e "$ns" ] || continue
            nd=${ns##*/}
            again="$again $nd=$(dd if="/dev/$nd" bs=65536 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
        done
        if [ -n "$sums" ] && [ "$again" = "$sums" ]; then
            say "VFIO-REBOUND $bdf driver=nvme same_bytes=yes$again"; OK=$((OK + 1))
        else
            vfio_fail "$bdf after rebind: before:$sums after:$again"
        fi
    done
    [ "$found" -gt 0 ] || vfio_fail "no NVMe controller (class 010802)"
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
        vfio-probe) role_vfio_probe ;;
        nvme-test)
            if [ -r /etc/sluice/nvme-guest.sh ]; then
                # shellcheck source=/dev/null  # added by test-nvme.sh's archive
                . /etc/sluice/nvme-guest.sh
                role_nvme_test
            else
                say "ERROR role nvme-test needs /etc/sluice/nvme-guest.sh (tools/guest/test-nvme.sh adds it)"
                FAIL=$((FAIL + 1))
            fi ;;
        nvme-bench)
            if [ -r /etc/sluice/nvme-guest.sh ] && [ -r /etc/sluice/nvme-bench-guest.sh ]; then
                # shellcheck source=/dev/null  # added by nvme-vs-kernel.sh's archive
                . /etc/sluice/nvme-guest.sh
                # shellcheck source=/dev/null
                . /etc/sluice/nvme-bench-guest.sh
                role_nvme_bench
            else
                say "ERROR role nvme-bench needs /etc/sluice/nvme-guest.sh and nvme-bench-guest.sh (tools/bench/nvme-vs-kernel.sh adds them)"
                FAIL=$((FAIL + 1))
            fi ;;
        *)     say "ERROR unknown role $ROLE"; FAIL=$((FAIL + 1)) ;;
    esac
    finish
}

main
