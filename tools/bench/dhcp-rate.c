// dhcp-rate: DHCPv4 DISCOVER/OFFER/REQUEST/ACK exchanges per second against a DHCP
// server behind one or more Linux interfaces (tools/bench/dhcp-rate.sh: sluice's tap
// ports). One client per interface, each with its own MAC, over an AF_PACKET socket; every
// client keeps one exchange in flight and starts the next as soon as its ACK arrives.
//
//   dhcp-rate SECONDS IFACE=MAC [IFACE=MAC ...]
//
// Prints one line:
//   dhcp-rate clients=N seconds=S exchanges=N per_second=X avg_ms=X max_ms=X timeouts=N naks=N
// An exchange that gets no answer within 1 s is counted as a timeout and started again.
// Exit 1 on a setup error, 2 when no exchange completed.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CLIENTS = 64, FRAME = 342 };

struct client {
    int fd;
    uint8_t mac[6];
    uint32_t xid;
    int state;            // 0: DISCOVER sent, 1: REQUEST sent
    double started;       // the exchange
    double sent;          // the last message
    uint8_t server[4], offered[4];
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint16_t ip_checksum(const uint8_t *p, int n) {
    uint32_t s = 0;
    for (int i = 0; i < n; i += 2) s += (uint32_t)p[i] << 8 | p[i + 1];
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

// A broadcast DHCP message from the client: type 1 (DISCOVER) or 3 (REQUEST).
static void send_message(struct client *c, int type) {
    uint8_t f[FRAME];
    memset(f, 0, sizeof f);
    memset(f, 0xFF, 6);
    memcpy(f + 6, c->mac, 6);
    f[12] = 0x08; f[13] = 0x00;
    uint8_t *ip = f + 14, *udp = f + 34, *d = f + 42;
    ip[0] = 0x45; ip[8] = 64; ip[9] = 17;
    ip[2] = (FRAME - 14) >> 8; ip[3] = (FRAME - 14) & 0xFF;
    memset(ip + 16, 0xFF, 4);                       // 0.0.0.0 -> 255.255.255.255
    uint16_t sum = ip_checksum(ip, 20);
    ip[10] = sum >> 8; ip[11] = sum & 0xFF;
    udp[1] = 68; udp[3] = 67;
    udp[4] = (FRAME - 34) >> 8; udp[5] = (FRAME - 34) & 0xFF;   // UDP checksum 0: none
    d[0] = 1; d[1] = 1; d[2] = 6;
    memcpy(d + 4, &c->xid, 4);
    d[10] = 0x80;                                   // broadcast flag
    memcpy(d + 28, c->mac, 6);
    uint8_t *o = d + 236;
    *o++ = 99; *o++ = 130; *o++ = 83; *o++ = 99;
    *o++ = 53; *o++ = 1; *o++ = (uint8_t)type;
    *o++ = 61; *o++ = 7; *o++ = 1; memcpy(o, c->mac, 6); o += 6;
    if (type == 3) {
        *o++ = 50; *o++ = 4; memcpy(o, c->offered, 4); o += 4;
        *o++ = 54; *o++ = 4; memcpy(o, c->server, 4); o += 4;
    }
    *o++ = 55; *o++ = 3; *o++ = 1; *o++ = 3; *o++ = 6;
    *o = 255;
    if (send(c->fd, f, sizeof f, 0) != (ssize_t)sizeof f) perror("send");
    c->state = type == 1 ? 0 : 1;
    c->sent = now();
}

static void start(struct client *c) {
    c->xid = (uint32_t)random();
    c->started = now();
    send_message(c, 1);
}

// The DHCP message type of a reply for this client (0: not one), with its server id and
// offered address.
static int parse_reply(struct client *c, const uint8_t *f, ssize_t n) {
    if (n < 42 + 240 || f[12] != 0x08 || f[13] != 0x00 || f[23] != 17) return 0;
    int ihl = (f[14] & 0x0F) * 4;
    const uint8_t *udp = f + 14 + ihl, *d = udp + 8;
    if (udp + 8 + 240 > f + n || udp[2] != 0 || udp[3] != 68 || d[0] != 2) return 0;
    if (memcmp(d + 4, &c->xid, 4) != 0 || memcmp(d + 28, c->mac, 6) != 0) return 0;
    if (!(d[236] == 99 && d[237] == 130 && d[238] == 83 && d[239] == 99)) return 0;
    int type = 0;
    const uint8_t *o = d + 240, *end = f + n;
    while (o < end && *o != 255) {
        if (*o == 0) { o++; continue; }
        if (o + 2 > end || o + 2 + o[1] > end) break;
        if (o[0] == 53 && o[1] == 1) type = o[2];
        if (o[0] == 54 && o[1] == 4) memcpy(c->server, o + 2, 4);
        o += 2 + o[1];
    }
    memcpy(c->offered, d + 16, 4);
    return type;
}

static int parse_mac(const char *s, uint8_t *m) {
    unsigned v[6];
    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
    for (int i = 0; i < 6; i++) m[i] = (uint8_t)v[i];
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: dhcp-rate SECONDS IFACE=MAC [IFACE=MAC ...]\n"); return 1; }
    double seconds = atof(argv[1]);
    int n = argc - 2;
    if (seconds <= 0 || n > MAX_CLIENTS) { fprintf(stderr, "dhcp-rate: bad SECONDS or more than %d clients\n", MAX_CLIENTS); return 1; }
    struct client cs[MAX_CLIENTS];
    struct pollfd pf[MAX_CLIENTS];
    srandom((unsigned)getpid());
    for (int i = 0; i < n; i++) {
        char name[IFNAMSIZ + 1] = {0};
        const char *eq = strchr(argv[i + 2], '=');
        if (!eq || eq - argv[i + 2] > IFNAMSIZ || parse_mac(eq + 1, cs[i].mac)) {
            fprintf(stderr, "dhcp-rate: '%s' is not IFACE=MAC\n", argv[i + 2]); return 1;
        }
        memcpy(name, argv[i + 2], eq - argv[i + 2]);
        int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
        if (fd < 0) { perror("socket(AF_PACKET)"); return 1; }
        struct sockaddr_ll a = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = (int)if_nametoindex(name)};
        if (a.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            fprintf(stderr, "dhcp-rate: cannot bind to %s: %s\n", name, strerror(errno)); return 1;
        }
        cs[i].fd = fd;
        pf[i].fd = fd; pf[i].events = POLLIN;
    }
    long done = 0, timeouts = 0, naks = 0;
    double total = 0, worst = 0, t0 = now(), end = t0 + seconds;
    for (int i = 0; i < n; i++) start(&cs[i]);
    uint8_t buf[2048];
    for (;;) {
        double t = now();
        if (t >= end) break;
        int r = poll(pf, (nfds_t)n, 10);
        if (r < 0 && errno != EINTR) { perror("poll"); return 1; }
        t = now();
        for (int i = 0; i < n; i++) {
            struct client *c = &cs[i];
            if (pf[i].revents & POLLIN) {
                ssize_t len;
                while ((len = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
                    int type = parse_reply(c, buf, len);
                    if (type == 2 && c->state == 0) {
                        send_message(c, 3);
                    } else if (type == 5 && c->state == 1) {
                        double ms = (now() - c->started) * 1e3;
                        done++; total += ms; if (ms > worst) worst = ms;
                        start(c);
                    } else if (type == 6) {
                        naks++;
                        start(c);
                    }
                }
            }
            if (now() - c->sent > 1.0) { timeouts++; start(c); }
        }
    }
    double elapsed = now() - t0;
    printf("dhcp-rate clients=%d seconds=%.2f exchanges=%ld per_second=%.0f avg_ms=%.3f max_ms=%.3f timeouts=%ld naks=%ld\n",
           n, elapsed, done, done / elapsed, done ? total / done : 0.0, worst, timeouts, naks);
    return done > 0 ? 0 : 2;
}
