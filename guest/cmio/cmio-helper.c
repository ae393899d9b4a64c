/*
 * cmio-helper: the guest's only native code. It owns /dev/cmio for the fetch-oracle guest shim
 * (guest/device-block-source.ts) and turns length-prefixed frames on stdin/stdout into GIO manual yields
 * (design.md §7; protocol facts in shared/docs/cartesi-gio.md, cited below as "gio §x.y").
 *
 *   stdin  (request, repeated), one of two kinds, told apart by bit 31 of the first u32:
 *            u32 BE id_length ‖ id bytes                          domain 0x25, id = binary CID
 *            u32 BE (0x80000000 | id_length) ‖ u32 BE domain ‖ id  any GIO domain (0x26 record, 0x27 control)
 *          (id_length ≤ 2 MiB, so bit 31 is never set in the first kind: old frames are unchanged)
 *   stdout (reply, one per request): u32 BE status ‖ u32 BE length ‖ bytes
 *            status 0  = the rx-buffer bytes the host answered (for 0x25 the block, empty only for the
 *                        empty raw block, see is_empty_raw_block_cid; other domains may answer nothing)
 *            status ≠0 = an error this helper detected (HELPER_STATUS_* below); bytes = UTF-8 message
 *   EOF on stdin at a frame boundary → exit 0. EOF inside a frame or a broken stdout → exit 1.
 *
 * The helper verifies nothing about the bytes (the shim hashes every block against its CID: the host is
 * untrusted) and ignores the response code except for the two values that our host never uses for a
 * block (0 = no answer, 0xFFFF = in-band error; docs/cartesi.md "Response codes").
 *
 * Two transports, the rest of the program is shared:
 *   default      /dev/cmio: SETUP ioctl, mmap tx/rx, YIELD ioctl (the real device, riscv64 guest only);
 *   -DCMIO_SIM   a SIMULATED device for host tests: the yield word and the tx bytes go over a unix socket
 *                (path in env CMIO_SIM_SOCKET) to src/machine/gio-simulator.ts, which plays the part of the
 *                emulator + OpenSBI and answers with the fromhost word and the rx bytes:
 *                  helper → simulator: u64 BE tohost word ‖ tx[0 .. word & 0xFFFFFFFF]
 *                  simulator → helper: u64 BE fromhost word ‖ rx[0 .. word & 0xFFFFFFFF]
 *                Only open/setup/mmap/ioctl are replaced; packing, framing, checks and the loop are this code.
 *
 * Argv: none for normal use; `--probe` opens the device, prints the buffer layout and exits (0 = usable);
 * `--help`. Build: guest/cmio/build.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CMIO_SIM
#include <sys/socket.h>
#include <sys/un.h>
#else
#include <sys/ioctl.h>
#include <sys/mman.h>
#endif

/* ---- Protocol constants (all from shared/docs/cartesi-gio.md) ------------------------------------------ */

/* gio §1.1: rx and tx buffers are 2 MiB each (log2 = 21) in every emulator version 0.17 → 0.21. */
#define CMIO_BUFFER_BYTES ((uint64_t)0x200000)

/* gio §1.2 / §2.2: the 64-bit HTIF word, dev 63..56, cmd 55..48, reason 47..32, data 31..0.
 * word = dev<<56 | cmd<<48 | reason<<32 | data (libcmt io.c packing). */
#define HTIF_DEV_SHIFT 56
#define HTIF_CMD_SHIFT 48
#define HTIF_REASON_SHIFT 32
#define HTIF_REASON_MASK ((uint64_t)0xFFFF)
#define HTIF_DATA_MASK ((uint64_t)0xFFFFFFFF)

/* gio §1.2: device 2 = yield; yield command 1 = manual. */
#define HTIF_DEV_YIELD ((uint64_t)2)
#define HTIF_YIELD_CMD_MANUAL ((uint64_t)1)

/* gio §1.3 / design §7: a manual yield whose reason is not 1, 2 or 4 is a GIO request, reason = domain.
 * Domain 0x25 = IPFS block by binary CID (Lambada convention, gio §3.1). */
#define GIO_DOMAIN_IPFS_BLOCK ((uint64_t)0x25)

/* docs/cartesi.md "Response codes": our responder answers a block with code 1 (gio §1.5: 0.21 forbids 0
 * for GIO) and a deterministic refusal with 0xFFFF + UTF-8 message (gio §6, project convention). Code 0
 * with length 0 is what the guest sees when nobody answered: a yield ignored because manual yields are
 * disabled (gio §1.2, fromhost zeroed by OpenSBI), or a host that cleared iflags.Y without a response. */
