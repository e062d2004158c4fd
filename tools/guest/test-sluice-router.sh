#!/bin/bash
# Real-VM system test of sluice's router: two QEMU guests (TCG) on the vhost-user ports vm1 and
# vm2 of `[network prod]` (10.0.0.0/24, fd00:1::/64), no static addresses. vm1 has a `mac` key,
# vm2 none (it binds the first source MAC after connect).
#
#   tools/guest/test-sluice-router.sh [--poll-arg N|event] [--log-level LEVEL]
#
# Each guest boots router-guest.sh (rdinit): busybox udhcpc with router-udhcpc.script applies
# the /32 and option 121's routes (169.254.0.1/32 on-link, default via it); `dhcpcd -6` gets a
# /128 by DHCPv6 when the host has dhcpcd (dhcpcd-base) to copy into the guest, otherwise the
# IPv6 part is skipped with one `IPv6 skipped: ...` line. The test drives the guests through a
# second serial port (a unix socket per guest).
#
# Checks, in order:
#   lease    both guests bound an address of 10.0.0.0/24 (different ones), subnet mask /32,
#            option 121 = 169.254.0.1/32 on-link + 0.0.0.0/0 via 169.254.0.1; IPv6: an
#            address of fd00:1::/64 each and a default route via fe80::1
#   reach    each guest pings the gateway 169.254.0.1 and the other guest (IPv6: fe80::1 and
#            the other guest's /128)
#   leases   `sluice-stat --leases prod` (text and --json) lists both MACs with their addresses
#            on vm1/vm2; network.prod.leases = 2; dhcp4.discover/offer/request/ack >= 2,
#            nak = 0; routed_packets > 0, arp.replies > 0 (IPv6: dhcp6.reply >= 2, ra.sent > 0);
#            per port rx + frames the router built = tx + drops + punted
#   restart  SIGTERM (status 0, the lease file stays in state-dir), sluice started again with
#            the same config; both guests (same boot, QEMU reconnects) forget their lease and
#            ask again: each gets the same address (IPv4 from a fresh DISCOVER, IPv6 from a
#            fresh SOLICIT), they reach each other again, and SIGTERM leaves no socket or shm file
#
#   --poll-arg N    sluice --poll N (0 = busy poll); `event` = no --poll (default: event mode)
#   --log-level L   sluice --log-level (default debug; the log is shown on failure)
#
# Environment: SLUICE_BIN_DIR (sluice, sluice-stat; default <repo>/.build/debug, then
# .build/release), SLUICE_CORES (default 1), BOOT_TIMEOUT (120), STEP_TIMEOUT (45),
# SLUICE_KEEP=1 keeps the run directory, SLUICE_ROUTER_NO_DHCP6=1 leaves dhcpcd out.
# Output: progress on stderr, one `PASS ...` line on stdout. Exit 0 pass, 1 fail,
# 2 bad usage, 77 skipped (a prerequisite is missing; one `SKIP: reason` line on stdout).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

POLL_ARG=event
LOG_LEVEL=debug
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --poll-arg) POLL_ARG=${2:-}; shift ;;
        --log-level) LOG_LEVEL=${2:-}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "test-sluice-router: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$POLL_ARG" in
    event) POLL_OPT=(); POLL_NAME=event ;;
    '' | *[!0-9]*) echo "test-sluice-router: --poll-arg takes a number of µs or 'event'" >&2; exit 2 ;;
    *) POLL_OPT=(--poll "$POLL_ARG"); POLL_NAME="poll=$POLL_ARG" ;;
esac

# shellcheck source=lib.sh
source "$HERE/lib.sh"
sl_need_root "QEMU guests, /dev/shm"
sl_require qemu-system-x86_64 qemu-system-x86
sl_require python3 python3
sl_require cpio cpio
sl_find_sluice
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}
STEP_TIMEOUT=${STEP_TIMEOUT:-45}
CORES=${SLUICE_CORES:-1}
INST="rttest-$$"
SHM_STATS=/dev/shm/sluice-$INST.stats
MAC_A=02:00:00:00:10:01
MAC_B=02:00:00:00:10:02

