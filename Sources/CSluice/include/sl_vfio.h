// VFIO (legacy container/group API, <linux/vfio.h>): one wrapper per ioctl the NVMe
// driver needs. Included from csluice.h.
//
// Why C: the request numbers are _IO() expressions Swift does not import, and several
// arguments end in flexible arrays (vfio_irq_set's eventfds, the IOMMU info capability
// chain) that Swift should never lay out itself. Every wrapper takes and returns plain
// scalars or caller-owned arrays; results are >= 0 on success, -errno on failure.
//
// Everything is control path except sl_vfio_unmask_intx (after every INTx wake-up in
// event mode), which allocates nothing.
#ifndef SL_VFIO_H
#define SL_VFIO_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <linux/vfio.h>

// ---------------------------------------------------------------------------
// Constants Swift reads by name (the kernel spells most of them as (1 << n) macros).

enum {
    SL_VFIO_API_VERSION = VFIO_API_VERSION,
    SL_VFIO_TYPE1v2_IOMMU = VFIO_TYPE1v2_IOMMU,
    SL_VFIO_UNMAP_ALL_EXTENSION = VFIO_UNMAP_ALL,

    SL_VFIO_GROUP_VIABLE = VFIO_GROUP_FLAGS_VIABLE,
    SL_VFIO_GROUP_CONTAINER_SET = VFIO_GROUP_FLAGS_CONTAINER_SET,

    SL_VFIO_DEVICE_RESET = VFIO_DEVICE_FLAGS_RESET,
    SL_VFIO_DEVICE_PCI = VFIO_DEVICE_FLAGS_PCI,

    SL_VFIO_REGION_READ = VFIO_REGION_INFO_FLAG_READ,
    SL_VFIO_REGION_WRITE = VFIO_REGION_INFO_FLAG_WRITE,
    SL_VFIO_REGION_MMAP = VFIO_REGION_INFO_FLAG_MMAP,
    SL_VFIO_PCI_BAR0_REGION = VFIO_PCI_BAR0_REGION_INDEX,
    SL_VFIO_PCI_BAR5_REGION = VFIO_PCI_BAR5_REGION_INDEX,
    SL_VFIO_PCI_CONFIG_REGION = VFIO_PCI_CONFIG_REGION_INDEX,

    SL_VFIO_IRQ_EVENTFD = VFIO_IRQ_INFO_EVENTFD,
    SL_VFIO_IRQ_MASKABLE = VFIO_IRQ_INFO_MASKABLE,
    SL_VFIO_IRQ_AUTOMASKED = VFIO_IRQ_INFO_AUTOMASKED,
    SL_VFIO_IRQ_NORESIZE = VFIO_IRQ_INFO_NORESIZE,
    SL_VFIO_PCI_INTX_IRQ = VFIO_PCI_INTX_IRQ_INDEX,
    SL_VFIO_PCI_MSI_IRQ = VFIO_PCI_MSI_IRQ_INDEX,
    SL_VFIO_PCI_MSIX_IRQ = VFIO_PCI_MSIX_IRQ_INDEX,

    SL_VFIO_IOMMU_INFO_PGSIZES = VFIO_IOMMU_INFO_PGSIZES,
    SL_VFIO_IOMMU_INFO_CAPS = VFIO_IOMMU_INFO_CAPS,
};

static inline int sl_vfio_result(int r) { return r < 0 ? -errno : r; }

// ---------------------------------------------------------------------------
// Container (/dev/vfio/vfio).

/// VFIO_GET_API_VERSION: the version (0 today) or -errno.
static inline int sl_vfio_api_version(int container) {
    return sl_vfio_result(ioctl(container, VFIO_GET_API_VERSION));
}

/// VFIO_CHECK_EXTENSION: 1 when `extension` (an IOMMU type or VFIO_UNMAP_ALL) is offered,
/// 0 when not, -errno on failure.
static inline int sl_vfio_check_extension(int container, uint32_t extension) {
    return sl_vfio_result(ioctl(container, VFIO_CHECK_EXTENSION, (unsigned long)extension));
}

/// VFIO_SET_IOMMU: only after a group is in the container.
static inline int sl_vfio_set_iommu(int container, uint32_t type) {
    return sl_vfio_result(ioctl(container, VFIO_SET_IOMMU, (unsigned long)type));
}

