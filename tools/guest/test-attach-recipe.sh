#!/bin/bash
# The README's "Attaching a QEMU VM" recipes, run as written.
#
#   tools/guest/test-attach-recipe.sh --case qemu      (~15–40 s)
#   tools/guest/test-attach-recipe.sh --case testpmd   (~10 s)
#
# Both start sluice on the README's INI block (<!-- sluice-ini -->), with the socket
# directory /run/sluice/ replaced by a temporary one.
#
#   --case qemu     the README's server-mode QEMU command line (<!-- qemu-server -->), with
#                   only the socket directory, the disk (-drive ...: the test guest's kernel +
#                   initramfs, pinging through port vm1) and ACCEL=kvm → tcg replaced (TCG
#                   boots anywhere; nested KVM often does not), and with it vectors=0: QEMU
#                   7.2 under TCG segfaults as the guest's virtio-net starts on a vhost-user
#                   netdev with MSI-X vectors (seen here with vectors=6 and the default, on
#                   pc and q35; vectors=0 runs). Checks: the guest's
#                   virtio-net comes up with the README's MAC; sluice's vm1 is connected with
#                   no refused or bad message; frames from the guest crossed the p2p link
#                   (port.vm2.drop.link_down > 0: vm2's VM is not there); QEMU printed no
#                   PROTOCOL_F_CONFIG warning and no vhost failure. Needs root and
#                   qemu-system-x86_64.
#   --case testpmd  dpdk-testpmd attached to vm1 as virtio-user with the port's MAC as `mac=`
#                   (DPDK's virtio-user does not read the device config over vhost-user) and
#                   queues=2: testpmd's port 0 has that MAC; sluice's vm1 is connected with no
#                   refused or bad message.
#
# Environment: SLUICE_BIN_DIR (sluice, sluice-stat; default <repo>/.build/debug, then
# .build/release), BOOT_TIMEOUT (60), SLUICE_KEEP=1 keeps the run directory.
# Output: progress on stderr, one `PASS ...` line on stdout. Exit 0 pass, 1 fail, 2 bad usage,
# 77 skipped (one `SKIP: reason` line on stdout).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
README=$(cd "$HERE/../.." && pwd)/README.md

CASE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --case) CASE=${2:-}; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "test-attach-recipe: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$CASE" in qemu|testpmd) ;; *) echo "test-attach-recipe: --case qemu|testpmd" >&2; exit 2 ;; esac

# shellcheck source=lib.sh
source "$HERE/lib.sh"
sl_need_root "vhost-user sockets, /dev/shm, guests"
if [ "$CASE" = qemu ]; then
    sl_require qemu-system-x86_64 qemu-system-x86
else
    sl_require dpdk-testpmd dpdk
fi
sl_find_sluice
BOOT_TIMEOUT=${BOOT_TIMEOUT:-60}
CORES=${SLUICE_CORES:-1}
LOG_LEVEL=debug
INST="attach-$$"
SHM=/dev/shm/sluice-$INST.stats

sl_setup "attach-$CASE"
sl_track_path "$SHM"
LOG=$SL_RUN/sluice.log
SLUICE_PID=""
ALL=""

fail() {
    sl_log "FAIL ($CASE): $*"
    # shellcheck disable=SC2119  # no extra sluice-stat options
    sl_fail_report
    echo "FAIL: $*"
    exit 1
}

# readme_block MARKER: the fenced block right after the line `<!-- MARKER -->`.
readme_block() {
    awk -v m="<!-- $1 -->" '
        $0 == m { found = 1; next }
        found && !open && /^```/ { open = 1; next }
        open && /^```/ { exit }
        open { print }' "$README"
}

