# shellcheck shell=bash
# Common helpers for real-peer tests with Sluice test guests. Source it from a bash script
# that runs with `set -euo pipefail`:
#
#   source "$(dirname "$0")/lib.sh"
#   sl_setup demo                 # run dir $SL_RUN, cleanup trap (kills tracked pids, removes paths)
#   sl_ensure_guest               # build-guest.sh if needed
#   sl_start_vm a --socket "$SL_RUN/vh0.sock" --append "sl.role=ping ..."   # pid in $SL_LAST_PID
#   sl_wait_marker "$SL_RUN/a.log" 'PING-OK' 90          # prints the matching line
#   off=$(sl_log_size "$SL_RUN/a.log"); sl_monitor "$SL_RUN/a.mon" system_reset
#   sl_wait_marker "$SL_RUN/a.log" 'BOOT' 60 "$off"       # only lines written after $off
#
# Guest logs: $SL_RUN/<name>.log (serial console), <name>.mon (HMP monitor), <name>.qemu
# (QEMU's own stdout/stderr). Set SLUICE_KEEP=1 to keep $SL_RUN after the script ends.

SL_TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SL_GUEST_DIR=${SLUICE_GUEST_DIR:-/var/cache/sluice-guest}
SL_PIDS=()
SL_PATHS=()
SL_HOOKS=()
SL_RUN=""
SL_LAST_PID=""
SL_T0=$(date +%s.%N)

sl_log() { printf '[%s +%ss] %s\n' "$(date +%T)" "$(sl_elapsed)" "$*" >&2; }

