// vfio-nvme-probe: drive one NVMe controller bound to vfio-pci far enough to learn what the
// Sluice NVMe driver (issue #12) will meet, and print it as "PROBE key=value" lines.
// Test-guest helper only (run by init.sh's sl.role=vfio-probe); not part of sluice.
//
//   vfio-nvme-probe 0000:00:04.0 [admin-mmio-only]
//
// admin-mmio-only: after Doorbell Buffer Config, the admin queue gets MMIO doorbells only
// (no shadow writes), as Linux does it; shows whether the controller still serves it.
//
// Steps: VFIO container/group/device, IOMMU info (page sizes, IOVA ranges, DMA mapping
// limit), regions and IRQ counts, bus mastering through config space, BAR0 mmap,
// controller disable/enable with CAP.TO, admin queue, Identify controller / active
// namespace list / namespaces, Set Features Number of Queues, one I/O queue pair with
// reads through PRP1, PRP1+PRP2, a PRP list and (when offered) an SGL data block,
// an MSI-X interrupt on a second completion queue, Doorbell Buffer Config, shutdown.
// Reads only: nothing is written to the namespaces.
//
// Build (static, for the initramfs): gcc -O2 -static -o vfio-nvme-probe vfio-nvme-probe.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define say(...) do { printf("PROBE " __VA_ARGS__); putchar('\n'); fflush(stdout); } while (0)
#define die(...) do { say("FAIL " __VA_ARGS__); exit(1); } while (0)

static volatile uint8_t *bar;
static uint32_t dstrd;
static uint64_t cap;

static uint32_t rd32(uint32_t off) { return *(volatile uint32_t *)(bar + off); }
static void wr32(uint32_t off, uint32_t v) { __sync_synchronize(); *(volatile uint32_t *)(bar + off) = v; }
static uint64_t rd64(uint32_t off) { return rd32(off) | (uint64_t)rd32(off + 4) << 32; }
static void wr64(uint32_t off, uint64_t v) { wr32(off, (uint32_t)v); wr32(off + 4, (uint32_t)(v >> 32)); }
static uint32_t sq_db(int q) { return 0x1000 + (2 * q) * (4u << dstrd); }
static uint32_t cq_db(int q) { return 0x1000 + (2 * q + 1) * (4u << dstrd); }

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// DMA memory: one anonymous area mapped at IOVA_BASE; pages handed out in order.
#define IOVA_BASE 0x40000000ull
#define DMA_BYTES (256u << 10)
static uint8_t *dma;
static size_t dma_used;
static void *dma_page(uint64_t *iova) {
    if (dma_used + 4096 > DMA_BYTES) die("dma area full");
    void *p = dma + dma_used;
    *iova = IOVA_BASE + dma_used;
    dma_used += 4096;
    memset(p, 0, 4096);
    return p;
}

struct sqe { uint8_t opc, flags; uint16_t cid; uint32_t nsid, cdw2, cdw3; uint64_t mptr, prp1, prp2;
             uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15; };
struct cqe { uint32_t dw0, dw1; uint16_t sqhd, sqid, cid, status; };

struct queue { int qid, depth; struct sqe *sq; volatile struct cqe *cq; uint16_t tail, head, phase, cid;
               uint64_t sq_iova, cq_iova; uint32_t *shadow_sq, *shadow_cq, *ei_sq, *ei_cq; int mmio_skipped, mmio_done, always_mmio; };

static void queue_init(struct queue *q, int qid, int depth) {
    memset(q, 0, sizeof *q);
    q->qid = qid; q->depth = depth; q->phase = 1;
    q->sq = dma_page(&q->sq_iova);
    q->cq = dma_page(&q->cq_iova);
}

static int need_event(uint16_t ei, uint16_t nw, uint16_t old) { return (uint16_t)(nw - ei - 1) < (uint16_t)(nw - old); }

