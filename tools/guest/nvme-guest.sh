# shellcheck shell=sh
# Guest side of tools/guest/test-nvme.sh, sourced by init.sh for sl.role=nvme-test (it uses
# init.sh's say, vfio_bind, vfio_driver, now_cs, OK and FAIL). The test's extra archive
# carries this file as /etc/sluice/nvme-guest.sh, /usr/bin/sluice and /usr/bin/sluice-gen
# (with their shared libraries) and the plan in /etc/sluice/nvme/:
#
#   scenarios   one line per sluice scenario, run in order: NAME KIND GENFLAG SLUICE-ARGS...
#               KIND run (start, I/O, SIGTERM), restart (the same, then start again on the
#               re-initialised controller, verify every rw/ro line again, SIGTERM) or
#               refuse:WORD (sluice must exit non-zero at start with WORD in its messages);
#               GENFLAG an extra sluice-gen blk option (--event) or -
#   NAME.ini    the scenario's sluice configuration (sockets in /run/nvt)
#   NAME.io     OP SOCKET OFFSET LENGTH SEED BS per line: rw = write the pattern of SEED, then
#               verify it; ro = verify only (a read-only export of what an rw line wrote);
#               deny = the write must fail (read-only export)
#   standin     (present) a check of the harness: the scenarios run before the controller
#               moves to vfio-pci, on the kernel driver's block devices
#   readback    DEVICE-NSID OFFSET LENGTH per line (n1 = namespace 1): after the controller is
#               back on the kernel's nvme driver, the md5 of each range (multiples of 64 KiB)
#
# Markers (`SLUICE-GUEST: ` then):
#   NVME-CTRL <bdf> driver=... group=... namespaces=N / NVME-BOUND <bdf> driver=vfio-pci dev=...
#   NVME-START scen=S run=R secs=T / NVME-START-FAIL scen=S run=R rc=N | <sluice's messages>
#   NVME-IO-OK scen=S run=R op=write|verify|deny sock=... off=... len=... | <sluice-gen line>
#   NVME-IO-FAIL scen=S run=R op=... sock=... off=... len=... rc=N | <sluice-gen lines>
#   NVME-STOP scen=S run=R rc=0 secs=T / NVME-STOP-FAIL scen=S run=R ...
#   NVME-REFUSED scen=S rc=N word=WORD | <message> / NVME-REFUSE-FAIL scen=S ... | <message>
#   NVME-LOG scen=S run=R | <sluice log line>   (after a failure, up to 30 lines)
#   NVME-SCEN scen=S ok=N fail=N
#   NVME-REBOUND <bdf> driver=nvme namespaces=N / NVME-READBACK ns=nN dev=... off=... len=... md5=...
#   NVME-FAIL <text>   (anything outside a scenario)

NVT_DIR=/etc/sluice/nvme
NVT_SOCKS=/run/nvt

# nvt_fail TEXT: a failure outside a scenario.
nvt_fail() { say "NVME-FAIL $*"; FAIL=$((FAIL + 1)); }

# nvt_secs FROM_CS: seconds since FROM_CS (centiseconds from now_cs), one decimal.
nvt_secs() { now_cs; echo "$(( (NOW - $1) / 100 )).$(( (NOW - $1) % 100 / 10 ))"; }

# nvt_alive PID: the process runs and is not a zombie.
nvt_alive() {
    [ -d "/proc/$1" ] || return 1
    case "$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null)" in " Z"*) return 1 ;; esac
    return 0
}

# nvt_messages FILE: sluice's messages other than trace/debug/info/notice log lines (its
# configuration and start errors, warnings), else its last 3 lines, on one line.
nvt_messages() {
    m=$(grep -a -v -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]* (trace|debug|info|notice) |^==== ' "$1" | head -n 4)
    [ -n "$m" ] || m=$(tail -n 3 "$1")
    echo "$m" | tr '\n' '|' | sed 's/|$//' | cut -c1-400
}

# nvt_dump_log S R: the last 30 lines of sluice's log as markers (diagnosis after a failure).
nvt_dump_log() {
    tail -n 30 "/tmp/sluice-$1.log" | while IFS= read -r l; do say "NVME-LOG scen=$1 run=$2 | $l"; done
}

