# Sourced by the benchmark scripts: the one DUT configuration they all run.
#
#   write_p2p_config FILE CPU SOCKET_DIR INSTANCE [ELEMENT]
#
# Two server-mode vhost-user ports (s0.sock, s1.sock in SOCKET_DIR) joined by a p2p link
# (ELEMENT=p2p, the default) or a learning switch (ELEMENT=switch; ELEMENT=switch-tap adds
# a tap port sl-bench$$ to the switch, so flooded frames are copied to it too), one worker
# on CPU, busy polling, no huge pages (the DPDK peers run with --no-huge too).
write_p2p_config() {
    local element="${5:-p2p}" joint ports="p0, p1" tap="" mtu=""
    case "$element" in
        switch) joint="[switch br0]" ;;
        switch-tap) joint="[switch br0]"; ports="p0, p1, t0"
                    tap=$'[port t0]\ntype = tap\ninterface = sl-bench'"$$" ;;
        *) joint="[p2p link0]" ;;
    esac
    # A switch drops frames above the port MTU; testpmd's "1518-byte" frames carry 1504
    # bytes after the Ethernet header (1518 on the wire would include the FCS).
    [ "$element" != p2p ] && mtu="mtu = 1504"
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
$mtu

[port p1]
type = vhost-user
socket = s1.sock
mode = server
mac = 02:00:00:00:00:02
$mtu

$tap

$joint
ports = $ports
EOF
}
