// Host ports: constants and option structs for tap devices and AF_PACKET rings.
#include "csluice.h"

#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/filter.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif
#ifndef IFF_TUN_EXCL
#define IFF_TUN_EXCL 0x8000
#endif

_Static_assert(sizeof(((sl_snaplen_filter *)0)->insns[0]) == sizeof(struct sock_filter), "sock_filter layout");
_Static_assert(sizeof(((sl_snaplen_filter *)0)->prog) == sizeof(struct sock_fprog), "sock_fprog layout");

unsigned long sl_ioctl_tunsetiff(void) { return TUNSETIFF; }
unsigned long sl_ioctl_siocgifflags(void) { return SIOCGIFFLAGS; }
unsigned long sl_ioctl_siocsifflags(void) { return SIOCSIFFLAGS; }
unsigned long sl_ioctl_siocgifmtu(void) { return SIOCGIFMTU; }
unsigned long sl_ioctl_siocsifmtu(void) { return SIOCSIFMTU; }
short sl_tun_tap_flags(void) { return IFF_TAP | IFF_NO_PI; }
short sl_tun_excl_flag(void) { return (short)IFF_TUN_EXCL; }
short sl_iff_up(void) { return IFF_UP; }
short sl_iff_running(void) { return IFF_RUNNING; }

int sl_af_packet(void) { return AF_PACKET; }
int sl_sol_packet(void) { return SOL_PACKET; }
int sl_eth_p_all_be(void) { return htons(ETH_P_ALL); }
int sl_packet_version_opt(void) { return PACKET_VERSION; }
int sl_tpacket_v3(void) { return TPACKET_V3; }
int sl_packet_rx_ring_opt(void) { return PACKET_RX_RING; }
int sl_packet_tx_ring_opt(void) { return PACKET_TX_RING; }
int sl_packet_qdisc_bypass_opt(void) { return PACKET_QDISC_BYPASS; }
int sl_packet_ignore_outgoing_opt(void) { return PACKET_IGNORE_OUTGOING; }
int sl_packet_loss_opt(void) { return PACKET_LOSS; }
int sl_packet_add_membership_opt(void) { return PACKET_ADD_MEMBERSHIP; }
int sl_packet_statistics_opt(void) { return PACKET_STATISTICS; }
int sl_packet_vnet_hdr_opt(void) { return PACKET_VNET_HDR; }

socklen_t sl_fill_sockaddr_ll(sl_sockaddr_ll_storage *s, int ifindex) {
    struct sockaddr_ll a;
    memset(&a, 0, sizeof(a));
    a.sll_family = AF_PACKET;
    a.sll_protocol = htons(ETH_P_ALL);
    a.sll_ifindex = ifindex;
    memcpy(s->bytes, &a, sizeof(a));
    return sizeof(a);
}

socklen_t sl_fill_promisc_mreq(sl_packet_mreq_storage *s, int ifindex) {
    struct packet_mreq m;
    memset(&m, 0, sizeof(m));
    m.mr_ifindex = ifindex;
    m.mr_type = PACKET_MR_PROMISC;
    memcpy(s->bytes, &m, sizeof(m));
    return sizeof(m);
}

socklen_t sl_fill_tpacket_req3(sl_tpacket_req3_storage *s, unsigned block_size, unsigned block_nr,
                               unsigned frame_size, unsigned frame_nr, unsigned retire_tov_ms) {
    struct tpacket_req3 r;
    memset(&r, 0, sizeof(r));
    r.tp_block_size = block_size;
    r.tp_block_nr = block_nr;
    r.tp_frame_size = frame_size;
    r.tp_frame_nr = frame_nr;
    r.tp_retire_blk_tov = retire_tov_ms;  // must stay 0 for a TX ring
    memcpy(s->bytes, &r, sizeof(r));
    return sizeof(r);
}

socklen_t sl_fill_snaplen_filter(sl_snaplen_filter *f, unsigned max_frame) {
    struct sock_filter prog[4] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, max_frame),
        BPF_STMT(BPF_RET | BPF_K, max_frame > 4 ? max_frame - 4 : max_frame),
    };
    memcpy(f->insns, prog, sizeof(prog));
    f->prog.len = 4;
    f->prog.filter = f->insns;
    return sizeof(struct sock_fprog);
}

short sl_tun_multi_queue_flag(void) { return IFF_MULTI_QUEUE; }
