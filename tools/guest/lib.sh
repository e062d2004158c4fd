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

# sl_show_tail FILE [N]: print the last N lines of a log (for failure reports).
sl_show_tail() {
    echo "---- last ${2:-20} lines of $1" >&2
    tail -n "${2:-20}" "$1" 2>/dev/null | tr -d '\r' >&2 || true
}
