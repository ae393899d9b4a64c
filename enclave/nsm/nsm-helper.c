/*
 * nsm-helper: one request to the AWS Nitro Secure Module, CBOR in, CBOR out.
 *
 * Node cannot issue an ioctl, so the enclave oracle (src/enclave/nsm-client.ts) spawns this helper once per
 * NSM request: it writes the request CBOR (as aws-nitro-enclaves-nsm-api encodes it, e.g. the text string
 * "GetRandom" or {"Attestation": {"user_data": h'…', "nonce": null, "public_key": h'…'}}) on stdin and
 * closes it; the helper passes those bytes unchanged to /dev/nsm and writes the response CBOR unchanged on
 * stdout. It never parses CBOR: the TypeScript side builds and checks both messages, so this file stays
 * small enough to audit.
 *
 * Device protocol (docs/nitro.md §3; Linux include/uapi/linux/nsm.h): one ioctl NSM_IOCTL_RAW =
 * _IOWR(0x0A, 0, struct nsm_raw) = 0xC0200A00 on 64-bit Linux, whose argument holds two iovecs (request,
 * response). The request is at most 0x1000 bytes, the response buffer 0x3000 bytes; the driver writes the
 * response length back into response.len.
 *
 * -DNSM_SIM (tests only) swaps the device layer and nothing else: instead of the ioctl the request goes to
 * the unix socket named by $NSM_SIM_SOCKET as `u32 BE length ‖ bytes` and the response comes back the same
 * way, from the SIMULATED NSM of test/enclave/nsm-simulator.ts. Everything else is the production path.
 *
 * Exit codes: 0 response written; 1 device failure; 2 bad request (empty or over 4096 bytes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#ifdef NSM_SIM
#include <sys/socket.h>
#include <sys/un.h>
#endif

#define NSM_REQUEST_MAX_SIZE 0x1000
#define NSM_RESPONSE_MAX_SIZE 0x3000

struct nsm_iovec {
  uint64_t addr;
  uint64_t len;
};

struct nsm_raw {
  struct nsm_iovec request;
  struct nsm_iovec response;
};

#define NSM_IOCTL_RAW _IOWR(0x0A, 0, struct nsm_raw)
/* Public code exists with a wrong number (docs/nitro.md §3): pin the value the kernel header gives. */
_Static_assert(NSM_IOCTL_RAW == 0xC0200A00UL, "NSM ioctl number must be 0xC0200A00");

static uint8_t request[NSM_REQUEST_MAX_SIZE + 1];
static uint8_t response[NSM_RESPONSE_MAX_SIZE];

static void die(int code, const char *what) {
  fprintf(stderr, "nsm-helper: %s%s%s\n", what, errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
  exit(code);
}

static size_t read_all(int fd, uint8_t *buf, size_t cap) {
  size_t got = 0;
  while (got < cap) {
    ssize_t n = read(fd, buf + got, cap - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die(1, "read");
    if (n == 0) break;
    got += (size_t)n;
  }
  return got;
}

static void write_all(int fd, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die(1, "write");
    buf += n;
    len -= (size_t)n;
  }
}

#ifndef NSM_SIM
/* The real device: one ioctl on /dev/nsm. */
static size_t nsm_exchange(const uint8_t *req, size_t req_len) {
  int fd = open("/dev/nsm", O_RDWR | O_CLOEXEC);
  if (fd < 0) die(1, "open /dev/nsm");
  struct nsm_raw raw = {
      .request = {.addr = (uint64_t)(uintptr_t)req, .len = req_len},
      .response = {.addr = (uint64_t)(uintptr_t)response, .len = sizeof response},
  };
  int rc;
  do {
    rc = ioctl(fd, NSM_IOCTL_RAW, &raw);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) die(1, errno == EMSGSIZE ? "ioctl NSM_IOCTL_RAW (request too large)" : "ioctl NSM_IOCTL_RAW");
  close(fd);
  if (raw.response.len > sizeof response) {
    errno = 0;
    die(1, "driver reported a response longer than the buffer");
  }
  return (size_t)raw.response.len;
}
#else
/* SIMULATED device (tests only): the same bytes over a unix socket, u32 BE length-prefixed both ways. */
static size_t nsm_exchange(const uint8_t *req, size_t req_len) {
  const char *path = getenv("NSM_SIM_SOCKET");
  errno = 0;
  if (path == NULL || path[0] == '\0') die(1, "NSM_SIM_SOCKET is not set (this is the simulated-NSM build)");
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) die(1, "NSM_SIM_SOCKET path too long");
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(1, "socket");
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die(1, "connect NSM_SIM_SOCKET");
  uint8_t head[4] = {(uint8_t)(req_len >> 24), (uint8_t)(req_len >> 16), (uint8_t)(req_len >> 8), (uint8_t)req_len};
  write_all(fd, head, 4);
  write_all(fd, req, req_len);
  if (read_all(fd, head, 4) != 4) {
    errno = 0;
    die(1, "simulated NSM closed the connection");
  }
  size_t len = ((size_t)head[0] << 24) | ((size_t)head[1] << 16) | ((size_t)head[2] << 8) | head[3];
  errno = 0;
  if (len > sizeof response) die(1, "simulated NSM response longer than the device buffer");
  if (read_all(fd, response, len) != len) die(1, "simulated NSM response truncated");
  close(fd);
  return len;
}
#endif

int main(void) {
  size_t len = read_all(STDIN_FILENO, request, sizeof request);
  errno = 0;
  if (len == 0) die(2, "empty request on stdin");
  if (len > NSM_REQUEST_MAX_SIZE) die(2, "request larger than 4096 bytes (the NSM limit)");
  size_t out = nsm_exchange(request, len);
  write_all(STDOUT_FILENO, response, out);
  return 0;
}
