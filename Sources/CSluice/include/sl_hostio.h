// Host ports: tap devices and AF_PACKET rings (TPACKET_V3). Included from csluice.h.
//
// Swift cannot import the ioctl numbers (_IOW macros), the anonymous unions of
// struct ifreq, or the kernel's tpacket layouts cleanly, so the layouts live
// here. The syscalls themselves are made from Swift (Sources/Platform).
//
// The per-frame ring walk is `static inline` so it is inlined into the worker.
#ifndef SL_HOSTIO_H
#define SL_HOSTIO_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <net/if.h>
#include <endian.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>

// ---------------------------------------------------------------------------
// Constants (values from the kernel headers; functions because several are
// _IOW/_IOR expressions that Swift does not import).

unsigned long sl_ioctl_tunsetiff(void);
unsigned long sl_ioctl_siocgifflags(void);
unsigned long sl_ioctl_siocsifflags(void);
unsigned long sl_ioctl_siocgifmtu(void);
unsigned long sl_ioctl_siocsifmtu(void);
/// IFF_TAP | IFF_NO_PI.
short sl_tun_tap_flags(void);
/// IFF_TUN_EXCL: TUNSETIFF fails with EBUSY when the device already exists.
short sl_tun_excl_flag(void);
/// IFF_MULTI_QUEUE: one fd per queue of the same tap.
short sl_tun_multi_queue_flag(void);
short sl_iff_up(void);
short sl_iff_running(void);

int sl_af_packet(void);
int sl_sol_packet(void);
int sl_eth_p_all_be(void);          // htons(ETH_P_ALL), for socket()/bind()
int sl_packet_version_opt(void);    // PACKET_VERSION
int sl_tpacket_v3(void);
int sl_packet_rx_ring_opt(void);
int sl_packet_tx_ring_opt(void);
int sl_packet_qdisc_bypass_opt(void);
int sl_packet_ignore_outgoing_opt(void);
int sl_packet_loss_opt(void);
int sl_packet_add_membership_opt(void);
int sl_packet_statistics_opt(void);
int sl_packet_vnet_hdr_opt(void);   // PACKET_VNET_HDR

// ---------------------------------------------------------------------------
// struct ifreq without the unions.

/// Zero `r` and copy `name` in. -1 when the name does not fit (IFNAMSIZ - 1 bytes).
static inline int sl_ifreq_init(struct ifreq *r, const char *name) {
    memset(r, 0, sizeof(*r));
    size_t n = strlen(name);
    if (n == 0 || n >= IFNAMSIZ) return -1;
    memcpy(r->ifr_name, name, n);
    return 0;
}
static inline const char *sl_ifreq_name(const struct ifreq *r) { return r->ifr_name; }
static inline short sl_ifreq_flags(const struct ifreq *r) { return r->ifr_flags; }
static inline void sl_ifreq_set_flags(struct ifreq *r, short f) { r->ifr_flags = f; }
static inline int sl_ifreq_mtu(const struct ifreq *r) { return r->ifr_mtu; }
static inline void sl_ifreq_set_mtu(struct ifreq *r, int mtu) { r->ifr_mtu = mtu; }

// ---------------------------------------------------------------------------
// AF_PACKET socket options, filled into caller storage.

/// struct sockaddr_ll for bind(): family, protocol ETH_P_ALL, ifindex.
typedef struct { unsigned char bytes[sizeof(struct sockaddr_ll)]; } sl_sockaddr_ll_storage;
socklen_t sl_fill_sockaddr_ll(sl_sockaddr_ll_storage *s, int ifindex);

typedef struct { unsigned char bytes[sizeof(struct packet_mreq)]; } sl_packet_mreq_storage;
/// PACKET_MR_PROMISC on `ifindex`.
socklen_t sl_fill_promisc_mreq(sl_packet_mreq_storage *s, int ifindex);

