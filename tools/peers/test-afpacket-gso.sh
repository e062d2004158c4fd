#!/bin/bash
# System test of an af-packet port on a veth with the kernel's default offloads on
# (TX checksum, TSO, GSO): the peer's stack sends CHECKSUM_PARTIAL frames and 64 KiB
# TCP super-frames, which sluice must complete and cut into segments.
#
#   tools/peers/test-afpacket-gso.sh [--seconds N]
#
#   netns A  tap t1 (swt<id>)      02:00:00:00:aa:01  10.9.0.1/24  iperf3 client
#   netns B  veth peer (vgp<id>)   02:00:00:00:bb:02  10.9.0.2/24  iperf3 server
#   sluice   [switch br0] = t1 (tap) + up0 (af-packet on vg<id>, the veth's other end)
#
# Checks: ping A->B; iperf3 TCP A->B and B->A (-R) each move data (> 0 bits/s
# received, no error); the af-packet port counted rx_packets > 0 and
# drop.bad_length = 0. The veth's offloads are left at their defaults and shown.
#
# Environment: SLUICE_BIN_DIR (sluice, sluice-stat; default <repo>/.build/debug, then
# .build/release). Output: progress on stderr, one `PASS ...` line on stdout with the
# throughput of both directions. Exit 0 pass, 1 fail, 2 bad usage, 77 skipped (one
# `SKIP: reason` line on stdout).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SECONDS_ARG=3
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_ARG=${2:-}; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "test-afpacket-gso: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source=../guest/lib.sh
source "$HERE/../guest/lib.sh"   # the prerequisite checks and sl_find_sluice
sl_need_root "veth, tap, network namespaces"
sl_require iperf3 iperf3
sl_require ip iproute2
sl_need_tun
sl_find_sluice

ID=$(( $$ % 100000 ))
NSA=slgsoA$ID NSB=slgsoB$ID VETH=vg$ID PEER=vgp$ID TAP=swt$ID INST=slgso$ID
DIR=$(mktemp -d /tmp/sluice-gso.XXXXXX)
SPID=
log() { echo "test-afpacket-gso: $*" >&2; }
fail() { echo "FAIL: $*"; [ -f "$DIR/sluice.log" ] && tail -20 "$DIR/sluice.log" >&2; exit 1; }
cleanup() {
    if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
    for ns in "$NSA" "$NSB"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "$VETH" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

cat > "$DIR/sluice.ini" <<EOI
[dataplane]
instance = $INST
[port t1]
type = tap
interface = $TAP
[port up0]
type = af-packet
interface = $VETH
[switch br0]
ports = t1, up0
EOI
ip netns add "$NSA"; ip netns add "$NSB"
ip link add "$VETH" type veth peer name "$PEER"
ip link set "$PEER" netns "$NSB"; ip link set "$VETH" up
ip -n "$NSB" link set "$PEER" address 02:00:00:00:bb:02
ip -n "$NSB" addr add 10.9.0.2/24 dev "$PEER"; ip -n "$NSB" link set "$PEER" up
"$SLUICE" --config "$DIR/sluice.ini" --cores 1 --poll 0 > "$DIR/sluice.log" 2>&1 &
SPID=$!
for _ in $(seq 50); do ip link show "$TAP" >/dev/null 2>&1 && break; sleep 0.1; done
ip link show "$TAP" >/dev/null 2>&1 || fail "sluice did not create tap $TAP"
ip link set "$TAP" netns "$NSA"
ip -n "$NSA" link set "$TAP" address 02:00:00:00:aa:01
ip -n "$NSA" addr add 10.9.0.1/24 dev "$TAP"; ip -n "$NSA" link set "$TAP" up
OFFLOADS=$(ip netns exec "$NSB" ethtool -k "$PEER" 2>/dev/null \
    | awk -F': ' '/^(tx-checksumming|tcp-segmentation-offload|generic-segmentation-offload):/ { printf "%s=%s ", $1, $2 }' || true)
log "peer offloads: ${OFFLOADS:-unknown (no ethtool)}"

ip netns exec "$NSA" ping -c 3 -i 0.2 -W 2 10.9.0.2 > "$DIR/ping" 2>&1 || fail "ping A->B: $(tail -2 "$DIR/ping")"

iperf() {  # iperf() <name> [-R]: received Gbit/s of one TCP run
    ip netns exec "$NSB" iperf3 -s -1 -D -p 5201 >/dev/null 2>&1
    sleep 0.3
    if ! timeout $((SECONDS_ARG + 15)) ip netns exec "$NSA" iperf3 -c 10.9.0.2 -p 5201 -t "$SECONDS_ARG" "$@" \
            > "$DIR/iperf" 2>&1; then
        fail "iperf3 $*: stalled or failed: $(tail -3 "$DIR/iperf")"
    fi
    awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i ~ /bits\/sec/) { v = $(i-1); u = $i } }
         END { if (u ~ /^G/) print v; else if (u ~ /^M/) print v / 1000; else if (u ~ /^K/) print v / 1e6; else print 0 }' "$DIR/iperf"
}
FWD=$(iperf); log "A->B (tap -> af-packet): $FWD Gbit/s"
REV=$(iperf -R); log "B->A (af-packet GSO -> tap): $REV Gbit/s"
awk -v f="$FWD" -v r="$REV" 'BEGIN { exit !(f > 0 && r > 0) }' || fail "no throughput: A->B $FWD, B->A $REV Gbit/s"

JSON=$("$STAT" --instance "$INST" --json --filter port.up0. 2>/dev/null || true)
num() { echo "$JSON" | tr ',{}' '\n\n\n' | awk -F: -v k="\"port.up0.$1\"" '$1 ~ k { gsub(/[^0-9]/, "", $2); print $2; exit }'; }
RX=$(num rx_packets); BAD=$(num drop.bad_length)
[ -n "$RX" ] && [ "$RX" -gt 0 ] || fail "port up0 rx_packets = '${RX}' (stats: $JSON)"
[ "${BAD:-0}" = 0 ] || fail "port up0 drop.bad_length = $BAD"
echo "PASS test-afpacket-gso: ping ok; iperf3 TCP A->B $FWD Gbit/s, B->A $REV Gbit/s; up0 rx_packets $RX, drop.bad_length 0; ${OFFLOADS}"