sl_setup "sluice-router"
sl_on_cleanup "rm -f /dev/shm/sluice-$INST.*"
sl_ensure_guest >&2
SOCK_A=$SL_RUN/vm1.sock
SOCK_B=$SL_RUN/vm2.sock
STATE=$SL_RUN/state
LOG=$SL_RUN/sluice.log
SLUICE_PID=""
VM_A=""
VM_B=""
ALL=""

fail() {
    sl_log "FAIL ($POLL_NAME): $*"
    sl_fail_report --leases prod
    echo "FAIL: $*"
    exit 1
}

# ---- the guest image: the standard initramfs + an archive with the router guest's files ----
# The kernel unpacks concatenated cpio archives in order; rdinit= picks router-guest.sh.
GDIR=$SL_RUN/guest
OVL=$SL_RUN/overlay
mkdir -p "$GDIR" "$OVL/etc/sluice"
install -m 0755 "$HERE/router-guest.sh" "$OVL/etc/sluice/router-guest.sh"
install -m 0755 "$HERE/router-udhcpc.script" "$OVL/etc/sluice/router-udhcpc.script"
V6_SKIP=""
if [ "${SLUICE_ROUTER_NO_DHCP6:-0}" != 1 ]; then
    command -v dhcpcd >/dev/null 2>&1 || sl_need_cmd dhcpcd dhcpcd-base || true
    DHCPCD=$(command -v dhcpcd || true)
    if [ -n "$DHCPCD" ]; then
        # dhcpcd and the shared objects it loads; its privilege-separation user.
        mkdir -p "$OVL/usr/sbin" "$OVL/var/lib/dhcpcd" "$OVL/run/dhcpcd"
        cp "$DHCPCD" "$OVL/usr/sbin/dhcpcd"
        for lib in $(ldd "$DHCPCD" | grep -o '/[^ ]*'); do
            mkdir -p "$OVL$(dirname "$lib")"
            cp -L "$lib" "$OVL$lib"
        done
        printf 'root:x:0:0:root:/root:/bin/sh\ndhcpcd:x:100:65534:dhcpcd:/run/dhcpcd:/bin/false\n' >"$OVL/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$OVL/etc/group"
    else
        V6_SKIP="no dhcpcd on the host to put in the guest (apt-get install dhcpcd-base); busybox has no udhcpc6"
    fi
else
    V6_SKIP="SLUICE_ROUTER_NO_DHCP6=1"
fi
(cd "$OVL" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) |
    gzip -1 -n >"$SL_RUN/overlay.gz"
cat "$SL_GUEST_DIR/initramfs.gz" "$SL_RUN/overlay.gz" >"$GDIR/initramfs.gz"
ln -s "$SL_GUEST_DIR/vmlinuz" "$GDIR/vmlinuz"

# ---- sluice ----
cat >"$SL_RUN/router.ini" <<EOF
; written by test-sluice-router.sh
[dataplane]
hugepages = auto
instance = $INST
state-dir = $STATE

[network prod]
ports = vm1, vm2
ipv4-subnet = 10.0.0.0/24
ipv6-prefix = fd00:1::/64
dns = 10.0.0.53, fd00:1::53
domain = prod.internal
lease-time = 600

[port vm1]
type = vhost-user
socket = $SOCK_A
mac = $MAC_A

[port vm2]
type = vhost-user
socket = $SOCK_B
EOF

sl_start_sluice "$SL_RUN/router.ini" "$SHM_STATS"
sl_wait_listening "$SOCK_A" "$SOCK_B"
sl_log "sluice running (pid $SLUICE_PID, ${POLL_OPT[*]:-event mode})"

# ---- helpers ----
stat_read() { JSON=$("$STAT" --instance "$INST" --json) || fail "sluice-stat --instance $INST --json failed"; }
counter() { local v; v=$(sl_counter "$JSON" "$1"); echo "${v:-0}"; }