/// VFIO_IOMMU_GET_INFO with its capability chain walked: page size bitmap, the usable
/// IOVA ranges (inclusive ends, at most `max_ranges` copied, `*nr_ranges` = how many the
/// kernel reported, so a caller with too small arrays can ask again) and the DMA mappings
/// still available (`*dma_avail` = -1 when the kernel does not report it).
/// No IOVA range capability (kernels before 5.4) leaves `*nr_ranges` = 0.
static inline int sl_vfio_iommu_info(int container, uint32_t *flags, uint64_t *pgsizes,
                                     uint64_t *range_start, uint64_t *range_end,
                                     uint32_t max_ranges, uint32_t *nr_ranges, int64_t *dma_avail) {
    *flags = 0; *pgsizes = 0; *nr_ranges = 0; *dma_avail = -1;
    struct vfio_iommu_type1_info head;
    memset(&head, 0, sizeof head);
    head.argsz = sizeof head;
    if (ioctl(container, VFIO_IOMMU_GET_INFO, &head) < 0) return -errno;
    uint32_t size = head.argsz > sizeof head ? head.argsz : (uint32_t)sizeof head;
    // The kernel answers the first call with the size the capabilities need; ask again.
    struct vfio_iommu_type1_info *info = (struct vfio_iommu_type1_info *)calloc(1, size);
    if (!info) return -ENOMEM;
    info->argsz = size;
    if (ioctl(container, VFIO_IOMMU_GET_INFO, info) < 0) { int e = errno; free(info); return -e; }
    *flags = info->flags;
    if (info->flags & VFIO_IOMMU_INFO_PGSIZES) *pgsizes = info->iova_pgsizes;
    if ((info->flags & VFIO_IOMMU_INFO_CAPS) && info->argsz <= size) {
        const uint8_t *base = (const uint8_t *)info;
        uint32_t off = info->cap_offset;
        // Offsets only grow along the chain; anything else ends the walk.
        while (off >= sizeof *info && off + sizeof(struct vfio_info_cap_header) <= size) {
            const struct vfio_info_cap_header *cap = (const struct vfio_info_cap_header *)(base + off);
            if (cap->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE &&
                off + sizeof(struct vfio_iommu_type1_info_cap_iova_range) <= size) {
                const struct vfio_iommu_type1_info_cap_iova_range *r =
                    (const struct vfio_iommu_type1_info_cap_iova_range *)cap;
                uint32_t n = r->nr_iovas;
                uint32_t fit = (uint32_t)((size - off - sizeof *r) / sizeof(struct vfio_iova_range));
                if (n > fit) n = fit;
                *nr_ranges = n;
                for (uint32_t i = 0; i < n && i < max_ranges; i++) {
                    range_start[i] = r->iova_ranges[i].start;
                    range_end[i] = r->iova_ranges[i].end;
                }
            } else if (cap->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL &&
                       off + sizeof(struct vfio_iommu_type1_info_dma_avail) <= size) {
                *dma_avail = ((const struct vfio_iommu_type1_info_dma_avail *)cap)->avail;
            }
            if (cap->next <= off) break;
            off = cap->next;
        }
    }
    free(info);
    return 0;
}

/// VFIO_IOMMU_MAP_DMA: the device may read [iova, iova+size) and, when `writable`,
/// write it; pins the pages behind `vaddr`.
static inline int sl_vfio_map_dma(int container, uint64_t vaddr, uint64_t iova, uint64_t size, int writable) {
    struct vfio_iommu_type1_dma_map m;
    memset(&m, 0, sizeof m);
    m.argsz = sizeof m;
    m.flags = VFIO_DMA_MAP_FLAG_READ | (writable ? VFIO_DMA_MAP_FLAG_WRITE : 0);
    m.vaddr = vaddr;
    m.iova = iova;
    m.size = size;
    return sl_vfio_result(ioctl(container, VFIO_IOMMU_MAP_DMA, &m));
}

/// VFIO_IOMMU_UNMAP_DMA of one range; `*unmapped` = the bytes the kernel unmapped.
static inline int sl_vfio_unmap_dma(int container, uint64_t iova, uint64_t size, uint64_t *unmapped) {
    struct vfio_iommu_type1_dma_unmap u;
    memset(&u, 0, sizeof u);
    u.argsz = sizeof u;
    u.iova = iova;
    u.size = size;
    *unmapped = 0;
    if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) < 0) return -errno;
    *unmapped = u.size;
    return 0;
}

/// VFIO_IOMMU_UNMAP_DMA with FLAG_ALL (only when VFIO_UNMAP_ALL is offered).
static inline int sl_vfio_unmap_all(int container, uint64_t *unmapped) {
    struct vfio_iommu_type1_dma_unmap u;
    memset(&u, 0, sizeof u);
    u.argsz = sizeof u;
    u.flags = VFIO_DMA_UNMAP_FLAG_ALL;
    *unmapped = 0;
    if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u) < 0) return -errno;
    *unmapped = u.size;
    return 0;
}

// ---------------------------------------------------------------------------
// Group (/dev/vfio/N).

/// VFIO_GROUP_GET_STATUS: SL_VFIO_GROUP_* flags.
static inline int sl_vfio_group_status(int group, uint32_t *flags) {
    struct vfio_group_status s;
    memset(&s, 0, sizeof s);
    s.argsz = sizeof s;
    *flags = 0;
    if (ioctl(group, VFIO_GROUP_GET_STATUS, &s) < 0) return -errno;
    *flags = s.flags;
    return 0;
}