typedef struct { unsigned char bytes[sizeof(struct tpacket_req3)]; } sl_tpacket_req3_storage;
/// RX ring request (block based; retire_tov_ms > 0) or TX ring request (retire_tov_ms = 0).
socklen_t sl_fill_tpacket_req3(sl_tpacket_req3_storage *s, unsigned block_size, unsigned block_nr,
                               unsigned frame_size, unsigned frame_nr, unsigned retire_tov_ms);

/// A 4-instruction classic BPF program that accepts every frame and caps the
/// captured length at `max_frame`, counting a VLAN tag the kernel stripped
/// (so the frame handed out with the tag put back is still <= max_frame).
typedef struct {
    struct { uint16_t code; uint8_t jt, jf; uint32_t k; } insns[4];
    struct { unsigned short len; void *filter; } prog;
} sl_snaplen_filter;
/// Fill `f`; the program pointer points into `f`, so pass `&f->prog` to
/// SO_ATTACH_FILTER without moving `f` in between. Returns sizeof(prog).
socklen_t sl_fill_snaplen_filter(sl_snaplen_filter *f, unsigned max_frame);

typedef struct { uint32_t packets, drops, freeze_q_cnt; } sl_tpacket_stats_v3;

// ---------------------------------------------------------------------------
// TPACKET_V3 ring cursor. One per socket, owned by the one worker that polls it.

enum {
    /// Where a slot's header ends and a TX frame starts (TPACKET_ALIGN(sizeof(struct tpacket3_hdr))).
    SL_TP3_HDRLEN = TPACKET_ALIGN(sizeof(struct tpacket3_hdr)),
    /// First byte after the sockaddr_ll the kernel writes behind each RX header.
    SL_TP3_RX_META_END = TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct sockaddr_ll),
    /// The struct virtio_net_hdr PACKET_VNET_HDR puts in front of every frame: on RX
    /// right before the MAC header, on TX at the start of the slot's data (counted in tp_len).
    SL_VNET_HDRLEN = sizeof(struct virtio_net_hdr),
    SL_VNET_F_NEEDS_CSUM = VIRTIO_NET_HDR_F_NEEDS_CSUM,
    SL_VNET_F_DATA_VALID = VIRTIO_NET_HDR_F_DATA_VALID,
    SL_VNET_GSO_NONE = VIRTIO_NET_HDR_GSO_NONE,
    SL_VNET_GSO_TCPV4 = VIRTIO_NET_HDR_GSO_TCPV4,
    SL_VNET_GSO_UDP = VIRTIO_NET_HDR_GSO_UDP,
    SL_VNET_GSO_TCPV6 = VIRTIO_NET_HDR_GSO_TCPV6,
    SL_VNET_GSO_UDP_L4 = 5,     // VIRTIO_NET_HDR_GSO_UDP_L4 (not in older headers)
    SL_VNET_GSO_ECN = VIRTIO_NET_HDR_GSO_ECN,
};

typedef struct sl_pring {
    // RX (block ring)
    uint8_t *rx_ring;
    uint32_t rx_block_size;
    uint32_t rx_block_count;
    uint32_t rx_block;      // block the cursor is in (or waits for)
    uint32_t rx_left;       // frames of rx_block not handed out yet
    uint32_t rx_held;       // 1 while rx_block belongs to us (status had TP_STATUS_USER)
    uint32_t rx_vlan_restored;  // frames whose stripped VLAN tag was written back (diagnostics)
    uint32_t rx_vnet;       // bytes of virtio_net_hdr before each RX frame (0 or SL_VNET_HDRLEN)
    uint32_t rx_resume;     // payload bytes of the next frame already cut into segments (GSO
                            // frames cut over several bursts); cleared when the frame is taken
    uint8_t *rx_frame;      // header of the next frame in rx_block
    // TX (frame ring)
    uint8_t *tx_ring;
    uint32_t tx_block_size;
    uint32_t tx_frame_size;
    uint32_t tx_frames_per_block;
    uint32_t tx_block_count;
    uint32_t tx_block;      // block of the next slot
    uint32_t tx_index;      // slot within tx_block
    uint32_t tx_max_len;    // largest frame transmit() takes (the socket's frame size)
    uint32_t tx_queued;     // slots marked SEND_REQUEST since the last flush
    uint32_t tx_vnet;       // bytes of (zeroed) virtio_net_hdr written before each TX frame
    uint8_t *tx_slot;       // the next slot to fill
} sl_pring;