# open_port G: a process that holds one connection to guest G's command port (QEMU drops
# what a client sent but the guest's UART had not taken yet when the client closes) and
# forwards the lines written to file descriptor CTL_G (a FIFO).
open_port() {
    mkfifo "$SL_RUN/$1.fifo"
    python3 -u -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
for _ in range(300):
    try:
        s.connect(sys.argv[1])
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("cannot connect to " + sys.argv[1])
for line in sys.stdin:
    s.sendall(line.encode())
' "$SL_RUN/$1.ctl" <"$SL_RUN/$1.fifo" >>"$SL_RUN/$1.fwd" 2>&1 &
    sl_track_pid $!
    local fd
    exec {fd}>"$SL_RUN/$1.fifo"
    eval "CTL_$1=$fd"
}

# send G LINE: one command line to guest G.
send() {
    local fd
    eval "fd=\$CTL_$1"
    printf '%s\n' "$2" >&"$fd" || fail "cannot write to guest $1's command port: $(cat "$SL_RUN/$1.fwd")"
}

# guest_marker G REGEX FROM WHAT [TIMEOUT]: the marker line (in LINE) after byte FROM of G's log.
guest_marker() {
    LINE=$(sl_wait_marker "$SL_RUN/$1.log" "$2" "${5:-$STEP_TIMEOUT}" "$3" "$ALL") || fail "guest $1: $4"
    sl_log "$1: $LINE"
}

# start_cmd G LINE: send LINE to guest G (its log offset in OFF_G).
start_cmd() {
    eval "OFF_$1=$(sl_log_size "$SL_RUN/$1.log")"
    send "$1" "$2"
}

# wait_cmd G LINE WHAT: wait for G's CMD-DONE of LINE; a PING-FAIL, DHCP4/6-FAIL or ERROR
# marker on the way fails the test. The command's markers are left in OUT.
wait_cmd() {
    local off bad
    eval "off=\$OFF_$1"
    guest_marker "$1" "CMD-DONE ${2%% *}" "$off" "no CMD-DONE for '$2' ($3)" 90
    OUT=$(tail -c +"$((off + 1))" "$SL_RUN/$1.log" | tr -d '\r' | grep -a -o 'SLUICE-GUEST: .*' || true)
    bad=$(grep -E 'PING-FAIL|DHCP[46]-FAIL|ERROR' <<<"$OUT" || true)
    [ -z "$bad" ] || fail "guest $1, $3: $bad"
}

run_cmd() { start_cmd "$1" "$2"; wait_cmd "$@"; }

# lease4 TEXT: the address of the last DHCP4-LEASE marker in TEXT (without /len).
lease4() { grep -a -o 'DHCP4-LEASE ip=[0-9.]*/[0-9]*' <<<"$1" | tail -n 1 | sed 's/.*ip=//'; }
lease6() { grep -a -o 'DHCP6-LEASE addr=[0-9a-f:]*/[0-9]*' <<<"$1" | tail -n 1 | sed 's/.*addr=//'; }

# check_accounting: per port, rx + frames the router built = tx + drops + punted (network-wide
# sums). Read up to 5 times: a router advertisement may be built but not yet sent.
check_accounting() {
    local taken accounted
    for _ in 1 2 3 4 5; do
        sleep 0.3
        stat_read
        taken=$(python3 - "$JSON" <<'EOF'
import json, sys
c = json.loads(sys.argv[1])["counters"]
v = lambda n: c.get(n, 0)
built = sum(v("network.prod." + n) for n in ["ra.sent", "nd.adverts", "dhcp4.offer", "dhcp4.ack", "dhcp4.nak",
                                              "dhcp6.advertise", "dhcp6.reply", "icmp.errors"])
rx = v("port.vm1.rx_packets") + v("port.vm2.rx_packets")
drops = sum(x for n, x in c.items() if n.startswith("port.vm1.drop.") or n.startswith("port.vm2.drop."))
out = v("port.vm1.tx_packets") + v("port.vm2.tx_packets") + drops + v("network.prod.punted")
print(rx + built, out)
EOF
)
        read -r taken accounted <<<"$taken"
        [ "$taken" != "$accounted" ] || { ACCOUNT="rx+built=$taken=tx+drops+punted"; return 0; }
    done
    fail "counters do not add up: rx + built = $taken, tx + drops + punted = $accounted: $JSON"
}