# nvt_sfail S R TEXT: a failed step of scenario S, run R.
nvt_sfail() { say "$3"; SFAIL=$((SFAIL + 1)); }

# nvt_start S R ARGS...: start sluice on S.ini; SPID is set when it listens on every socket
# of S.io within 30 s, else NVME-START-FAIL and SPID empty.
nvt_start() {
    s=$1; r=$2; shift 2
    rm -rf "$NVT_SOCKS"; mkdir -p "$NVT_SOCKS"
    echo "==== run $r: sluice --config $NVT_DIR/$s.ini $*" >>"/tmp/sluice-$s.log"
    now_cs; t0=$NOW
    /usr/bin/sluice --config "$NVT_DIR/$s.ini" "$@" </dev/null >>"/tmp/sluice-$s.log" 2>&1 &
    SPID=$!
    # shellcheck disable=SC2013  # socket names are words
    for sock in $(awk '{ print $2 }' "$NVT_DIR/$s.io" | sort -u); do
        while [ ! -S "$NVT_SOCKS/$sock" ]; do
            if ! nvt_alive "$SPID"; then
                wait "$SPID"; rc=$?
                nvt_sfail "$s" "$r" "NVME-START-FAIL scen=$s run=$r rc=$rc | $(nvt_messages "/tmp/sluice-$s.log")"
                nvt_dump_log "$s" "$r"; SPID=""; return 1
            fi
            now_cs
            if [ $((NOW - t0)) -gt 3000 ]; then
                nvt_sfail "$s" "$r" "NVME-START-FAIL scen=$s run=$r rc=none no socket $sock after 30 s | $(nvt_messages "/tmp/sluice-$s.log")"
                kill -KILL "$SPID"; wait "$SPID"
                nvt_dump_log "$s" "$r"; SPID=""; return 1
            fi
            usleep 100000
        done
    done
    say "NVME-START scen=$s run=$r secs=$(nvt_secs "$t0") pid=$SPID"
    SOK=$((SOK + 1))
}

# nvt_stop S R: SIGTERM; sluice must exit with status 0 within 10 s.
nvt_stop() {
    now_cs; t0=$NOW
    kill -TERM "$SPID"
    while nvt_alive "$SPID" && [ $((NOW - t0)) -lt 1000 ]; do usleep 50000; now_cs; done
    if nvt_alive "$SPID"; then
        kill -KILL "$SPID"; wait "$SPID"
        nvt_sfail "$1" "$2" "NVME-STOP-FAIL scen=$1 run=$2 still running 10 s after SIGTERM (killed)"
        nvt_dump_log "$1" "$2"; SPID=""; return
    fi
    wait "$SPID"; rc=$?
    SPID=""
    if [ "$rc" = 0 ]; then
        say "NVME-STOP scen=$1 run=$2 rc=0 secs=$(nvt_secs "$t0")"; SOK=$((SOK + 1))
    else
        nvt_sfail "$1" "$2" "NVME-STOP-FAIL scen=$1 run=$2 rc=$rc after SIGTERM | $(tail -n 2 "/tmp/sluice-$1.log" | tr '\n' '|')"
        nvt_dump_log "$1" "$2"
    fi
}

# nvt_gen S R OP SOCK OFF LEN SEED BS GENFLAG: one sluice-gen blk write/verify (5 s to
# connect, 5 s without a completion at most); OP deny = a write that must fail.
nvt_gen() {
    cmd=$3; [ "$3" = deny ] && cmd="write"
    flag=$9; [ "$flag" = - ] && flag=""
    # shellcheck disable=SC2086  # flag: one optional word
    out=$(/usr/bin/sluice-gen blk "$cmd" --socket "$NVT_SOCKS/$4" --pattern "$7" --offset "$5" --length "$6" \
        --bs "$8" --connect-timeout 5 --timeout 5 $flag </dev/null 2>&1); rc=$?
    last=$(echo "$out" | tail -n 1 | cut -c1-300)
    what="scen=$1 run=$2 op=$3 sock=${4%.sock} off=$5 len=$6 seed=$7 bs=$8"
    if [ "$3" = deny ]; then
        if [ "$rc" != 0 ]; then say "NVME-IO-OK $what rc=$rc | $last"; SOK=$((SOK + 1)); return; fi
        nvt_sfail "$1" "$2" "NVME-IO-FAIL $what rc=0 write accepted on a read-only export | $last"; return
    fi
    if [ "$rc" = 0 ]; then say "NVME-IO-OK $what | $last"; SOK=$((SOK + 1)); return; fi
    nvt_sfail "$1" "$2" "NVME-IO-FAIL $what rc=$rc | $(echo "$out" | tail -n 3 | tr '\n' '|' | cut -c1-400)"
}

