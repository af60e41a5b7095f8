/* Opening input files: only regular files, never blocking on a FIFO or a device. */
#include "repeval/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