# check_leases WHEN: sluice-stat --leases prod lists MAC_A/MAC_B with A4/B4 (and A6/B6).
check_leases() {
    local text js m
    text=$("$STAT" --instance "$INST" --leases prod) || fail "sluice-stat --leases prod failed ($1)"
    sl_log "sluice-stat --leases prod ($1):"$'\n'"$text"
    for m in "$MAC_A vm1 $A4 ${A6%/*}" "$MAC_B vm2 $B4 ${B6%/*}"; do
        # shellcheck disable=SC2086  # four words
        set -- $m
        awk -v m="$1" -v p="$2" -v a="$3" -v s="${4:-}" \
            '$1 == m && $2 == a && $NF == p && (s == "" || $4 == s) { f = 1 } END { exit !f }' <<<"$text" ||
            fail "--leases prod ($WHEN): no row '$1 $3 ${4:-} ... $2':"$'\n'"$text"
    done
    js=$("$STAT" --instance "$INST" --leases prod --json) || fail "sluice-stat --leases prod --json failed"
    python3 - "$js" "$MAC_A" "$A4" "${A6%/*}" "$MAC_B" "$B4" "${B6%/*}" <<'EOF' || fail "--leases prod --json ($WHEN): $js"
import json, sys
t = json.loads(sys.argv[1])
rows = {r["mac"]: r for r in t["leases"]}
a = sys.argv[2:]
for mac, v4, v6 in (a[0:3], a[3:6]):
    r = rows[mac]
    assert r["ipv4"] == v4 and r["ipv4_bound"] and r["ipv4_expires_in"] > 0, r
    if v6:
        assert r["ipv6"] == v6 and r["ipv6_bound"], r
assert t["network"] == "prod" and t["total"] == 2, t
EOF
}

# ---- guests ----
for g in a b; do
    if [ "$g" = a ]; then sock=$SOCK_A mac=$MAC_A; else sock=$SOCK_B mac=$MAC_B; fi
    sl_start_vm "$g" --guest-dir "$GDIR" --reconnect 1 --socket "$sock" --mac "$mac" \
        --append "rdinit=/etc/sluice/router-guest.sh sl.count=3 sl.wait=10" \
        -- -serial "unix:$SL_RUN/$g.ctl,server=on,wait=off"
    if [ "$g" = a ]; then VM_A=$SL_LAST_PID; else VM_B=$SL_LAST_PID; fi
    open_port "$g"
done
ALL="$VM_A $VM_B $SLUICE_PID"

# ---- 1. leases at boot ----
sl_guest_line a 'SLUICE-GUEST: BOOT' 0 "guest a did not boot"
sl_guest_line b 'SLUICE-GUEST: BOOT' 0 "guest b did not boot"
for g in a b; do
    sl_guest_line "$g" 'SLUICE-GUEST: (READY|NET-FAIL)' 0 "guest $g: no READY (DHCP at boot)"
    [[ $LINE == *READY* ]] || fail "guest $g: $LINE"
done
MA=$(sl_markers "$SL_RUN/a.log")
MB=$(sl_markers "$SL_RUN/b.log")
A4=$(lease4 "$MA") B4=$(lease4 "$MB")
[ -n "$A4" ] || fail "guest a has no IPv4 lease: $(grep -a DHCP4 <<<"$MA")"
[ -n "$B4" ] || fail "guest b has no IPv4 lease: $(grep -a DHCP4 <<<"$MB")"
for x in "$A4" "$B4"; do
    [[ $x == 10.0.0.*/32 ]] || fail "lease $x is not a /32 of 10.0.0.0/24"