static void ring(struct queue *q, uint32_t off, uint32_t *shadow, uint32_t *ei, uint16_t v) {
    if (shadow) {
        uint16_t old = (uint16_t)*shadow;
        __sync_synchronize();
        *(volatile uint32_t *)shadow = v;
        __sync_synchronize();
        if (!q->always_mmio && !need_event((uint16_t)*(volatile uint32_t *)ei, v, old)) { q->mmio_skipped++; return; }
    }
    q->mmio_done++;
    wr32(off, v);
}

// Submit one command and wait (polling) for its completion; returns the status field
// (phase bit removed) and stores dw0.
static int run(struct queue *q, struct sqe *c, uint32_t *dw0, int timeout_ms) {
    c->cid = q->cid++;
    q->sq[q->tail] = *c;
    q->tail = (q->tail + 1) % q->depth;
    ring(q, sq_db(q->qid), q->shadow_sq, q->ei_sq, q->tail);
    double t0 = now_ms();
    for (;;) {
        volatile struct cqe *e = &q->cq[q->head];
        if ((e->status & 1) == q->phase) {
            __sync_synchronize();
            int st = e->status >> 1;
            if (dw0) *dw0 = e->dw0;
            if (e->cid != c->cid) say("WARN cid mismatch want=%u got=%u", c->cid, e->cid);
            if (++q->head == q->depth) { q->head = 0; q->phase ^= 1; }
            ring(q, cq_db(q->qid), q->shadow_cq, q->ei_cq, q->head);
            return st;
        }
        if (rd32(0x1c) & 2) die("CSTS.CFS set while waiting (opc=0x%x)", c->opc);
        if (now_ms() - t0 > timeout_ms) return -1;
    }
}

static void trim(char *dst, const uint8_t *src, int n) {
    memcpy(dst, src, n); dst[n] = 0;
    for (int i = n - 1; i >= 0 && dst[i] == ' '; i--) dst[i] = 0;
}

static int wait_rdy(int want, int to_ms) {
    double t0 = now_ms();
    while (((rd32(0x1c) & 1) != (uint32_t)want)) {
        if (now_ms() - t0 > to_ms) return -1;
        usleep(1000);
    }
    return (int)(now_ms() - t0);
}

