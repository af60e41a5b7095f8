/* Opening input files: only regular files, never blocking on a FIFO or a device;
 * releasing the pages of a read-only file map that were read. */
#define _DEFAULT_SOURCE /* madvise (MADV_DONTNEED: glibc ignores posix_madvise's) */
#include "repeval/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m) {
  if (S_ISDIR(m))
    return "a folder";
  if (S_ISFIFO(m))
    return "a FIFO";
  if (S_ISSOCK(m))
    return "a socket";
  if (S_ISCHR(m) || S_ISBLK(m))
    return "a device";
  return "not a regular file";
}

re_status re_open_regular(const char *path, int *fd_out) {
  *fd_out = -1;
  /* O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return re_err(RE_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return re_err(RE_EIO, "%s: cannot read its status: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return re_err(RE_EIO, "%s is %s: repeval reads inputs from regular files only", path, kind_of(sb.st_mode));
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  *fd_out = fd;
  return RE_OK;
}

re_status re_fopen_regular(const char *path, FILE **out) {
  int fd;
  *out = NULL;
  RE_TRY(re_open_regular(path, &fd));
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    int e = errno;
    close(fd);
    return re_err(RE_EIO, "%s: cannot open: %s", path, strerror(e));
  }
  *out = f;
  return RE_OK;
}

re_status re_check_regular(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return re_err(RE_EIO, "%s: cannot open: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return re_err(RE_EIO, "%s is %s: repeval reads inputs from regular files only", path, kind_of(sb.st_mode));
  return RE_OK;
}

void re_release_map_pages(const void *p, int64_t len) {
  long pg = sysconf(_SC_PAGESIZE);
  if (pg <= 0 || len <= 0)
    return;
  uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg; /* whole pages inside */
  uintptr_t b = ((uintptr_t)p + (uintptr_t)len) / (uintptr_t)pg * (uintptr_t)pg;
  if (b > a)
    (void)madvise((void *)a, b - a, MADV_DONTNEED); /* a hint: failure changes nothing */
}