#define GIO_CODE_NONE 0u
#define GIO_CODE_ERROR 0xFFFFu

#ifndef CMIO_SIM
/* gio §2.1: uapi include/uapi/linux/cartesi/cmio.h. `data` is the *physical* address of the buffer. */
struct cmio_buffer {
    uint64_t data;
    uint64_t length;
};
/* gio §2.1: 32 bytes: tx.data @0, tx.length @8, rx.data @16, rx.length @24. */
struct cmio_setup {
    struct cmio_buffer tx, rx;
};
_Static_assert(sizeof(struct cmio_setup) == 32, "gio §2.1: struct cmio_setup is 32 bytes");

/* gio §2.1: IOCTL_CMIO_SETUP = _IOR(0xd3, 0, struct cmio_setup) = 0x8020d300 (out: cmio_setup). */
#define IOCTL_CMIO_SETUP 0x8020d300UL
/* gio §2.1: IOCTL_CMIO_YIELD = _IOWR(0xd3, 1, __u64) = 0xc008d301 (in: tohost word; out: fromhost word). */
#define IOCTL_CMIO_YIELD 0xc008d301UL
#ifdef _IOR
_Static_assert(_IOR(0xd3, 0, struct cmio_setup) == IOCTL_CMIO_SETUP, "gio §2.1 IOCTL_CMIO_SETUP");
_Static_assert(_IOWR(0xd3, 1, uint64_t) == IOCTL_CMIO_YIELD, "gio §2.1 IOCTL_CMIO_YIELD");
#endif
#endif

/* ---- Helper statuses (the u32 at the head of every stdout reply) ---------------------------------------- */

enum {
    HELPER_STATUS_OK = 0,
    HELPER_STATUS_BAD_REQUEST = 1,     /* request id longer than the tx buffer, or a domain that is not GIO */
    HELPER_STATUS_DEVICE = 2,          /* device unusable: open/SETUP/mmap failed, or the simulator is unreachable */
    HELPER_STATUS_YIELD_FAILED = 3,    /* the YIELD ioctl (or the simulated yield) failed */
    HELPER_STATUS_REPLY_TOO_LARGE = 4, /* fromhost length exceeds the rx buffer */
    HELPER_STATUS_EMPTY_REPLY = 5,     /* empty reply for a CID whose block cannot be empty */
    HELPER_STATUS_HOST_ERROR = 6,      /* host answered code 0xFFFF; bytes = its message */
    HELPER_STATUS_NO_RESPONSE = 7,     /* response code 0: the yield was not answered */
};

/* ---- The device layer: the only part that differs between the two builds --------------------------------- */

struct cmio_device {
    uint8_t *tx;       /* tx buffer (guest → host), id written at offset 0 */
    uint64_t tx_bytes;
    const uint8_t *rx; /* rx buffer (host → guest), reply at offset 0 */
    uint64_t rx_bytes;
    int fd;
};

static char device_error[256];

static void set_device_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(device_error, sizeof device_error, fmt, ap);
    va_end(ap);
}

#ifndef CMIO_SIM

/* gio §2.1: single opener; SETUP tells where the buffers are; mmap is accepted only at the buffer's physical
 * address as the hint, with size == buffer length, offset 0 (identity-mapped remap_pfn_range). tx is mapped
 * PROT_READ|PROT_WRITE and rx PROT_READ, both MAP_SHARED, as libcmt does. */
