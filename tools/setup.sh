#!/usr/bin/env bash
# Install what Sluice needs on a Debian machine, idempotently: build libraries
# (libnuma, libhugetlbfs), and the real peers the tests and demo use (DPDK's
# testpmd, QEMU, busybox for the guest image). Safe to run again: it only calls
# apt-get when a package is missing.
set -euo pipefail

PACKAGES=(
  libnuma-dev libhugetlbfs-dev          # linked by sluice
  dpdk dpdk-dev                         # dpdk-testpmd / dpdk-test: peers and benchmarks
  qemu-system-x86 qemu-utils            # real guests (TCG) attached by vhost-user
  libvirt-clients libxml2-utils         # virt-xml-validate (+ its xmllint) for Configs/libvirt/*.xml
  busybox-static kmod cpio              # guest initramfs
  iproute2 iputils-ping procps psmisc   # ip, ping, pkill, fuser
  tcpdump iperf3                        # switch tests: monitor port capture, TCP across the switch
  python3 valgrind
  python3-scapy ndisc6                  # DHCPv6/NDP conformance (tools/scapy), rdisc6 reads the RA
  prometheus                            # promtool: checks sluice-stat's Prometheus output
  systemd                               # systemd-analyze verify of tools/systemd/sluice.service
  isc-dhcp-client                       # dhclient -4/-6: DHCP clients of the router tests
  dhcpcd-base                           # dhcpcd, copied into the router test's guests (DHCPv6)
  liburing-dev                          # io_uring: the blk file backend
  gdisk fdisk                           # sgdisk/sfdisk: GPT images of the blk tests
  mount                                 # losetup: a 4Kn loop device in the blk tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$d/swift" ] && export PATH="$d:$PATH"; done
fi
command -v swift >/dev/null 2>&1 || { echo "setup: no Swift toolchain on PATH (Swift 6.1 or newer is needed)"; exit 1; }

# Huge pages make packet memory faster; without them sluice falls back to normal
# pages with one warning. As root, reserve a modest amount if none are reserved.
if [ "$(id -u)" -eq 0 ] && [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)" -lt 64 ]; then
  echo 128 > /proc/sys/vm/nr_hugepages 2>/dev/null || true
fi
echo "setup: ok ($(swift --version 2>&1 | head -1))"