done
[ "$A4" != "$B4" ] || fail "both guests got $A4"
for t in "$MA" "$MB"; do
    line=$(grep -a 'DHCP4-LEASE' <<<"$t" | tail -n 1)
    [[ $line == *"routes=169.254.0.1/32,0.0.0.0,0.0.0.0/0,169.254.0.1"* ]] ||
        fail "option 121 is not '169.254.0.1/32 on-link, default via 169.254.0.1': $line"
    [[ $line == *"dns=10.0.0.53"* && $line == *"domain=prod.internal"* && $line == *"lease=600"* ]] ||
        fail "DNS/domain/lease time missing: $line"
done
A4=${A4%/32} B4=${B4%/32}
A6="" B6=""
if [ -z "$V6_SKIP" ]; then
    A6=$(lease6 "$MA") B6=$(lease6 "$MB")
    [ -n "$A6" ] || fail "guest a has no DHCPv6 address: $(grep -a DHCP6 <<<"$MA")"
    [ -n "$B6" ] || fail "guest b has no DHCPv6 address: $(grep -a DHCP6 <<<"$MB")"
    for x in "$A6" "$B6"; do
        [[ $x == fd00:1::*/128 ]] || fail "DHCPv6 address $x is not a /128 of fd00:1::/64"
    done
    [ "$A6" != "$B6" ] || fail "both guests got $A6"
    for t in "$MA" "$MB"; do
        grep -a 'DHCP6-LEASE' <<<"$t" | tail -n 1 | grep -q 'default=fe80::1' ||
            fail "no default route via fe80::1: $(grep -a DHCP6 <<<"$t")"
    done
fi
T_LEASE=$(sl_elapsed)
sl_log "leases: a $A4 ${A6:-}, b $B4 ${B6:-} at ${T_LEASE}s"
SUMMARY="lease: a=$A4 b=$B4 /32 with option 121"
[ -n "$V6_SKIP" ] || SUMMARY="$SUMMARY, v6 a=${A6%/128} b=${B6%/128} /128"

# ---- 2. reach ----
# ping_all WHAT: both guests at once ping the gateway and each other (v4, then v6).
ping_all() {
    local pa="ping 169.254.0.1 $B4${A6:+ fe80::1 ${B6%/*}}" pb="ping 169.254.0.1 $A4${B6:+ fe80::1 ${A6%/*}}"
    start_cmd a "$pa"
    start_cmd b "$pb"
    wait_cmd a "$pa" "$1"
    wait_cmd b "$pb" "$1"
}
ping_all "reach"
T_REACH=$(sl_elapsed)
SUMMARY="$SUMMARY; reach: gateway and peer$([ -n "$V6_SKIP" ] || echo ' v4+v6') at ${T_REACH}s"

# ---- 3. leases and counters ----
WHEN="first start"
check_leases "$WHEN"
stat_read
for n in discover offer request ack; do
    [ "$(counter "network.prod.dhcp4.$n")" -ge 2 ] || fail "network.prod.dhcp4.$n = $(counter "network.prod.dhcp4.$n") < 2"
done
[ "$(counter network.prod.dhcp4.nak)" = 0 ] || fail "network.prod.dhcp4.nak = $(counter network.prod.dhcp4.nak)"
[ "$(counter network.prod.leases)" = 2 ] || fail "network.prod.leases = $(counter network.prod.leases), expected 2"
[ "$(counter network.prod.routed_packets)" -gt 0 ] || fail "network.prod.routed_packets = 0"
[ "$(counter network.prod.arp.replies)" -gt 0 ] || fail "network.prod.arp.replies = 0"
if [ -z "$V6_SKIP" ]; then
    [ "$(counter network.prod.dhcp6.reply)" -ge 2 ] || fail "network.prod.dhcp6.reply = $(counter network.prod.dhcp6.reply) < 2"
    # (nd.adverts may stay 0: the RA carries the router's MAC, so a guest need not solicit it.)
    [ "$(counter network.prod.ra.sent)" -gt 0 ] || fail "network.prod.ra.sent = 0"