# ---- sluice on the README's INI ----
readme_block sluice-ini | sed "s|/run/sluice/|$SL_RUN/|g" >"$SL_RUN/attach.ini"
[ -s "$SL_RUN/attach.ini" ] || fail "README.md has no <!-- sluice-ini --> block"
grep -q "^\[port vm1\]" "$SL_RUN/attach.ini" || fail "the README's INI has no [port vm1]"
MAC=$(awk '/^\[port vm1\]/ { p = 1; next } /^\[/ { p = 0 } p && $1 == "mac" { print $3 }' "$SL_RUN/attach.ini")
[ -n "$MAC" ] || fail "the README's [port vm1] has no mac"
"$SLUICE" --check --config "$SL_RUN/attach.ini" >>"$LOG" 2>&1 || fail "sluice --check refuses the README's INI"
# --instance overrides the INI's, so the run does not collide with a real sluice.
echo "==== $(date +%T) sluice --instance $INST --cores $CORES" >>"$LOG"
"$SLUICE" --config "$SL_RUN/attach.ini" --instance "$INST" --cores "$CORES" --log-level "$LOG_LEVEL" \
    </dev/null >>"$LOG" 2>&1 &
SLUICE_PID=$!
sl_track_pid "$SLUICE_PID"
sl_wait_path "$SHM" 20 "$SLUICE_PID" || fail "sluice did not create $SHM"
sl_wait_listening "$SL_RUN/vm1.sock"
ALL="$SLUICE_PID"

stats() { "$STAT" --instance "$INST" --json; }

# check_port_attached: vm1 connected, no refused or bad message. Sets JSON.
check_port_attached() {
    JSON=$(stats) || fail "sluice-stat --instance $INST"
    local c
    c=$(sl_counter "$JSON" port.vm1.connected)
    [ "$c" = 1 ] || fail "port.vm1.connected = '$c': $JSON"
    c=$(sl_counter "$JSON" port.vm1.vhost.refused_message)
    [ "$c" = 0 ] || fail "port.vm1.vhost.refused_message = $c (see sluice.log): $JSON"
    c=$(sl_counter "$JSON" port.vm1.vhost.bad_message)
    [ "$c" = 0 ] || fail "port.vm1.vhost.bad_message = $c: $JSON"
}

if [ "$CASE" = qemu ]; then
    sl_ensure_guest >&2
    # The README block as written; only the socket directory and the disk are replaced.
    readme_block qemu-server >"$SL_RUN/readme-qemu.sh"
    grep -q '^qemu-system-x86_64 ' "$SL_RUN/readme-qemu.sh" || fail "README.md has no <!-- qemu-server --> QEMU line"
    grep -q -- '-drive file=vm1.qcow2,if=virtio' "$SL_RUN/readme-qemu.sh" || fail "the README's QEMU line has no '-drive file=vm1.qcow2,if=virtio' to replace"
    grep -q -E '(^| )ACCEL=kvm( |$)' "$SL_RUN/readme-qemu.sh" || fail "the README's QEMU block sets no ACCEL=kvm to replace"
    grep -q -F 'vectors=$((2 * Q + 2))' "$SL_RUN/readme-qemu.sh" || fail "the README's QEMU line has no vectors=\$((2 * Q + 2))"
    BOOT="-kernel $SL_GUEST_DIR/vmlinuz -initrd $SL_GUEST_DIR/initramfs.gz"
    BOOT="$BOOT -append 'console=ttyS0 quiet loglevel=3 sl.role=ping sl.ip=10.0.0.1/24 sl.peer=10.0.0.2 sl.timeout=0'"
    sed -e "s|/run/sluice/|$SL_RUN/|g" -e "s|-drive file=vm1.qcow2,if=virtio|$BOOT|" -e 's/ACCEL=kvm/ACCEL=tcg/' \
        -e 's/vectors=\$((2 \* Q + 2))/vectors=0/' \
        -e 's|^qemu-system-x86_64 |exec qemu-system-x86_64 |' "$SL_RUN/readme-qemu.sh" >"$SL_RUN/qemu.sh"
    sl_log "running: $(tr -d '\\\n' <"$SL_RUN/qemu.sh" | tr -s ' ')"
    # -nographic: the serial console (and QEMU's monitor) on stdout; QEMU's messages on stderr.
    bash "$SL_RUN/qemu.sh" </dev/null >"$SL_RUN/vm1.log" 2>"$SL_RUN/vm1.qemu" &
    VM=$!
    sl_track_pid "$VM"
    ALL="$SLUICE_PID $VM"
    LINE=$(sl_wait_marker "$SL_RUN/vm1.log" 'SLUICE-GUEST: (NET-UP|NET-FAIL|MODULES-FAIL)' "$BOOT_TIMEOUT" 0 "$ALL") ||
        fail "the guest did not bring its virtio-net up within ${BOOT_TIMEOUT}s"
    sl_log "vm1: $LINE"
    case "$LINE" in *NET-UP*"mac=$MAC"*) ;; *) fail "guest: $LINE (expected NET-UP with mac=$MAC)" ;; esac
    # ARP for the peer goes out on vm1's queues and over the p2p link to vm2, whose VM is absent.
    drops=0
    for _ in $(seq 50); do
        JSON=$(stats) || fail "sluice-stat --instance $INST"
        drops=$(sl_counter "$JSON" port.vm2.drop.link_down)
        [ "${drops:-0}" -gt 0 ] && break
        sleep 0.2
    done
    [ "${drops:-0}" -gt 0 ] || fail "no frame from the guest reached the p2p link in 10 s: $JSON"
    check_port_attached
    cat "$SL_RUN/vm1.qemu" "$SL_RUN/vm1.log" >"$SL_RUN/all-qemu-output"
    if grep -a -q 'PROTOCOL_F_CONFIG' "$SL_RUN/all-qemu-output"; then
        fail "QEMU warned: $(grep -a 'PROTOCOL_F_CONFIG' "$SL_RUN/all-qemu-output" | head -1)"
    fi
    if grep -a -q -E 'vhost.*(fail|error)|unable to start vhost' "$SL_RUN/all-qemu-output"; then
        fail "QEMU: $(grep -a -E 'vhost.*(fail|error)|unable to start vhost' "$SL_RUN/all-qemu-output" | head -1)"
    fi
    sl_stop_pid "$VM"
    SUMMARY="guest NET-UP mac=$MAC, $drops frame(s) over the p2p link, no PROTOCOL_F_CONFIG warning"