# nvt_io S R GENFLAG PASS: the scenario's I/O lines; PASS first = write+verify rw lines,
# verify ro lines, deny lines; PASS again = verify rw and ro lines only.
nvt_io() {
    while read -r op sock off len seed bs; do
        if ! nvt_alive "$SPID"; then
            nvt_sfail "$1" "$2" "NVME-IO-FAIL scen=$1 run=$2 sluice (pid $SPID) exited during the I/O | $(nvt_messages "/tmp/sluice-$1.log")"
            nvt_dump_log "$1" "$2"; return
        fi
        case "$op" in
            rw) [ "$4" = first ] && nvt_gen "$1" "$2" write "$sock" "$off" "$len" "$seed" "$bs" "$3"
                nvt_gen "$1" "$2" verify "$sock" "$off" "$len" "$seed" "$bs" "$3" ;;
            ro) nvt_gen "$1" "$2" verify "$sock" "$off" "$len" "$seed" "$bs" "$3" ;;
            deny) [ "$4" = first ] && nvt_gen "$1" "$2" deny "$sock" "$off" "$len" "$seed" "$bs" "$3" ;;
        esac
    done <"$NVT_DIR/$1.io"
}

# nvt_refuse S WORD ARGS...: sluice must exit non-zero within 30 s, naming WORD.
nvt_refuse() {
    s=$1; word=$2; shift 2
    rm -rf "$NVT_SOCKS"; mkdir -p "$NVT_SOCKS"
    /usr/bin/sluice --config "$NVT_DIR/$s.ini" "$@" </dev/null >"/tmp/sluice-$s.log" 2>&1 &
    SPID=$!
    now_cs; t0=$NOW
    while nvt_alive "$SPID" && [ $((NOW - t0)) -lt 3000 ]; do usleep 100000; now_cs; done
    if nvt_alive "$SPID"; then
        kill -TERM "$SPID"; usleep 500000; kill -KILL "$SPID" 2>/dev/null; wait "$SPID"
        nvt_sfail "$s" 1 "NVME-REFUSE-FAIL scen=$s still running after 30 s (expected a start error naming $word) | $(nvt_messages "/tmp/sluice-$s.log")"
        nvt_dump_log "$s" 1; SPID=""; return
    fi
    wait "$SPID"; rc=$?
    SPID=""
    msg=$(nvt_messages "/tmp/sluice-$s.log")
    if [ "$rc" = 0 ]; then
        nvt_sfail "$s" 1 "NVME-REFUSE-FAIL scen=$s rc=0 (expected a start error naming $word) | $msg"
    elif grep -a -q -i -E "(^|[^A-Za-z])$word([^-A-Za-z]|\$)" "/tmp/sluice-$s.log"; then
        say "NVME-REFUSED scen=$s rc=$rc word=$word secs=$(nvt_secs "$t0") | $msg"; SOK=$((SOK + 1))
    else
        nvt_sfail "$s" 1 "NVME-REFUSE-FAIL scen=$s rc=$rc but no '$word' in its messages | $msg"
        nvt_dump_log "$s" 1
    fi
}

# nvt_scenario NAME KIND GENFLAG ARGS...
nvt_scenario() {
    name=$1; kind=$2; gflag=$3; shift 3
    SOK=0; SFAIL=0
    case "$kind" in
        run|restart)
            if nvt_start "$name" 1 "$@"; then
                nvt_io "$name" 1 "$gflag" first
                nvt_stop "$name" 1
                if [ "$kind" = restart ] && nvt_start "$name" 2 "$@"; then
                    nvt_io "$name" 2 "$gflag" again
                    nvt_stop "$name" 2
                fi
            fi ;;
        refuse:*) nvt_refuse "$name" "${kind#refuse:}" "$@" ;;
        *) nvt_sfail "$name" 1 "NVME-FAIL scen=$name unknown kind $kind" ;;
    esac
    say "NVME-SCEN scen=$name ok=$SOK fail=$SFAIL"
    OK=$((OK + SOK)); FAIL=$((FAIL + SFAIL))
}