fi
ACK1=$(counter network.prod.dhcp4.ack)
check_accounting
sl_log "counters: dhcp4.ack=$ACK1 routed=$(counter network.prod.routed_packets) arp.replies=$(counter network.prod.arp.replies) dhcp6.reply=$(counter network.prod.dhcp6.reply) ra.sent=$(counter network.prod.ra.sent) nd.adverts=$(counter network.prod.nd.adverts); $ACCOUNT"
SUMMARY="$SUMMARY; leases: 2 rows, dhcp4.ack=$ACK1, $ACCOUNT"

# ---- 4. restart with the leases kept ----
sl_sigterm_sluice
[ -s "$STATE/leases-prod" ] || fail "no lease file $STATE/leases-prod after SIGTERM"
sl_start_sluice "$SL_RUN/router.ini" "$SHM_STATS"
sl_wait_listening "$SOCK_A" "$SOCK_B"
ALL="$VM_A $VM_B $SLUICE_PID"
sl_log "sluice restarted (pid $SLUICE_PID)"
T_RESTART=$(sl_elapsed)
# The leases come back from state-dir: listed and routed before any guest asks again (the
# allocation is stable per MAC anyway, so only this shows that the file was read).
WHEN="after the restart, from state-dir"
check_leases "$WHEN"
stat_read
[ "$(counter network.prod.dhcp4.ack)" = 0 ] || fail "dhcp4.ack = $(counter network.prod.dhcp4.ack) before any guest asked"
ping_all "after the restart, leases from state-dir"
T_KEPT=$(awk -v a="$T_RESTART" -v b="$(sl_elapsed)" 'BEGIN { printf "%.1f", b - a }')
# Each guest forgets its lease and asks again from scratch: the same address.
for fam in 4 6; do
    [ "$fam" = 4 ] || [ -z "$V6_SKIP" ] || continue
    start_cmd a "dhcp$fam"
    start_cmd b "dhcp$fam"
    for g in a b; do
        wait_cmd "$g" "dhcp$fam" "DHCPv$fam after the restart"
        if [ "$fam" = 4 ]; then
            got=$(lease4 "$OUT") got=${got%/32}
            if [ "$g" = a ]; then want=$A4; else want=$B4; fi
        else
            got=$(lease6 "$OUT")
            if [ "$g" = a ]; then want=$A6; else want=$B6; fi
        fi
        [ "$got" = "$want" ] || fail "guest $g had $want before the restart, asked again: '${got:-nothing}'"
    done
done
run_cmd a "ping $B4${B6:+ ${B6%/*}}" "across after asking again"
WHEN="after the restart"
check_leases "$WHEN"
stat_read
[ "$(counter network.prod.dhcp4.ack)" -ge 2 ] || fail "after the restart dhcp4.ack = $(counter network.prod.dhcp4.ack) < 2"
[ "$(counter network.prod.dhcp4.nak)" = 0 ] || fail "after the restart dhcp4.nak = $(counter network.prod.dhcp4.nak)"
[ "$(counter network.prod.leases)" = 2 ] || fail "after the restart network.prod.leases = $(counter network.prod.leases)"
check_accounting
T_AGAIN=$(awk -v a="$T_RESTART" -v b="$(sl_elapsed)" 'BEGIN { printf "%.1f", b - a }')
SUMMARY="$SUMMARY; restart: leases listed and routed again ${T_KEPT}s after it, same addresses$([ -n "$V6_SKIP" ] || echo ' v4+v6') asked again ${T_AGAIN}s after it"

# ---- 5. stop ----
sl_sigterm_sluice
if [ -e "$SOCK_A" ] || [ -e "$SOCK_B" ]; then fail "sluice left its socket(s) behind"; fi
left=$(ls /dev/shm/sluice-"$INST".* 2>/dev/null || true)
[ -z "$left" ] || fail "sluice left shared memory behind: $left"
SUMMARY="$SUMMARY; stop ${STOP_SECS}s status 0, nothing left"
SLUICE_PID=""
sl_finish
[ -z "$V6_SKIP" ] || { sl_log "IPv6 skipped: $V6_SKIP"; SUMMARY="$SUMMARY; IPv6 skipped: $V6_SKIP"; }
echo "PASS test-sluice-router $POLL_NAME: $SUMMARY; total $(sl_elapsed)s"