static inline int sl_vfio_group_set_container(int group, int container) {
    return sl_vfio_result(ioctl(group, VFIO_GROUP_SET_CONTAINER, &container));
}

static inline int sl_vfio_group_unset_container(int group) {
    return sl_vfio_result(ioctl(group, VFIO_GROUP_UNSET_CONTAINER));
}

/// VFIO_GROUP_GET_DEVICE_FD for a device name ("0000:00:04.0"): the fd or -errno.
static inline int sl_vfio_group_device_fd(int group, const char *name) {
    return sl_vfio_result(ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name));
}

// ---------------------------------------------------------------------------
// Device.

static inline int sl_vfio_device_info(int device, uint32_t *flags, uint32_t *num_regions, uint32_t *num_irqs) {
    struct vfio_device_info d;
    memset(&d, 0, sizeof d);
    d.argsz = sizeof d;
    *flags = 0; *num_regions = 0; *num_irqs = 0;
    if (ioctl(device, VFIO_DEVICE_GET_INFO, &d) < 0) return -errno;
    *flags = d.flags; *num_regions = d.num_regions; *num_irqs = d.num_irqs;
    return 0;
}

/// VFIO_DEVICE_GET_REGION_INFO: flags (SL_VFIO_REGION_*), size, and the offset of the
/// region in the device fd (for mmap, pread, pwrite).
static inline int sl_vfio_region_info(int device, uint32_t index, uint32_t *flags, uint64_t *size, uint64_t *offset) {
    struct vfio_region_info r;
    memset(&r, 0, sizeof r);
    r.argsz = sizeof r;
    r.index = index;
    *flags = 0; *size = 0; *offset = 0;
    if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &r) < 0) return -errno;
    *flags = r.flags; *size = r.size; *offset = r.offset;
    return 0;
}

/// VFIO_DEVICE_GET_IRQ_INFO: flags (SL_VFIO_IRQ_*) and the number of vectors of `index`.
static inline int sl_vfio_irq_info(int device, uint32_t index, uint32_t *flags, uint32_t *count) {
    struct vfio_irq_info i;
    memset(&i, 0, sizeof i);
    i.argsz = sizeof i;
    i.index = index;
    *flags = 0; *count = 0;
    if (ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &i) < 0) return -errno;
    *flags = i.flags; *count = i.count;
    return 0;
}

/// VFIO_DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER: vectors start..start+count-1 of
/// `index` signal fds[0..count-1] (an fd of -1 detaches that one vector).
static inline int sl_vfio_set_irqs_eventfd(int device, uint32_t index, uint32_t start, const int32_t *fds, uint32_t count) {
    if (count == 0 || count > 65536) return -EINVAL;
    size_t size = sizeof(struct vfio_irq_set) + (size_t)count * sizeof(int32_t);
    struct vfio_irq_set *s = (struct vfio_irq_set *)calloc(1, size);
    if (!s) return -ENOMEM;
    s->argsz = (uint32_t)size;
    s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    s->index = index;
    s->start = start;
    s->count = count;
    memcpy(s->data, fds, (size_t)count * sizeof(int32_t));
    int r = ioctl(device, VFIO_DEVICE_SET_IRQS, s);
    int e = errno;
    free(s);
    return r < 0 ? -e : 0;
}

/// VFIO_DEVICE_SET_IRQS, DATA_NONE | ACTION_TRIGGER with count 0: every vector of
/// `index` off (and MSI/MSI-X disabled in the device).
static inline int sl_vfio_disable_irqs(int device, uint32_t index) {
    struct vfio_irq_set s;
    memset(&s, 0, sizeof s);
    s.argsz = sizeof s;
    s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    s.index = index;
    return sl_vfio_result(ioctl(device, VFIO_DEVICE_SET_IRQS, &s));
}

/// INTx is automasked when it fires; unmask it after handling (DATA_NONE | ACTION_UNMASK).
/// Event-mode wake-up path: no allocation.
static inline int sl_vfio_unmask_intx(int device) {
    struct vfio_irq_set s;
    memset(&s, 0, sizeof s);
    s.argsz = sizeof s;
    s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK;
    s.index = VFIO_PCI_INTX_IRQ_INDEX;
    s.start = 0;
    s.count = 1;
    return sl_vfio_result(ioctl(device, VFIO_DEVICE_SET_IRQS, &s));
}

/// VFIO_DEVICE_RESET (function-level reset; only when the device info has SL_VFIO_DEVICE_RESET).
static inline int sl_vfio_device_reset(int device) {
    return sl_vfio_result(ioctl(device, VFIO_DEVICE_RESET));
}

#endif