static int device_open(struct cmio_device *d) {
    d->fd = open("/dev/cmio", O_RDWR | O_CLOEXEC);
    if (d->fd < 0) {
        set_device_error("open /dev/cmio: %s%s", strerror(errno),
                         errno == EBUSY ? " (another process holds the device: it admits a single opener)" : "");
        return -1;
    }
    struct cmio_setup setup;
    memset(&setup, 0, sizeof setup);
    if (ioctl(d->fd, IOCTL_CMIO_SETUP, (unsigned long)&setup) != 0) {
        set_device_error("ioctl IOCTL_CMIO_SETUP (0x%lx): %s", IOCTL_CMIO_SETUP, strerror(errno));
        return -1;
    }
    void *tx = mmap((void *)(uintptr_t)setup.tx.data, setup.tx.length, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (tx == MAP_FAILED) {
        set_device_error("mmap tx buffer 0x%llx+0x%llx: %s", (unsigned long long)setup.tx.data,
                         (unsigned long long)setup.tx.length, strerror(errno));
        return -1;
    }
    void *rx = mmap((void *)(uintptr_t)setup.rx.data, setup.rx.length, PROT_READ, MAP_SHARED, d->fd, 0);
    if (rx == MAP_FAILED) {
        set_device_error("mmap rx buffer 0x%llx+0x%llx: %s", (unsigned long long)setup.rx.data,
                         (unsigned long long)setup.rx.length, strerror(errno));
        return -1;
    }
    d->tx = tx;
    d->tx_bytes = setup.tx.length;
    d->rx = rx;
    d->rx_bytes = setup.rx.length;
    return 0;
}

/* gio §2.1: the YIELD ioctl takes the packed tohost word and returns the fromhost word in place; the driver
 * passes it to SBI extension 9 and OpenSBI forces dev = 2 (gio §2.1, cartesi/opensbi htif.c). */
static int device_yield(struct cmio_device *d, uint64_t *word) {
    if (ioctl(d->fd, IOCTL_CMIO_YIELD, (unsigned long)word) != 0) {
        set_device_error("ioctl IOCTL_CMIO_YIELD (0x%lx): %s", IOCTL_CMIO_YIELD, strerror(errno));
        return -1;
    }
    return 0;
}

static const char *const TRANSPORT = "device /dev/cmio";

#else /* CMIO_SIM: SIMULATED device over a unix socket, for host tests only. */

static uint8_t sim_tx[CMIO_BUFFER_BYTES];
static uint8_t sim_rx[CMIO_BUFFER_BYTES];

static int write_all(int fd, const void *buf, size_t n);
static int read_all(int fd, void *buf, size_t n);

static int device_open(struct cmio_device *d) {
    const char *path = getenv("CMIO_SIM_SOCKET");
    d->fd = -1;
    if (path == NULL || *path == '\0') {
        set_device_error("CMIO_SIM_SOCKET is not set (this is the simulated-device build of the helper)");
        return -1;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        set_device_error("CMIO_SIM_SOCKET path is too long (%zu bytes, limit %zu)", strlen(path), sizeof addr.sun_path - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        set_device_error("connect to simulator %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    d->fd = fd;
    d->tx = sim_tx;
    d->tx_bytes = sizeof sim_tx;
    d->rx = sim_rx;
    d->rx_bytes = sizeof sim_rx;
    return 0;
}

static void put_u64be(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_u64be(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

/* Same contract as the YIELD ioctl: word in = tohost, word out = fromhost, tx/rx buffers shared with the
 * "machine". A reply longer than the rx buffer is drained from the socket (keeping the stream in frame) and
 * left for the common code to reject, as it would be on the device. */
static int device_yield(struct cmio_device *d, uint64_t *word) {
    if (d->fd < 0) {
        set_device_error("simulator connection is closed");
        return -1;
    }
    uint8_t head[8];
    uint64_t out_len = *word & HTIF_DATA_MASK;
    if (out_len > d->tx_bytes) out_len = 0;
    put_u64be(head, *word);
    if (write_all(d->fd, head, sizeof head) != 0 || write_all(d->fd, d->tx, (size_t)out_len) != 0) goto broken;
    if (read_all(d->fd, head, sizeof head) != 0) goto broken;
    uint64_t from = get_u64be(head);
    uint64_t in_len = from & HTIF_DATA_MASK;
    uint64_t keep = in_len <= d->rx_bytes ? in_len : d->rx_bytes;
    if (read_all(d->fd, sim_rx, (size_t)keep) != 0) goto broken;
    for (uint64_t left = in_len - keep; left > 0;) {
        uint8_t scratch[65536];
        size_t n = left < sizeof scratch ? (size_t)left : sizeof scratch;
        if (read_all(d->fd, scratch, n) != 0) goto broken;
        left -= n;
    }
    *word = from;
    return 0;
broken:
    set_device_error("simulated yield over CMIO_SIM_SOCKET failed: %s", errno != 0 ? strerror(errno) : "simulator closed the connection");
    close(d->fd);
    d->fd = -1;
    return -1;
}

static const char *const TRANSPORT = "SIMULATED device (CMIO_SIM_SOCKET)";

#endif

/* ---- Frames on stdin/stdout -------------------------------------------------------------------------------- */

/* 0 = all n bytes; 1 = EOF before the first byte; -1 = EOF inside, or an error (errno set, 0 for EOF). */
static int read_some_all(int fd, void *buf, size_t n) {
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            errno = 0;
            return got == 0 ? 1 : -1;
        }
        got += (size_t)r;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n) {
    return read_some_all(fd, buf, n) == 0 ? 0 : -1;
}

static int write_all(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_u32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void reply(uint32_t status, const void *bytes, uint32_t length) {
    uint8_t head[8];
    put_u32be(head, status);
    put_u32be(head + 4, length);
    if (write_all(STDOUT_FILENO, head, sizeof head) != 0 || write_all(STDOUT_FILENO, bytes, length) != 0) {
        fprintf(stderr, "cmio-helper: cannot write to stdout: %s\n", strerror(errno));
        exit(1);
    }
}

static void reply_error(uint32_t status, const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof message) n = sizeof message - 1;
    reply(status, message, (uint32_t)n);
}

/* The binary CIDv1 of the empty raw block (raw 0x55, sha2-256 of no bytes: e3b0c442…b855), i.e.
 * bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku: the one block of the project's CID profile
 * (design §2) that is legitimately empty, so the one empty reply that is not an error. */
static const uint8_t EMPTY_RAW_BLOCK_CID[36] = {
    0x01, 0x55, 0x12, 0x20, 0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
    0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

static int is_empty_raw_block_cid(const uint8_t *id, uint32_t length) {
    return length == sizeof EMPTY_RAW_BLOCK_CID && memcmp(id, EMPTY_RAW_BLOCK_CID, length) == 0;
}

/* Bit 31 of a request's first u32 says a u32 domain follows (docs/cartesi.md "Frame formats"). */
#define FRAME_DOMAIN_FLAG 0x80000000u

/* gio §1.3: a manual yield with reason 1, 2 or 4 is a rollups yield, not a GIO request; reasons are 16 bits. */
static int is_gio_domain(uint32_t domain) {
    return domain <= HTIF_REASON_MASK && domain != 1 && domain != 2 && domain != 4;
}

/* Request ids are read here first, then copied to tx offset 0 (gio §2.3: cmt_gio_request does the same). */
static uint8_t id_buffer[CMIO_BUFFER_BYTES];

static int serve(void) {
    struct cmio_device dev;
    memset(&dev, 0, sizeof dev);
    int usable = device_open(&dev) == 0;
    if (!usable) fprintf(stderr, "cmio-helper: %s; every request will be answered with status %d\n", device_error, HELPER_STATUS_DEVICE);

    for (;;) {
        uint8_t head[4];
        int r = read_some_all(STDIN_FILENO, head, sizeof head);
        if (r == 1) return 0; /* EOF between frames: the shim is done */
        if (r != 0) {
            fprintf(stderr, "cmio-helper: stdin ended inside a request frame header\n");
            return 1;
        }
        uint32_t id_len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
        uint32_t domain = (uint32_t)GIO_DOMAIN_IPFS_BLOCK;
        if (id_len & FRAME_DOMAIN_FLAG) {
            id_len &= ~FRAME_DOMAIN_FLAG;
            if (read_all(STDIN_FILENO, head, sizeof head) != 0) {
                fprintf(stderr, "cmio-helper: stdin ended inside a request frame header\n");
                return 1;
            }
            domain = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
        }
        uint64_t id_limit = usable ? dev.tx_bytes : CMIO_BUFFER_BYTES;
        if (id_limit > sizeof id_buffer) id_limit = sizeof id_buffer;
        if (id_len > id_limit) {
            /* Drain the oversized id so the next frame starts where the shim thinks it does. */
            for (uint32_t left = id_len; left > 0;) {
                uint32_t n = left < sizeof id_buffer ? left : (uint32_t)sizeof id_buffer;
                if (read_all(STDIN_FILENO, id_buffer, n) != 0) {
                    fprintf(stderr, "cmio-helper: stdin ended inside a request id\n");
                    return 1;
                }
                left -= n;
            }
            reply_error(HELPER_STATUS_BAD_REQUEST, "request id is %u bytes; the tx buffer holds %llu", id_len, (unsigned long long)id_limit);
            continue;
        }
        if (read_all(STDIN_FILENO, id_buffer, id_len) != 0) {
            fprintf(stderr, "cmio-helper: stdin ended inside a request id\n");
            return 1;
        }
        if (!is_gio_domain(domain)) {
            reply_error(HELPER_STATUS_BAD_REQUEST, "domain 0x%x is not a GIO domain (16 bits, not 1, 2 or 4: those are rollups yields)", domain);
            continue;
        }
        if (!usable) {
            reply_error(HELPER_STATUS_DEVICE, "%s (%s)", device_error, TRANSPORT);
            continue;
        }

        /* gio §2.3 cmt_gio_request: id at tx offset 0, then yield {dev=2, cmd=manual, reason=domain, data=id
         * length}; gio §2.2 packing, e.g. domain 0x25 with a 36-byte id → 0x0201002500000024. */
        memcpy(dev.tx, id_buffer, id_len);
        uint64_t word = HTIF_DEV_YIELD << HTIF_DEV_SHIFT | HTIF_YIELD_CMD_MANUAL << HTIF_CMD_SHIFT |
                        ((uint64_t)domain & HTIF_REASON_MASK) << HTIF_REASON_SHIFT | ((uint64_t)id_len & HTIF_DATA_MASK);
        if (device_yield(&dev, &word) != 0) {
            reply_error(HELPER_STATUS_YIELD_FAILED, "%s", device_error);
            continue;
        }
        /* gio §1.5 step 3 / §2.2: fromhost = code<<32 | length (dev = cmd = 0), bytes at rx offset 0. */
        uint32_t code = (uint32_t)(word >> HTIF_REASON_SHIFT & HTIF_REASON_MASK);
        uint64_t length = word & HTIF_DATA_MASK;
        if (length > dev.rx_bytes) {
            reply_error(HELPER_STATUS_REPLY_TOO_LARGE, "host reply claims %llu bytes; the rx buffer holds %llu (response code %u)",
                        (unsigned long long)length, (unsigned long long)dev.rx_bytes, code);
            continue;
        }
        if (code == GIO_CODE_ERROR) {
            /* In-band refusal: forward the host's message (truncated to what fits a reply line). */
            char message[1024];
            size_t n = length < sizeof message - 64 ? (size_t)length : sizeof message - 64;
            int head_len = snprintf(message, sizeof message, "host refused the request (response code 0x%x): ", code);
            memcpy(message + head_len, dev.rx, n);
            reply(HELPER_STATUS_HOST_ERROR, message, (uint32_t)(head_len + n));
            continue;
        }
        if (code == GIO_CODE_NONE && length == 0) {
            reply_error(HELPER_STATUS_NO_RESPONSE,
                        "the yield was not answered (response code 0, no bytes): manual yields disabled in the machine, or a host that cleared iflags.Y without a response");
            continue;
        }
        if (length == 0 && domain == GIO_DOMAIN_IPFS_BLOCK && !is_empty_raw_block_cid(id_buffer, id_len)) {
            reply_error(HELPER_STATUS_EMPTY_REPLY, "host answered an empty reply (response code %u) for a block that cannot be empty", code);
            continue;
        }
        reply(HELPER_STATUS_OK, dev.rx, (uint32_t)length);
    }
}

static int probe(void) {
    struct cmio_device dev;
    memset(&dev, 0, sizeof dev);
    if (device_open(&dev) != 0) {
        fprintf(stderr, "cmio-helper: %s\n", device_error);
        return 1;
    }
    printf("cmio-helper: %s usable: tx %llu bytes, rx %llu bytes\n", TRANSPORT, (unsigned long long)dev.tx_bytes,
           (unsigned long long)dev.rx_bytes);
    return 0;
}

int main(int argc, char **argv) {
    /* A vanished reader (the shim, or the simulator's socket) must become an error we report, not a silent
     * death by SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "--probe") == 0) return probe();
    if (argc >= 2) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        fprintf(help ? stdout : stderr,
                "usage: cmio-helper            serve frames on stdin/stdout (%s)\n"
                "       cmio-helper --probe    open the device, print the buffer sizes, exit 0 if usable\n"
                "request: u32 BE id length, id (binary CID) -> GIO manual yield, domain 0x25\n"
                "     or: u32 BE (0x80000000 | id length), u32 BE domain, id -> GIO manual yield, that domain\n"
                "reply:   u32 BE status (0 = ok), u32 BE length, bytes (host reply, or UTF-8 error message)\n",
                TRANSPORT);
        return help ? 0 : 2;
    }
    return serve();
}