static void iommu_info(int container) {
    struct vfio_iommu_type1_info *info = calloc(1, 4096);
    info->argsz = 4096;
    if (ioctl(container, VFIO_IOMMU_GET_INFO, info)) { say("iommu_info=error errno=%d", errno); return; }
    say("iommu_pgsizes=0x%llx flags=0x%x", (unsigned long long)info->iova_pgsizes, info->flags);
    if (!(info->flags & VFIO_IOMMU_INFO_CAPS) || !info->cap_offset) return;
    for (uint32_t off = info->cap_offset; off; ) {
        struct vfio_info_cap_header *h = (void *)((char *)info + off);
        if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
            struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
            for (uint32_t i = 0; i < r->nr_iovas; i++)
                say("iova_range=0x%llx-0x%llx", (unsigned long long)r->iova_ranges[i].start,
                    (unsigned long long)r->iova_ranges[i].end);
        } else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
            say("dma_avail=%u", ((struct vfio_iommu_type1_info_dma_avail *)h)->avail);
        }
        off = h->next;
    }
    free(info);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s BDF [admin-mmio-only]\n", argv[0]); return 2; }
    int admin_shadow = !(argc > 2 && !strcmp(argv[2], "admin-mmio-only"));
    const char *bdf = argv[1];
    char path[256], link[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", bdf);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) die("no iommu_group for %s (IOMMU off? intel_iommu=on)", bdf);
    link[n] = 0;
    const char *grp = strrchr(link, '/') + 1;
    say("device=%s group=%s", bdf, grp);

    int container = open("/dev/vfio/vfio", O_RDWR);
    if (container < 0) die("open /dev/vfio/vfio errno=%d", errno);
    say("api_version=%d type1=%d type1v2=%d unmap_all=%d", ioctl(container, VFIO_GET_API_VERSION),
        ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU), ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU),
        ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL));
    snprintf(path, sizeof path, "/dev/vfio/%s", grp);
    int group = open(path, O_RDWR);
    if (group < 0) die("open %s errno=%d", path, errno);
    struct vfio_group_status gs = { .argsz = sizeof gs };
    ioctl(group, VFIO_GROUP_GET_STATUS, &gs);
    say("group_viable=%d", !!(gs.flags & VFIO_GROUP_FLAGS_VIABLE));
    if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) die("group %s not viable", grp);
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container)) die("SET_CONTAINER errno=%d", errno);
    if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) die("SET_IOMMU errno=%d", errno);
    iommu_info(container);

    int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    if (dev < 0) die("GET_DEVICE_FD errno=%d", errno);
    struct vfio_device_info di = { .argsz = sizeof di };
    ioctl(dev, VFIO_DEVICE_GET_INFO, &di);
    say("device_flags=0x%x regions=%u irqs=%u", di.flags, di.num_regions, di.num_irqs);
    struct vfio_region_info bar0 = { .argsz = sizeof bar0, .index = VFIO_PCI_BAR0_REGION_INDEX };
    struct vfio_region_info cfg = { .argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX };
    ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar0);
    ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg);
    say("bar0_size=0x%llx bar0_offset=0x%llx bar0_flags=0x%x config_size=0x%llx config_offset=0x%llx",
        (unsigned long long)bar0.size, (unsigned long long)bar0.offset, bar0.flags,
        (unsigned long long)cfg.size, (unsigned long long)cfg.offset);
    const char *irqname[] = { "intx", "msi", "msix", "err", "req" };
    for (uint32_t i = 0; i < di.num_irqs && i < 5; i++) {
        struct vfio_irq_info ii = { .argsz = sizeof ii, .index = i };
        if (ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &ii) == 0) say("irq_%s count=%u flags=0x%x", irqname[i], ii.count, ii.flags);
    }
    uint16_t cmd;
    pread(dev, &cmd, 2, cfg.offset + 4);
    say("pci_command_before=0x%04x", cmd);
    cmd |= 0x6;    // memory space + bus master
    pwrite(dev, &cmd, 2, cfg.offset + 4);
    pread(dev, &cmd, 2, cfg.offset + 4);
    say("pci_command_after=0x%04x", cmd);

    bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, bar0.offset);
    if (bar == MAP_FAILED) die("mmap BAR0 errno=%d", errno);
    cap = rd64(0);
    dstrd = (cap >> 32) & 0xf;
    uint32_t to_ms = ((cap >> 24) & 0xff) * 500;
    say("cap=0x%016llx mqes=%u cqr=%u to_500ms=%u dstrd=%u css=0x%x mpsmin=%u mpsmax=%u vs=0x%08x cc=0x%08x csts=0x%08x",
        (unsigned long long)cap, (unsigned)(cap & 0xffff) + 1, (unsigned)(cap >> 16) & 1, (unsigned)(cap >> 24) & 0xff,
        dstrd, (unsigned)(cap >> 37) & 0xff, (unsigned)(cap >> 48) & 0xf, (unsigned)(cap >> 52) & 0xf,
        rd32(0x8), rd32(0x14), rd32(0x1c));

    dma = mmap(NULL, DMA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    struct vfio_iommu_type1_dma_map map = { .argsz = sizeof map, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                            .vaddr = (uintptr_t)dma, .iova = IOVA_BASE, .size = DMA_BYTES };
    if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map)) die("MAP_DMA iova=0x%llx errno=%d", IOVA_BASE, errno);
    say("dma_map iova=0x%llx size=%u ok", IOVA_BASE, DMA_BYTES);
    // Would IOVA == process virtual address work (as SPDK's va mode does)?
    void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    struct vfio_iommu_type1_dma_map va = map;
    va.vaddr = va.iova = (uintptr_t)probe; va.size = 4096;
    int rc = ioctl(container, VFIO_IOMMU_MAP_DMA, &va);
    say("dma_map_iova_eq_va vaddr=%p rc=%d errno=%d", probe, rc, rc ? errno : 0);
    if (rc == 0) {
        struct vfio_iommu_type1_dma_unmap um = { .argsz = sizeof um, .iova = va.iova, .size = 4096 };
        ioctl(container, VFIO_IOMMU_UNMAP_DMA, &um);
    }

    // Reset: CC.EN=0, wait CSTS.RDY=0; admin queue; CC.EN=1, wait CSTS.RDY=1.
    if (rd32(0x14) & 1) {
        wr32(0x14, rd32(0x14) & ~1u);
        int ms = wait_rdy(0, to_ms);
        say("disable rdy0_ms=%d", ms);
        if (ms < 0) die("CSTS.RDY stayed 1 after CC.EN=0 (%u ms)", to_ms);
    }
    struct queue aq;
    queue_init(&aq, 0, 64);
    wr32(0x24, (uint32_t)(aq.depth - 1) << 16 | (aq.depth - 1));
    wr64(0x28, aq.sq_iova);
    wr64(0x30, aq.cq_iova);
    wr32(0x14, 1u | 0u << 4 | 0u << 7 | 6u << 16 | 4u << 20);   // EN, CSS=NVM, MPS=4K, IOSQES=64, IOCQES=16
    int ms = wait_rdy(1, to_ms);
    say("enable rdy1_ms=%d cc=0x%08x csts=0x%08x", ms, rd32(0x14), rd32(0x1c));
    if (ms < 0) die("CSTS.RDY not 1 within CAP.TO");

    uint64_t id_iova;
    uint8_t *id = dma_page(&id_iova);
    struct sqe c = { .opc = 0x06, .prp1 = id_iova, .cdw10 = 1 };
    rc = run(&aq, &c, NULL, 1000);
    if (rc) die("identify controller status=0x%x", rc);
    char sn[21], mn[41], fr[9];
    trim(sn, id + 4, 20); trim(mn, id + 24, 40); trim(fr, id + 64, 8);
    uint32_t sgls = *(uint32_t *)(id + 536);
    say("ctrl vid=0x%04x sn='%s' mn='%s' fr='%s' mdts=%u cntlid=%u ver=0x%08x oacs=0x%04x acl=%u aerl=%u sqes=0x%02x cqes=0x%02x nn=%u oncs=0x%04x vwc=0x%02x sgls=0x%08x",
        *(uint16_t *)id, sn, mn, fr, id[77], *(uint16_t *)(id + 78), *(uint32_t *)(id + 80), *(uint16_t *)(id + 256),
        id[258], id[259], id[512], id[513], *(uint32_t *)(id + 516), *(uint16_t *)(id + 520), id[525], sgls);
    int has_dbbuf = (*(uint16_t *)(id + 256) >> 8) & 1;

    uint64_t nsl_iova;
    uint32_t *nsl = dma_page(&nsl_iova);
    c = (struct sqe){ .opc = 0x06, .prp1 = nsl_iova, .cdw10 = 2, .nsid = 0 };
    if ((rc = run(&aq, &c, NULL, 1000))) die("identify active ns list status=0x%x", rc);
    uint32_t first_ns = 0, lbads1 = 9;
    for (int i = 0; i < 1024 && nsl[i]; i++) {
        uint64_t ns_iova;
        uint8_t *ns = dma_page(&ns_iova);
        c = (struct sqe){ .opc = 0x06, .prp1 = ns_iova, .cdw10 = 0, .nsid = nsl[i] };
        if ((rc = run(&aq, &c, NULL, 1000))) { say("ns %u identify status=0x%x", nsl[i], rc); continue; }
        uint8_t flbas = ns[26] & 0xf;
        uint32_t lbaf = *(uint32_t *)(ns + 128 + 4 * flbas);
        say("ns nsid=%u nsze=%llu ncap=%llu nlbaf=%u flbas=%u lbads=%u ms=%u nsfeat=0x%02x dlfeat=0x%02x",
            nsl[i], (unsigned long long)*(uint64_t *)ns, (unsigned long long)*(uint64_t *)(ns + 8), ns[25] + 1, flbas,
            (lbaf >> 16) & 0xff, lbaf & 0xffff, ns[24], ns[33]);
        if (!first_ns) { first_ns = nsl[i]; lbads1 = (lbaf >> 16) & 0xff; }
        dma_used -= 4096;   // page reused for the next namespace
    }
    if (!first_ns) die("no active namespace");

    uint32_t dw0;
    c = (struct sqe){ .opc = 0x09, .cdw10 = 0x07, .cdw11 = (3u << 16) | 3u };
    rc = run(&aq, &c, &dw0, 1000);
    say("set_features_nqueues asked=4/4 status=0x%x nsqa=%u ncqa=%u", rc, (dw0 & 0xffff) + 1, (dw0 >> 16) + 1);

    // Doorbell Buffer Config (before the I/O queues exist, as Linux does it).
    uint64_t dbs_iova = 0, eis_iova = 0;
    uint32_t *dbs = NULL, *eis = NULL;
    if (has_dbbuf) {
        dbs = dma_page(&dbs_iova);
        eis = dma_page(&eis_iova);
        c = (struct sqe){ .opc = 0x7c, .prp1 = dbs_iova, .prp2 = eis_iova };
        rc = run(&aq, &c, NULL, 1000);
        say("doorbell_buffer_config status=0x%x", rc);
        if (rc) dbs = NULL;
    }
    // Shadow slots of a queue: the doorbell layout (4 << DSTRD bytes apart) inside the two pages.
    uint32_t s = 4u << dstrd;