# Seconds (one decimal) since the library was sourced.
sl_elapsed() { awk -v a="$SL_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

sl_track_pid() { SL_PIDS+=("$@"); }
sl_track_path() { SL_PATHS+=("$@"); }
# sl_on_cleanup 'COMMAND': eval COMMAND at cleanup, after the tracked processes are stopped and
# before the tracked paths are removed (e.g. deleting a network namespace); last added first.
sl_on_cleanup() { SL_HOOKS+=("$1"); }

# Stop one process: TERM, up to 5 s grace, then KILL. Only pids this script started.
sl_stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Kill tracked processes (last started first), run the cleanup hooks, remove tracked paths.
sl_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#SL_PIDS[@]} - 1; i >= 0; i--)); do
        sl_stop_pid "${SL_PIDS[$i]}"
    done
    for ((i = ${#SL_HOOKS[@]} - 1; i >= 0; i--)); do
        eval "${SL_HOOKS[$i]}"
    done
    for ((i = ${#SL_PATHS[@]} - 1; i >= 0; i--)); do
        if [ "${SLUICE_KEEP:-0}" = 1 ] && [ "${SL_PATHS[$i]}" = "$SL_RUN" ]; then
            sl_log "kept $SL_RUN"
            continue
        fi
        rm -rf -- "${SL_PATHS[$i]}"
    done
    exit "$rc"
}

# sl_setup NAME: make the run directory $SL_RUN and install the cleanup trap.
sl_setup() {
    SL_RUN=$(mktemp -d "${TMPDIR:-/tmp}/sluice-${1:-test}.XXXXXX")
    sl_track_path "$SL_RUN"
    trap sl_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

sl_ensure_guest() { "$SL_TOOLS/build-guest.sh" "$SL_GUEST_DIR"; }

# Prerequisites: each prints one `SKIP: reason` line on stdout and exits 77 when missing.
sl_skip() { echo "SKIP: $*"; exit 77; }
sl_need_root() { [ "$(id -u)" = 0 ] || sl_skip "needs root ($1)"; }   # WHY
sl_require() { command -v "$1" >/dev/null 2>&1 || sl_skip "no $1 (apt-get install $2)"; }   # CMD PACKAGE
sl_need_tun() { [ -c /dev/net/tun ] || sl_skip "no /dev/net/tun (tap ports)"; }

# sl_find_sluice: SLUICE and STAT from SLUICE_BIN_DIR (default <repo>/.build/debug, then
# .build/release); skips when they are missing.
sl_find_sluice() {
    if [ -z "${SLUICE_BIN_DIR:-}" ]; then
        local repo
        repo=$(cd "$SL_TOOLS/../.." && pwd)
        SLUICE_BIN_DIR=$repo/.build/debug
        [ -x "$SLUICE_BIN_DIR/sluice" ] || SLUICE_BIN_DIR=$repo/.build/release
    fi
    SLUICE=$SLUICE_BIN_DIR/sluice
    STAT=$SLUICE_BIN_DIR/sluice-stat
    if [ ! -x "$SLUICE" ] || [ ! -x "$STAT" ]; then
        sl_skip "no sluice/sluice-stat in $SLUICE_BIN_DIR (swift build, or set SLUICE_BIN_DIR)"
    fi
}

# sl_need_cmd CMD PACKAGE: apt-get install PACKAGE if CMD is missing.
sl_need_cmd() {
    command -v "$1" >/dev/null 2>&1 && return 0
    sl_log "installing $2 (for $1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    }
}

# sl_start_vm NAME [run-vm.sh options...]: start a guest in the background with serial log
# $SL_RUN/NAME.log and monitor $SL_RUN/NAME.mon; its pid is tracked and left in SL_LAST_PID.
sl_start_vm() {
    local name=$1
    shift
    "$SL_TOOLS/run-vm.sh" --name "$name" --guest-dir "$SL_GUEST_DIR" \
        --log "$SL_RUN/$name.log" --monitor "$SL_RUN/$name.mon" "$@" \
        </dev/null >"$SL_RUN/$name.qemu" 2>&1 &
    SL_LAST_PID=$!
    sl_track_pid "$SL_LAST_PID"
    sl_log "started guest $name (pid $SL_LAST_PID)"
}

# Size in bytes of FILE (0 if it does not exist): an offset for sl_wait_marker.
sl_log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# sl_alive PID...: true when every PID is running (a zombie counts as gone).
sl_alive() {
    local p state
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null || return 1
        state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$p/stat" 2>/dev/null || true)
        [ "$state" != Z ] || return 1
    done
}

# sl_first_gone PID...: print the first PID that is no longer running (nothing if all run).
sl_first_gone() {
    local p
    for p in "$@"; do
        sl_alive "$p" || { echo "$p"; return 0; }
    done
}

# sl_wait_path PATH TIMEOUT [PIDS]: wait until PATH exists (returns 2 if one of PIDS, a
# space-separated list, exits first).
sl_wait_path() {
    local path=$1 timeout=$2 pids=${3:-} end gone
    end=$(($(date +%s) + timeout))
    until [ -e "$path" ]; do
        [ "$(date +%s)" -lt "$end" ] || { sl_log "timeout: $path did not appear in ${timeout}s"; return 1; }
        # shellcheck disable=SC2086  # a list of pids
        gone=$(sl_first_gone $pids)
        if [ -n "$gone" ]; then
            sl_log "process $gone exited while waiting for $path"
            return 2
        fi
        sleep 0.1
    done
}

# sl_listens PID PATH: true when process PID holds a listening unix socket bound to PATH (a
# stale socket file left by a killed process does not count).
sl_listens() {
    local ino fd
    # shellcheck disable=SC2013  # one inode number per line
    for ino in $(awk -v p="$2" '$8 == p && $4 == "00010000" { print $7 }' /proc/net/unix 2>/dev/null); do
        for fd in /proc/"$1"/fd/*; do
            [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$ino]" ] && return 0
        done
    done
    return 1
}

# sl_wait_listen PID PATH TIMEOUT: wait until PID listens on PATH (sl_listens); returns 1 on
# timeout, 2 if PID exits first.
sl_wait_listen() {
    local end=$(($(date +%s) + $3))
    until sl_listens "$1" "$2"; do
        sl_alive "$1" || { sl_log "process $1 exited before it listened on $2"; return 2; }
        [ "$(date +%s)" -lt "$end" ] || { sl_log "timeout: process $1 not listening on $2 after $3s"; return 1; }
        sleep 0.05
    done
}

# sl_wait_marker FILE REGEX TIMEOUT [FROM_OFFSET [PIDS]]
# Wait until a line matching the extended regex REGEX appears in FILE after byte FROM_OFFSET
# (default 0); print that line. Returns 1 on timeout, 2 if one of PIDS (a space-separated
# list, when given) exits first.
sl_wait_marker() {
    local file=$1 re=$2 timeout=$3 from=${4:-0} pids=${5:-} end line gone
    end=$(($(date +%s) + timeout))
    while :; do
        line=$(tail -c +"$((from + 1))" "$file" 2>/dev/null | tr -d '\r' | grep -a -m 1 -E -- "$re" || true)
        if [ -n "$line" ]; then
            case "$line" in
                *SLUICE-GUEST:*) line="SLUICE-GUEST:${line#*SLUICE-GUEST:}" ;;
            esac
            printf '%s\n' "$line"
            return 0
        fi
        # shellcheck disable=SC2086  # a list of pids
        gone=$(sl_first_gone $pids)
        if [ -n "$gone" ]; then
            sl_log "process $gone exited while waiting for /$re/ in $file"
            return 2
        fi
        if [ "$(date +%s)" -ge "$end" ]; then
            sl_log "timeout: no /$re/ in $file after ${timeout}s"
            return 1
        fi
        sleep 0.2
    done
}

# sl_count_markers FILE REGEX [FROM_OFFSET]: number of matching lines after the offset.
sl_count_markers() {
    tail -c +"$((${3:-0} + 1))" "$1" 2>/dev/null | grep -a -c -E -- "$2" || true
}

# sl_markers FILE: the guest's SLUICE-GUEST marker lines.
sl_markers() { grep -a -o 'SLUICE-GUEST: .*' "$1" 2>/dev/null | tr -d '\r' || true; }

# sl_monitor SOCKET COMMAND...: run one HMP command on a QEMU monitor socket, print its output.
sl_monitor() {
    local sock=$1
    shift
    local py
    py=$(command -v /usr/bin/python3 || command -v python3 || true)
    if [ -n "$py" ]; then
        "$py" - "$sock" "$*" <<'EOF'
import re, socket, sys, time
path, cmd = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(path)
def read_prompt():
    buf = b""
    end = time.time() + 5
    while not buf.rstrip().endswith(b"(qemu)") and time.time() < end:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")
read_prompt()
s.sendall(cmd.encode() + b"\n")
out = read_prompt()
s.close()
out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\x1b[0-9A-Za-z]", "", out).replace("\r", "")
lines = [l for l in out.split("\n") if l.strip() and not l.startswith("(qemu)") and l.strip() != cmd]
print("\n".join(lines))
EOF
    elif command -v socat >/dev/null 2>&1; then
        printf '%s\n' "$*" | socat -t 2 - "UNIX-CONNECT:$sock" | tr -d '\r'
    else
        sl_log "sl_monitor: needs python3 or socat"
        return 1
    fi
}

# The scripts below share these globals: SLUICE, STAT, INST (its --instance), SLUICE_PID,
# LOG (its log), CORES, POLL_OPT (array), LOG_LEVEL, ALL (the pids that must keep running),
# and a function `fail MESSAGE` of their own.

# sl_start_sluice CONFIG SHM: start sluice (log appended to $LOG), pid in SLUICE_PID; waits
# for its stats segment SHM.
sl_start_sluice() {
    echo "==== $(date +%T) sluice ${POLL_OPT[*]:-(event mode)} --cores $CORES" >>"$LOG"
    "$SLUICE" --config "$1" --cores "$CORES" "${POLL_OPT[@]}" --log-level "$LOG_LEVEL" \
        </dev/null >>"$LOG" 2>&1 &
    SLUICE_PID=$!
    sl_track_pid "$SLUICE_PID"
    sl_wait_path "$2" 20 "$SLUICE_PID" || fail "sluice did not create $2"
}

# sl_wait_listening SOCKET...: sluice (SLUICE_PID) listens on every SOCKET within 20 s.
sl_wait_listening() {
    local s
    for s in "$@"; do
        sl_wait_path "$s" 20 "$SLUICE_PID" || fail "sluice did not listen on $s"
    done
}

# sl_sigterm_sluice: SIGTERM; sluice must exit with status 0 within 2 s. Stop time in STOP_SECS.
sl_sigterm_sluice() {
    local t0 rc=0
    t0=$(date +%s.%N)
    kill -TERM "$SLUICE_PID" 2>/dev/null || fail "sluice (pid $SLUICE_PID) was not running at stop"
    for _ in $(seq 40); do
        sl_alive "$SLUICE_PID" || break
        sleep 0.05
    done
    STOP_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if sl_alive "$SLUICE_PID"; then
        sl_stop_pid "$SLUICE_PID"
        fail "sluice still running ${STOP_SECS}s after SIGTERM"
    fi
    wait "$SLUICE_PID" || rc=$?
    [ "$rc" = 0 ] || fail "sluice exited with status $rc after SIGTERM"
}

# sl_fail_report [SLUICE-STAT OPTIONS]: for `fail`: the running sluice's counters (and once
# more with the options, e.g. --fdb br0), then the tail of every non-empty log of the run.
sl_fail_report() {
    if [ -n "$SLUICE_PID" ] && sl_alive "$SLUICE_PID"; then
        "$STAT" --instance "$INST" >&2 2>&1 || true
        [ $# = 0 ] || "$STAT" --instance "$INST" "$@" >&2 2>&1 || true
    fi
    local f
    for f in "$SL_RUN"/*.log "$SL_RUN"/*.qemu "$SL_RUN"/*.ping; do
        [ -s "$f" ] || continue
        case "$f" in
            */sluice.log) sl_show_tail "$f" 60 ;;
            *) sl_show_tail "$f" 15 ;;
        esac
    done
}

# sl_counter JSON NAME: the value of counter NAME in a sluice-stat --json object (empty if absent).
sl_counter() {
    if command -v jq >/dev/null 2>&1; then
        jq -r --arg n "$2" '.counters[$n] // empty' <<<"$1"
    else
        python3 -c 'import json,sys; v=json.loads(sys.argv[1])["counters"].get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"
    fi
}

# sl_guest_line NAME REGEX FROM WHAT: wait BOOT_TIMEOUT s for REGEX in guest NAME's log after
# byte FROM (while ALL run), log the line, or fail "WHAT".
sl_guest_line() {
    LINE=$(sl_wait_marker "$SL_RUN/$1.log" "$2" "$BOOT_TIMEOUT" "$3" "$ALL") || fail "$4"
    sl_log "$1: $LINE"
}

# sl_reset_guest NAME: system_reset through its monitor.
sl_reset_guest() {
    sl_log "system_reset guest $1"
    sl_monitor "$SL_RUN/$1.mon" system_reset >/dev/null || fail "monitor command system_reset"
}

# sl_finish: stop the guests VM_A and VM_B, log the size of sluice's log and its errors;
# fail if a QEMU warned that the backend offers VHOST_USER_PROTOCOL_F_CONFIG.
sl_finish() {
    sl_stop_pid "$VM_A"
    sl_stop_pid "$VM_B"
    local errs warned
    warned=$(grep -a -h 'PROTOCOL_F_CONFIG' "$SL_RUN"/*.qemu 2>/dev/null | head -1 || true)
    [ -z "$warned" ] || fail "QEMU: $warned"
    errs=$(grep -a -c -E '(error|critical)' "$LOG" || true)
    sl_log "sluice log: $(wc -l <"$LOG") lines, $errs error/critical"
}

# sl_show_tail FILE [N]: print the last N lines of a log (for failure reports).
sl_show_tail() {
    echo "---- last ${2:-20} lines of $1" >&2
    tail -n "${2:-20}" "$1" 2>/dev/null | tr -d '\r' >&2 || true
}