else
    PREFIX="slattach$$"
    sl_on_cleanup "rm -rf /var/run/dpdk/$PREFIX"
    mkfifo "$SL_RUN/testpmd.in"
    # testpmd wants a main lcore and a forwarding one; stdbuf: its port info reaches the log now.
    last=$(($(nproc) - 1))
    [ "$last" -ge 1 ] || sl_skip "testpmd needs 2 CPUs (main + forwarding lcore), this machine has 1"
    stdbuf -oL dpdk-testpmd -l "0,$last" --no-pci --no-huge -m 512 --file-prefix "$PREFIX" \
        --vdev "net_virtio_user0,path=$SL_RUN/vm1.sock,queues=2,mac=$MAC" \
        -- -i --rxq=2 --txq=2 --nb-cores=1 --total-num-mbufs=4096 <"$SL_RUN/testpmd.in" >"$SL_RUN/testpmd.log" 2>&1 &
    TP=$!
    sl_track_pid "$TP"
    exec 3>"$SL_RUN/testpmd.in"
    sl_on_cleanup 'exec 3>&-'
    ALL="$SLUICE_PID $TP"
    sl_wait_marker "$SL_RUN/testpmd.log" '^testpmd> ' 30 0 "$ALL" >/dev/null || fail "testpmd did not reach its prompt"
    echo "show port info 0" >&3
    LINE=$(sl_wait_marker "$SL_RUN/testpmd.log" 'MAC address: ' 10 0 "$ALL") || fail "testpmd printed no port info"
    sl_log "testpmd: $LINE"
    got=$(printf '%s\n' "$LINE" | sed -n 's/.*MAC address: *\([0-9A-Fa-f:]*\).*/\1/p' | tr 'A-F' 'a-f')
    [ "$got" = "$(printf '%s' "$MAC" | tr 'A-F' 'a-f')" ] || fail "testpmd's port 0 has MAC $got, not the port's $MAC"
    check_port_attached
    echo "quit" >&3
    for _ in $(seq 50); do sl_alive "$TP" || break; sleep 0.1; done
    SUMMARY="testpmd port 0 MAC $got (= port vm1 mac), vm1 connected, 0 refused"
fi

sl_sigterm_sluice
echo "PASS test-attach-recipe $CASE: $SUMMARY; total $(sl_elapsed)s"