#define SHADOW(q) do { if (dbs) { (q).shadow_sq = (uint32_t *)((uint8_t *)dbs + 2 * (q).qid * s); \
        (q).shadow_cq = (uint32_t *)((uint8_t *)dbs + (2 * (q).qid + 1) * s); \
        (q).ei_sq = (uint32_t *)((uint8_t *)eis + 2 * (q).qid * s); \
        (q).ei_cq = (uint32_t *)((uint8_t *)eis + (2 * (q).qid + 1) * s); \
        *(q).shadow_sq = (q).tail; *(q).shadow_cq = (q).head; } } while (0)
    // The admin queue: shadow written too, but the MMIO doorbell always (does the controller
    // shadow queue 0? its event indexes tell).
    aq.always_mmio = 1;
    if (admin_shadow) SHADOW(aq);
    say("admin_shadow=%d", admin_shadow);

    // I/O queue pair 1 (polled), CQ first.
    struct queue io;
    queue_init(&io, 1, 64);
    c = (struct sqe){ .opc = 0x05, .prp1 = io.cq_iova, .cdw10 = (uint32_t)(io.depth - 1) << 16 | 1, .cdw11 = 1 };
    if ((rc = run(&aq, &c, NULL, 1000))) die("create io cq status=0x%x", rc);
    c = (struct sqe){ .opc = 0x01, .prp1 = io.sq_iova, .cdw10 = (uint32_t)(io.depth - 1) << 16 | 1, .cdw11 = 1u << 16 | 1 };
    if ((rc = run(&aq, &c, NULL, 1000))) die("create io sq status=0x%x", rc);
    SHADOW(io);
    say("io_queue qid=1 depth=%d created", io.depth);

    // Reads of 12 KiB from LBA 0: PRP1 only (one page at a time), PRP1+PRP2 + PRP1 (8K + 4K),
    // a PRP list (PRP1 + list of two), an SGL data block; all must agree.
    uint32_t blk = 1u << lbads1, nlb = 12288 / blk;
    uint64_t d_iova[4][3];
    uint8_t *d[4][3];
    for (int v = 0; v < 4; v++) for (int p = 0; p < 3; p++) d[v][p] = dma_page(&d_iova[v][p]);
    int ok = 1;
    for (int p = 0; p < 3 && ok; p++) {
        c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[0][p], .cdw10 = p * 4096 / blk, .cdw12 = 4096 / blk - 1 };
        if ((rc = run(&io, &c, NULL, 2000))) { say("read prp1 status=0x%x", rc); ok = 0; }
    }
    c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[1][0], .prp2 = d_iova[1][1], .cdw12 = 8192 / blk - 1 };
    if ((rc = run(&io, &c, NULL, 2000))) { say("read prp1+prp2 status=0x%x", rc); ok = 0; }
    c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[1][2], .cdw10 = 8192 / blk, .cdw12 = 4096 / blk - 1 };
    if ((rc = run(&io, &c, NULL, 2000))) { say("read prp1 tail status=0x%x", rc); ok = 0; }
    uint64_t list_iova;
    uint64_t *list = dma_page(&list_iova);
    list[0] = d_iova[2][1]; list[1] = d_iova[2][2];
    c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[2][0], .prp2 = list_iova, .cdw12 = nlb - 1 };
    rc = run(&io, &c, NULL, 2000);
    say("read prp_list status=0x%x", rc);
    if (rc) ok = 0;
    int sgl_rc = -2;
    if (sgls & 3) {
        // One 12 KiB SGL Data Block descriptor needs contiguous IOVA: the three pages of d[3] are.
        c = (struct sqe){ .opc = 0x02, .flags = 1u << 6, .nsid = first_ns, .cdw12 = nlb - 1 };
        c.prp1 = d_iova[3][0];
        c.prp2 = (uint64_t)12288 | (uint64_t)0x00 << 56;   // length in bytes 8..11, type 0 (data block) in byte 15 bits 7:4
        sgl_rc = run(&io, &c, NULL, 2000);
        say("read sgl_data_block status=0x%x", sgl_rc);
    }
    int same = 1;
    for (int p = 0; p < 3; p++) {
        same &= !memcmp(d[0][p], d[1][p], 4096) && !memcmp(d[0][p], d[2][p], 4096);
        if (sgl_rc == 0) same &= !memcmp(d[0][p], d[3][p], 4096);
    }
    int nonzero = 0;
    for (int i = 0; i < 4096; i++) nonzero |= d[0][0][i];
    say("reads agree=%d nonzero_lba0=%d first16=%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x sig_at_512='%.8s'",
        same && ok, nonzero, d[0][0][0], d[0][0][1], d[0][0][2], d[0][0][3], d[0][0][4], d[0][0][5], d[0][0][6], d[0][0][7],
        d[0][0][8], d[0][0][9], d[0][0][10], d[0][0][11], d[0][0][12], d[0][0][13], d[0][0][14], d[0][0][15],
        (char *)d[0][0] + 512);
    // Shared memory as a vhost-user front-end's regions are (memfd, MAP_SHARED), mapped at an
    // IOVA of its own; reads land at a PRP1 offset (512, spanning two pages) and, with an SGL,
    // at an odd byte address; then the mapping is removed and made again (a memory table change).
    {
        int mfd = memfd_create("probe-guest", 0);
        ftruncate(mfd, 65536);
        uint8_t *g = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        struct vfio_iommu_type1_dma_map gm = { .argsz = sizeof gm, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                               .vaddr = (uintptr_t)g, .iova = 0x50000000ull, .size = 65536 };
        int mr = ioctl(container, VFIO_IOMMU_MAP_DMA, &gm);
        c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = 0x50000000ull + 512, .prp2 = 0x50001000ull, .cdw12 = 4096 / blk - 1 };
        int r1 = mr ? -9 : run(&io, &c, NULL, 2000);
        int same1 = r1 == 0 && !memcmp(g + 512, d[0][0], 4096);
        int r2 = -2, same2 = 0;
        if (sgls & 1) {
            c = (struct sqe){ .opc = 0x02, .flags = 1u << 6, .nsid = first_ns, .prp1 = 0x50000000ull + 8192 + 3,
                              .prp2 = 4096, .cdw12 = 4096 / blk - 1 };
            r2 = run(&io, &c, NULL, 2000);
            same2 = r2 == 0 && !memcmp(g + 8192 + 3, d[0][0], 4096);
        }
        struct vfio_iommu_type1_dma_unmap gu = { .argsz = sizeof gu, .iova = 0x50000000ull, .size = 65536 };
        int ur = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &gu);
        int mr2 = ioctl(container, VFIO_IOMMU_MAP_DMA, &gm);
        say("memfd_shared map=%d read_prp1_offset512=0x%x same=%d read_sgl_odd_address=0x%x same=%d unmap=%d unmapped=%llu remap=%d",
            mr, r1, same1, r2, same2, ur, (unsigned long long)gu.size, mr2);
    }

    // Queue depth 1, polled: 2000 reads of 4 KiB (LBA stepping through the first 8 MiB).
    {
        double t0 = now_ms();
        int errs = 0;
        for (int i = 0; i < 2000; i++) {
            c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[0][0],
                              .cdw10 = (uint32_t)((i * 7919u) % 2048u) * (4096 / blk), .cdw12 = 4096 / blk - 1 };
            if (run(&io, &c, NULL, 2000)) errs++;
        }
        double ms = now_ms() - t0;
        say("qd1_poll reads=2000 errors=%d ms=%.0f us_per_io=%.1f iops=%.0f", errs, ms, ms * 1000 / 2000, 2000 / (ms / 1000));
    }

    // Error status: a read past the namespace end.
    c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[0][0], .cdw10 = 0xfffffff0u, .cdw11 = 0xffff, .cdw12 = 0 };
    rc = run(&io, &c, NULL, 2000);
    say("read out_of_range status=0x%x sct=%u sc=0x%02x dnr=%u", rc, (rc >> 8) & 7, rc & 0xff, (rc >> 14) & 1);
    say("doorbells qid=1 mmio=%d skipped_by_shadow=%d", io.mmio_done, io.mmio_skipped);
    if (dbs) say("event_idx admin_sq=%u admin_cq=%u io1_sq=%u io1_cq=%u shadow admin_sq=%u admin_cq=%u", eis[0], eis[s / 4],
                 *io.ei_sq, *io.ei_cq, dbs[0], dbs[s / 4]);

    // MSI-X: eventfd on vector 1, completion queue 2 with interrupts on vector 1.
    struct vfio_irq_info mi = { .argsz = sizeof mi, .index = VFIO_PCI_MSIX_IRQ_INDEX };
    ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &mi);
    if (mi.count >= 2) {
        int efd[2] = { eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK) };
        char buf[sizeof(struct vfio_irq_set) + sizeof efd];
        struct vfio_irq_set *set = (void *)buf;
        *set = (struct vfio_irq_set){ .argsz = sizeof buf, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 2 };
        memcpy(set->data, efd, sizeof efd);
        rc = ioctl(dev, VFIO_DEVICE_SET_IRQS, set);
        say("msix set_irqs count=2 rc=%d errno=%d", rc, rc ? errno : 0);
        struct queue iq;
        queue_init(&iq, 2, 16);
        c = (struct sqe){ .opc = 0x05, .prp1 = iq.cq_iova, .cdw10 = (uint32_t)(iq.depth - 1) << 16 | 2, .cdw11 = 1u << 16 | 3 };
        int r1 = run(&aq, &c, NULL, 1000);
        c = (struct sqe){ .opc = 0x01, .prp1 = iq.sq_iova, .cdw10 = (uint32_t)(iq.depth - 1) << 16 | 2, .cdw11 = 2u << 16 | 1 };
        int r2 = run(&aq, &c, NULL, 1000);
        uint64_t junk;
        read(efd[1], &junk, 8);
        SHADOW(iq);
        iq.always_mmio = 1;
        c = (struct sqe){ .opc = 0x02, .nsid = first_ns, .prp1 = d_iova[0][0], .cdw12 = 4096 / blk - 1 };
        iq.sq[iq.tail] = c; iq.tail = 1;
        ring(&iq, sq_db(2), iq.shadow_sq, iq.ei_sq, 1);
        struct pollfd pfd = { .fd = efd[1], .events = POLLIN };
        double t0 = now_ms();
        int pr = poll(&pfd, 1, 2000);   // reused by the INTx rounds below
        uint64_t cnt = 0;
        if (pr > 0) read(efd[1], &cnt, 8);
        say("msix create_cq=0x%x create_sq=0x%x poll=%d count=%llu wait_ms=%.1f cqe_phase=%u", r1, r2, pr,
            (unsigned long long)cnt, now_ms() - t0, iq.cq[0].status & 1);
        iq.head = 1;
        ring(&iq, cq_db(2), iq.shadow_cq, iq.ei_cq, 1);

        // INTx instead: MSI-X off, an eventfd on the pin; it is automasked, so each
        // interrupt needs an UNMASK before the next one can arrive.
        struct vfio_irq_set off = { .argsz = sizeof off, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                    .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 0 };
        rc = ioctl(dev, VFIO_DEVICE_SET_IRQS, &off);
        int ifd = eventfd(0, EFD_NONBLOCK);
        char ibuf[sizeof(struct vfio_irq_set) + sizeof ifd];
        struct vfio_irq_set *is = (void *)ibuf;
        *is = (struct vfio_irq_set){ .argsz = sizeof ibuf, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                     .index = VFIO_PCI_INTX_IRQ_INDEX, .start = 0, .count = 1 };
        memcpy(is->data, &ifd, sizeof ifd);
        int rc2 = ioctl(dev, VFIO_DEVICE_SET_IRQS, is);
        say("intx msix_off rc=%d set_irqs rc=%d errno=%d", rc, rc2, rc2 ? errno : 0);
        for (int round = 0; round < 2 && rc2 == 0; round++) {
            iq.sq[iq.tail] = c; iq.sq[iq.tail].cid = (uint16_t)(100 + round);
            iq.tail = (iq.tail + 1) % iq.depth;
            ring(&iq, sq_db(2), iq.shadow_sq, iq.ei_sq, iq.tail);
            pfd = (struct pollfd){ .fd = ifd, .events = POLLIN };
            t0 = now_ms();
            pr = poll(&pfd, 1, 2000);
            cnt = 0;
            if (pr > 0) read(ifd, &cnt, 8);
            int got = (iq.cq[iq.head].status & 1) == iq.phase;
            say("intx round=%d poll=%d count=%llu wait_ms=%.1f cqe_new=%d", round, pr, (unsigned long long)cnt, now_ms() - t0, got);
            if (got) { iq.head = (iq.head + 1) % iq.depth; ring(&iq, cq_db(2), iq.shadow_cq, iq.ei_cq, iq.head); }
            struct vfio_irq_set um = { .argsz = sizeof um, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                       .index = VFIO_PCI_INTX_IRQ_INDEX, .start = 0, .count = 1 };
            ioctl(dev, VFIO_DEVICE_SET_IRQS, &um);
        }
    }

    // Shutdown: CC.SHN=01b, wait CSTS.SHST=10b.
    wr32(0x14, (rd32(0x14) & ~(3u << 14)) | 1u << 14);
    double ts = now_ms();
    while (((rd32(0x1c) >> 2) & 3) != 2 && now_ms() - ts < to_ms) usleep(1000);
    say("shutdown shst=%u ms=%.0f", (rd32(0x1c) >> 2) & 3, now_ms() - ts);
    wr32(0x14, rd32(0x14) & ~1u);
    wait_rdy(0, to_ms);
    say("DONE ok=%d", ok && same);
    return 0;
}