typedef struct {
    const uint8_t *data;
    uint32_t length;        // bytes at data
    uint32_t wire_length;   // length on the wire (> length when truncated)
    // The frame's virtio_net_hdr (all 0 without PACKET_VNET_HDR), host byte order.
    // Offsets count from `data` (a VLAN tag put back is included).
    uint8_t vnet_flags;     // SL_VNET_F_*
    uint8_t gso_type;       // SL_VNET_GSO_*, ECN bit included
    uint16_t hdr_len;
    uint16_t gso_size;      // payload bytes per segment
    uint16_t csum_start;
    uint16_t csum_offset;
} sl_pframe;

static inline uint8_t *sl_pring_block(const sl_pring *r, uint32_t i) {
    return r->rx_ring + (size_t)i * r->rx_block_size;
}

/// Hand the block the cursor holds back to the kernel and move to the next one.
static inline void sl_pring_return_block(sl_pring *r) {
    struct tpacket_block_desc *bd = (struct tpacket_block_desc *)sl_pring_block(r, r->rx_block);
    __atomic_store_n(&bd->hdr.bh1.block_status, (uint32_t)TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    r->rx_held = 0;
    r->rx_left = 0;
    r->rx_block = r->rx_block + 1 == r->rx_block_count ? 0 : r->rx_block + 1;
}

/// Put a VLAN tag the kernel stripped (TP_STATUS_VLAN_VALID) back in front of the
/// EtherType, in the headroom before the MAC header, and rewrite the slot header
/// (tp_mac, tp_snaplen, tp_len, status) to describe the tagged frame, so doing it
/// is idempotent: the frame can be looked at again. The virtio_net_hdr in front of
/// the frame moves with it, and its offsets (counted from the untagged frame) grow by 4.
static inline void sl_pring_restore_tag(sl_pring *r, struct tpacket3_hdr *h) {
    uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
    uint16_t tci = h->hv1.tp_vlan_tci;
    uint32_t vnet = r->rx_vnet;
    h->tp_status &= ~(uint32_t)(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID);
    h->tp_len += 4;
    if (h->tp_snaplen >= 12 && h->tp_mac >= SL_TP3_RX_META_END + vnet + 4) {
        uint8_t *mac = (uint8_t *)h + h->tp_mac;
        memmove(mac - vnet - 4, mac - vnet, vnet + 12);
        mac -= 4;
        h->tp_mac -= 4;
        h->tp_snaplen += 4;
        mac[12] = (uint8_t)(tpid >> 8); mac[13] = (uint8_t)tpid;
        mac[14] = (uint8_t)(tci >> 8);  mac[15] = (uint8_t)tci;
        if (vnet) {
            struct virtio_net_hdr v;
            memcpy(&v, mac - vnet, sizeof(v));
            if (v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) v.csum_start = htole16(le16toh(v.csum_start) + 4);
            if (v.hdr_len) v.hdr_len = htole16(le16toh(v.hdr_len) + 4);
            memcpy(mac - vnet, &v, sizeof(v));
        }
        r->rx_vlan_restored += 1;
    } else if (h->tp_snaplen > 12) {
        h->tp_snaplen = 12;  // no room for the tag: report it truncated
    }
}

/// Step past the frame sl_pring_peek returned (no-op when there is none).
static inline void sl_pring_take(sl_pring *r) {
    if (!r->rx_held || r->rx_left == 0) return;
    struct tpacket3_hdr *h = (struct tpacket3_hdr *)r->rx_frame;
    r->rx_left -= 1;
    r->rx_frame += h->tp_next_offset;
    r->rx_resume = 0;
}

/// The next received frame without stepping past it, or 0 when none is ready; a
/// second peek returns the same frame. It stays valid until sl_pring_take (then
/// until the next peek, which may hand its block back) or sl_pring_release. A VLAN
/// tag the kernel stripped is written back in front of the EtherType (in the
/// ring's headroom), so the frame is byte-for-byte what was on the wire.
/// The host's and our own transmissions (PACKET_OUTGOING) are skipped.
static inline int sl_pring_peek(sl_pring *r, sl_pframe *out) {
    for (;;) {
        if (r->rx_held) {
            if (r->rx_left == 0) {
                sl_pring_return_block(r);
                continue;
            }
            struct tpacket3_hdr *h = (struct tpacket3_hdr *)r->rx_frame;
            const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((uint8_t *)h + SL_TP3_HDRLEN);
            if (sll->sll_pkttype == PACKET_OUTGOING) {  // our own or the host's transmissions
                sl_pring_take(r);
                continue;
            }
            if (h->tp_status & TP_STATUS_VLAN_VALID) sl_pring_restore_tag(r, h);
            const uint8_t *mac = (const uint8_t *)h + h->tp_mac;
            out->data = mac;
            out->length = h->tp_snaplen;
            out->wire_length = h->tp_len;
            if (r->rx_vnet) {
                struct virtio_net_hdr v;
                memcpy(&v, mac - r->rx_vnet, sizeof(v));
                out->vnet_flags = v.flags;
                out->gso_type = v.gso_type;
                out->hdr_len = le16toh(v.hdr_len);
                out->gso_size = le16toh(v.gso_size);
                out->csum_start = le16toh(v.csum_start);
                out->csum_offset = le16toh(v.csum_offset);
            } else {
                out->vnet_flags = 0; out->gso_type = 0; out->hdr_len = 0;
                out->gso_size = 0; out->csum_start = 0; out->csum_offset = 0;
            }
            return 1;
        }
        struct tpacket_block_desc *bd = (struct tpacket_block_desc *)sl_pring_block(r, r->rx_block);
        uint32_t status = __atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
        if (!(status & TP_STATUS_USER)) return 0;
        r->rx_held = 1;
        r->rx_left = bd->hdr.bh1.num_pkts;
        r->rx_resume = 0;
        r->rx_frame = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
    }
}

/// The next received frame (peek and take), or 0 when none is ready. It stays
/// valid until the next call to sl_pring_next, sl_pring_peek or sl_pring_release.
static inline int sl_pring_next(sl_pring *r, sl_pframe *out) {
    if (!sl_pring_peek(r, out)) return 0;
    sl_pring_take(r);
    return 1;
}

/// Give back the block the cursor holds if every frame of it was handed out.
static inline void sl_pring_release(sl_pring *r) {
    if (r->rx_held && r->rx_left == 0) sl_pring_return_block(r);
}

/// Copy one frame into the next TX slot and mark it for sending. With
/// PACKET_VNET_HDR the slot's data starts with a virtio_net_hdr (all zero here).
/// 0 when the ring is full or the frame does not fit a slot.
static inline int sl_pring_transmit(sl_pring *r, const void *frame, uint32_t length) {
    if (length > r->tx_max_len || length < 14) return 0;
    struct tpacket3_hdr *h = (struct tpacket3_hdr *)r->tx_slot;
    if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) return 0;
    uint8_t *d = (uint8_t *)h + SL_TP3_HDRLEN;
    uint32_t vnet = r->tx_vnet;
    if (vnet) memset(d, 0, vnet);  // no offload asked: checksums done, no GSO
    memcpy(d + vnet, frame, length);
    h->tp_len = length + vnet;
    h->tp_snaplen = length + vnet;
    h->tp_next_offset = 0;
    __atomic_store_n(&h->tp_status, (uint32_t)TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    r->tx_queued += 1;
    if (++r->tx_index == r->tx_frames_per_block) {
        r->tx_index = 0;
        r->tx_block = r->tx_block + 1 == r->tx_block_count ? 0 : r->tx_block + 1;
        r->tx_slot = r->tx_ring + (size_t)r->tx_block * r->tx_block_size;
    } else {
        r->tx_slot += r->tx_frame_size;
    }
    return 1;
}

#endif
