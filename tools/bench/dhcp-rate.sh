#!/usr/bin/env bash
# DHCPv4 exchanges (DISCOVER, OFFER, REQUEST, ACK) per second that sluice's router
# answers: one [network] with CLIENTS tap ports, a client per port (dhcp-rate.c over an
# AF_PACKET socket on the tap's kernel side, the port's configured MAC), each keeping one
# exchange in flight. The DHCP server runs on sluice's control thread; the workers punt
# the requests to it and send its answers.
#
#   tools/bench/dhcp-rate.sh [OUT.md]      (default: print only)
#
# Environment: CLIENTS="1 8" (one run per count), SECONDS_PER_RUN=5, REPEATS=3, CPU=1 (sluice's
#   worker), STATES="disk tmpfs" (the state-dir, where every lease change is written and
#   fsynced: under /tmp, or under /dev/shm where fsync costs nothing), SLUICE_BIN_DIR, KEEP_LOGS=1.
# Exit: 0 done, 1 error, 77 not root or a tool is missing.

set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=bench-lib.sh
. "$root/tools/bench/bench-lib.sh"
out="${1:-}"
CLIENTS=${CLIENTS:-1 8}; STATES=${STATES:-disk tmpfs}; SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}; REPEATS=${REPEATS:-3}; CPU=${CPU:-1}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (tap devices, AF_PACKET)"; exit 77; }
for t in cc ip; do command -v "$t" >/dev/null || { echo "SKIP: $t not found (apt-get install -y gcc iproute2)"; exit 77; }; done
find_sluice
note_run_start
work="$(mktemp -d /tmp/dhcp-rate.XXXXXX)"
instance="dhcpr$$"
SL_PID=""
shm_state="/dev/shm/dhcp-rate-state.$$"
cleanup() { stop_pid "$SL_PID"; SL_PID=""; rm -f "/dev/shm/sluice-$instance.stats"; rm -rf "$shm_state"; drop_work; }
install_traps
cc -O2 -Wall -o "$work/dhcp-rate" "$root/tools/bench/dhcp-rate.c" || { echo "cannot build dhcp-rate.c" >&2; exit 1; }

# config N ID STATE: N tap ports dr<pid>c<i> with MACs 02:00:00:00:d0:<i> in [network dhcp], 10.77.0.0/16
config() {
    local n=$1 i ports=""
    {
        local state="$work/state-$2"
        [ "$3" = tmpfs ] && state="$shm_state/state-$2"
        printf '[dataplane]\ncores = %s\npoll = 0\nhugepages = off\nsocket-dir = %s\nstate-dir = %s\ninstance = %s\n\n' \
            "$CPU" "$work" "$state" "$instance"
        for i in $(seq 0 $((n - 1))); do
            printf '[port c%d]\ntype = tap\ninterface = dr%sc%d\nmac = 02:00:00:00:d0:%02x\n\n' "$i" "$$" "$i" "$i"
            ports="$ports${ports:+, }c$i"
        done
        printf '[network dhcp]\nports = %s\nipv4-subnet = 10.77.0.0/16\nlease-time = 600\n' "$ports"
    } >"$work/dhcp-$2.ini"
}

# one_run N ID STATE: sluice with N clients, the client for SECONDS_PER_RUN; appends "N per_second avg_ms max_ms timeouts naks acks"
one_run() {
    local n=$1 id=$2 st=$3 i args=""
    config "$n" "$id" "$st"
    rm -f "/dev/shm/sluice-$instance.stats"
    "$SLUICE" --config "$work/dhcp-$id.ini" --cores "$CPU" --poll 0 >"$work/$id.log" 2>&1 &
    SL_PID=$!
    wait_for 20 log_has "$work/$id.log" "running" || { echo "sluice did not start:" >&2; tail -5 "$work/$id.log" >&2; stop_pid "$SL_PID"; SL_PID=""; return 1; }
    for i in $(seq 0 $((n - 1))); do
        local ifc mac
        ifc="dr$$c$i"; mac=$(printf '02:00:00:00:d0:%02x' "$i")
        # The kernel side: the client's MAC, no IPv6 chatter of its own.
        sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=1" 2>/dev/null
        ip link set "$ifc" address "$mac" up || { echo "cannot bring $ifc up" >&2; stop_pid "$SL_PID"; SL_PID=""; return 1; }
        args="$args $ifc=$mac"
    done
    sleep 0.5
    local a0 line
    a0=$("$STAT" --instance "$instance" --json >"$work/$id.s0.json" && stat_value "$work/$id.s0.json" network.dhcp.dhcp4.ack)
    # shellcheck disable=SC2086
    line=$("$work/dhcp-rate" "$SECONDS_PER_RUN" $args)
    "$STAT" --instance "$instance" --json >"$work/$id.s1.json"
    stop_pid "$SL_PID"; SL_PID=""
    echo "  $id: $line" >&2
    local acks; acks=$(( $(stat_value "$work/$id.s1.json" network.dhcp.dhcp4.ack) - ${a0:-0} ))
    echo "$line" | awk -v n="$st $n" -v acks="$acks" '{for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]}
        print n "\t" v["per_second"] "\t" v["avg_ms"] "\t" v["max_ms"] "\t" v["timeouts"] "\t" v["naks"] "\t" acks "\t" v["exchanges"]}' >>"$work/runs.tsv"
}

: >"$work/runs.tsv"
k=0
for rep in $(seq "$REPEATS"); do
    for st in $STATES; do
        for n in $CLIENTS; do k=$((k + 1)); one_run "$n" "r$k" "$st" || echo "  r$k failed" >&2; done
    done
done
med() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$work/runs.tsv" | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
report() {
    echo "## DHCPv4 exchanges per second (\`tools/bench/dhcp-rate.sh\`)"
    echo
    echo "$started, load average at start $load_at_start; sluice worker on cpu $CPU, control thread unpinned;"
    echo "$REPEATS runs of ${SECONDS_PER_RUN} s per client count, medians. An exchange = DISCOVER → OFFER → REQUEST → ACK,"
    echo "broadcast, from the port's configured MAC; each client starts the next one when its ACK arrives (the same"
    echo "client gets the same address again: the lease is renewed and stored each time)."
    echo
    echo "| state-dir | clients (tap ports) | exchanges/s | avg ms | max ms | timeouts | NAKs | runs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for st in $STATES; do
        for n in $CLIENTS; do
            echo "| $st | $n | $(med "$st $n" 2) | $(med "$st $n" 3) | $(med "$st $n" 4) | $(med "$st $n" 5) | $(med "$st $n" 6) | $(awk -F'\t' -v n="$st $n" '$1 == n {printf "%s%s", s, $2; s = ", "}' "$work/runs.tsv") |"
        done
    done
    echo
    echo "Server-side check: sluice's network.dhcp.dhcp4.ack moved by $(awk -F'\t' '{a += $7; e += $8} END {print a " for " e}' "$work/runs.tsv") exchanges the clients completed."
}
if [ -n "$out" ]; then report >"$out"; cat "$out"; else report; fi
