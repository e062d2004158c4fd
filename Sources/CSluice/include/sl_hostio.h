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
#include <linux/if_packet.h>

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
    uint8_t *tx_slot;       // the next slot to fill
} sl_pring;

typedef struct {
    const uint8_t *data;
    uint32_t length;        // bytes at data
    uint32_t wire_length;   // length on the wire (> length when truncated)
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

/// The next received frame, or 0 when none is ready. The frame stays valid
/// until the next call to sl_pring_next or sl_pring_release. A VLAN tag the
/// kernel stripped is written back in front of the EtherType (in the ring's
/// headroom), so the frame is byte-for-byte what was on the wire.
static inline int sl_pring_next(sl_pring *r, sl_pframe *out) {
    for (;;) {
        if (r->rx_held) {
            if (r->rx_left == 0) {
                sl_pring_return_block(r);
                continue;
            }
            struct tpacket3_hdr *h = (struct tpacket3_hdr *)r->rx_frame;
            r->rx_left -= 1;
            r->rx_frame += h->tp_next_offset;
            const struct sockaddr_ll *sll = (const struct sockaddr_ll *)((uint8_t *)h + SL_TP3_HDRLEN);
            if (sll->sll_pkttype == PACKET_OUTGOING) continue;  // our own or the host's transmissions
            uint8_t *mac = (uint8_t *)h + h->tp_mac;
            uint32_t len = h->tp_snaplen, wire = h->tp_len;
            if (h->tp_status & TP_STATUS_VLAN_VALID) {
                uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
                uint16_t tci = h->hv1.tp_vlan_tci;
                if (len >= 12 && h->tp_mac >= SL_TP3_RX_META_END + 4) {
                    memmove(mac - 4, mac, 12);
                    mac -= 4;
                    mac[12] = (uint8_t)(tpid >> 8); mac[13] = (uint8_t)tpid;
                    mac[14] = (uint8_t)(tci >> 8);  mac[15] = (uint8_t)tci;
                    len += 4;
                    r->rx_vlan_restored += 1;
                } else {
                    len = len < 12 ? len : 12;  // no room for the tag: report it truncated
                }
                wire += 4;
            }
            out->data = mac;
            out->length = len;
            out->wire_length = wire;
            return 1;
        }
        struct tpacket_block_desc *bd = (struct tpacket_block_desc *)sl_pring_block(r, r->rx_block);
        uint32_t status = __atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
        if (!(status & TP_STATUS_USER)) return 0;
        r->rx_held = 1;
        r->rx_left = bd->hdr.bh1.num_pkts;
        r->rx_frame = (uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt;
    }
}

/// Give back the block the cursor holds if every frame of it was handed out.
static inline void sl_pring_release(sl_pring *r) {
    if (r->rx_held && r->rx_left == 0) sl_pring_return_block(r);
}

/// Copy one frame into the next TX slot and mark it for sending.
/// 0 when the ring is full or the frame does not fit a slot.
static inline int sl_pring_transmit(sl_pring *r, const void *frame, uint32_t length) {
    if (length > r->tx_max_len || length < 14) return 0;
    struct tpacket3_hdr *h = (struct tpacket3_hdr *)r->tx_slot;
    if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) return 0;
    memcpy((uint8_t *)h + SL_TP3_HDRLEN, frame, length);
    h->tp_len = length;
    h->tp_snaplen = length;
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
