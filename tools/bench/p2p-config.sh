# Sourced by the benchmark scripts: the one DUT configuration they all run.
#
#   write_p2p_config FILE CPU SOCKET_DIR INSTANCE [ELEMENT]
#
# Two server-mode vhost-user ports (s0.sock, s1.sock in SOCKET_DIR) joined by a p2p link
# (ELEMENT=p2p, the default) or a learning switch (ELEMENT=switch), one worker on CPU,
# busy polling, no huge pages (the DPDK peers run with --no-huge too).
write_p2p_config() {
    local element="${5:-p2p}" joint
    if [ "$element" = switch ]; then joint="[switch br0]"; else joint="[p2p link0]"; fi
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

$joint
ports = p0, p1
EOF
}
