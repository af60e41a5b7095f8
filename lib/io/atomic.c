/* Atomic file output through a temporary file and rename(2). */
#include "repeval/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

re_status re_atomic_open(const char *path, re_atomic *a) {
  memset(a, 0, sizeof *a);
  size_t n = strlen(path);
  RE_TRY(re_strdup(path, &a->path));
  re_status st = re_malloc((int64_t)n + 16, 1, &a->tmp);
  if (st != RE_OK) {
    re_free(&a->path);
    return st;
  }
  memcpy(a->tmp, path, n);
  memcpy(a->tmp + n, ".tmp.XXXXXX", 12);
  int fd = mkstemp(a->tmp);
  if (fd < 0) {
    int e = errno;
    re_free(&a->tmp);
    re_free(&a->path);
    return re_err(RE_EIO, "%s: cannot create a temporary file: %s", path, strerror(e));
  }
  (void)fchmod(fd, 0644);
  a->f = fdopen(fd, "wb");
  if (!a->f) {
    close(fd);
    re_atomic_abort(a);
    return re_err(RE_EIO, "%s: fdopen failed", path);
  }
  return RE_OK;
}

re_status re_atomic_write(re_atomic *a, const void *buf, int64_t n) {
  if (n > 0 && fwrite(buf, 1, (size_t)n, a->f) != (size_t)n)
    return re_err(RE_EIO, "%s: write failed: %s", a->path, strerror(errno));
  return RE_OK;
}

re_status re_fsync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return re_err(RE_EIO, "%s: cannot open it to sync it: %s", path, strerror(errno));
  int rc = fsync(fd), e = errno;
  close(fd);
  if (rc != 0 && e != EINVAL && e != EROFS) /* folders some file systems cannot sync */
    return re_err(RE_EIO, "%s: cannot sync: %s", path, strerror(e));
  return RE_OK;
}

re_status re_fsync_parent(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (n >= sizeof dir)
    return re_err(RE_EINVAL, "%s: path too long", path);
  if (slash && n == 0)
    n = 1; /* "/x": the root folder */
  memcpy(dir, slash ? path : ".", slash ? n : 1);
  dir[slash ? n : 1] = '\0';
  return re_fsync_path(dir);
}

re_status re_atomic_finish(re_atomic *a) {
  if (!a->f)
    return RE_OK;
  int bad = 0, e = 0;
  if (fflush(a->f) != 0) {
    bad = 1;
    e = errno;
  }
  if (!bad && !a->no_sync && fsync(fileno(a->f)) != 0) {
    bad = 1;
    e = errno;
  }
  if (fclose(a->f) != 0 && !bad) {
    bad = 1;
    e = errno;
  }
  a->f = NULL;
  if (bad) {
    re_status st = re_err(RE_EIO, "%s: cannot write: %s", a->path, strerror(e));
    re_atomic_abort(a);
    return st;
  }
  return RE_OK;
}

re_status re_atomic_commit(re_atomic *a) {
  RE_TRY(re_atomic_finish(a));
  int bad = 0, e = 0;
  if (rename(a->tmp, a->path) != 0) {
    bad = 1;
    e = errno;
  }
  if (bad) {
    re_status st = re_err(RE_EIO, "%s: cannot write: %s", a->path, strerror(e));
    re_atomic_abort(a);
    return st;
  }
  re_free(&a->tmp);
  /* the rename survives a power loss once its folder is synced */
  re_status st = a->no_sync ? RE_OK : re_fsync_parent(a->path);
  re_free(&a->path);
  return st;
}

void re_atomic_abort(re_atomic *a) {
  if (a->f) {
    fclose(a->f);
    a->f = NULL;
  }
  if (a->tmp) {
    unlink(a->tmp);
    re_free(&a->tmp);
  }
  re_free(&a->path);
}

re_status re_mkdir_p(const char *path) {
  char *p;
  RE_TRY(re_strdup(path, &p));
  size_t n = strlen(p);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] == '/' || p[i] == '\0') {
      char c = p[i];
      p[i] = '\0';
      if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        re_status st = re_err(RE_EIO, "cannot create folder %s: %s", p, strerror(e));
        free(p);
        return st;
      }
      p[i] = c;
    }
  }
  free(p);
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return re_err(RE_EIO, "%s exists and is not a folder", path);
  return RE_OK;
}