# nvt_scenarios: every line of the scenarios file in turn.
nvt_scenarios() {
    while read -r name kind gflag args; do
        case "$name" in ''|'#'*) continue ;; esac
        # shellcheck disable=SC2086  # args: sluice options, split on spaces
        nvt_scenario "$name" "$kind" "$gflag" $args
    done <"$NVT_DIR/scenarios"
}

# nvt_namespaces DIR: the controller's namespace block devices (nvme0n1 ...), one a line.
nvt_namespaces() {
    for ns in "$1"/nvme/nvme*/nvme*n*; do [ -e "$ns" ] && echo "${ns##*/}"; done
}

# nvt_wait_namespaces DIR N: wait up to 10 s for N namespaces with their block devices.
nvt_wait_namespaces() {
    n=0
    while [ $n -lt 100 ]; do
        c=0
        for nd in $(nvt_namespaces "$1"); do [ -b "/dev/$nd" ] && c=$((c + 1)); done
        [ "$c" -ge "$2" ] && return 0
        n=$((n + 1)); usleep 100000
    done
    return 1
}

# The test: the one NVMe controller to vfio-pci, every scenario, back to nvme, read back.
role_nvme_test() {
    mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm    # sluice's stats segment
    bdf=""
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/class")" = 0x010802 ] && { bdf=${d##*/}; break; }
    done
    if [ -z "$bdf" ]; then nvt_fail "no NVMe controller (PCI class 010802)"; return; fi
    d=/sys/bus/pci/devices/$bdf
    grp=$(readlink "$d/iommu_group"); grp=${grp##*/}
    nvt_wait_namespaces "$d" 2 || true
    before=$(nvt_namespaces "$d" | wc -l)
    say "NVME-CTRL $bdf driver=$(vfio_driver "$bdf") group=${grp:-none} namespaces=$before ($(nvt_namespaces "$d" | tr '\n' ' '))"
    if [ -z "$grp" ]; then nvt_fail "$bdf has no IOMMU group (intel-iommu device + intel_iommu=on)"; return; fi
    # the harness check (test-nvme.sh --stand-in) runs sluice on the kernel driver's block devices
    [ -e "$NVT_DIR/standin" ] && nvt_scenarios
    if ! vfio_bind "$bdf" vfio-pci; then nvt_fail "$bdf did not bind vfio-pci (driver=$(vfio_driver "$bdf"))"; return; fi
    if [ -c "/dev/vfio/$grp" ]; then
        say "NVME-BOUND $bdf driver=vfio-pci dev=/dev/vfio/$grp"; OK=$((OK + 1))
    else
        nvt_fail "$bdf bound to vfio-pci but no /dev/vfio/$grp"
    fi
    [ -e "$NVT_DIR/standin" ] || nvt_scenarios

    echo "" >"$d/driver_override"
    if ! vfio_bind "$bdf" nvme; then nvt_fail "$bdf did not rebind nvme (driver=$(vfio_driver "$bdf"))"; return; fi
    if ! nvt_wait_namespaces "$d" "$before"; then
        nvt_fail "$bdf on nvme again: $(nvt_namespaces "$d" | wc -l) of $before namespaces after 10 s"
    fi
    say "NVME-REBOUND $bdf driver=nvme namespaces=$(nvt_namespaces "$d" | wc -l) ($(nvt_namespaces "$d" | tr '\n' ' '))"
    while read -r nsid off len; do
        nd=$(nvt_namespaces "$d" | grep -E "n${nsid#n}\$" | head -n 1)
        if [ -z "$nd" ]; then nvt_fail "read back: no namespace $nsid"; continue; fi
        if ! dd if="/dev/$nd" of=/tmp/rb bs=65536 skip=$((off / 65536)) count=$((len / 65536)) iflag=direct 2>/tmp/dd.err; then
            nvt_fail "read back $nd off=$off: $(head -n 1 /tmp/dd.err)"; continue
        fi
        say "NVME-READBACK ns=$nsid dev=$nd off=$off len=$len md5=$(md5sum </tmp/rb | cut -d' ' -f1)"
    done <"$NVT_DIR/readback"
}
