# Sourced by the benchmark scripts: the one DUT configuration they all run.
#
#   write_p2p_config FILE CPU SOCKET_DIR INSTANCE
#
# Two server-mode vhost-user ports (s0.sock, s1.sock in SOCKET_DIR) joined by a p2p link,
# one worker on CPU, busy polling, no huge pages (the DPDK peers run with --no-huge too).
write_p2p_config() {
    cat >"$1" <<EOF
[dataplane]
cores = $2
poll = 0
; the DPDK side runs with --no-huge too
hugepages = off
socket-dir = $3
instance = $4

[port p0]
type = vhost-user
socket = s0.sock
mode = server
mac = 02:00:00:00:00:01

[port p1]
type = vhost-user
socket = s1.sock
mode = server
mac = 02:00:00:00:00:02

[p2p link0]
ports = p0, p1
EOF
}
