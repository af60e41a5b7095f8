/* Atomic file output: write to a temporary file in the target's folder, then
 * fsync and rename over the target, so readers see the old or the new file,
 * never a half-written one. */
#ifndef REPEVAL_ATOMIC_H
#define REPEVAL_ATOMIC_H

#include <stdio.h>

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re_atomic {
  FILE *f;    /* write here */
  char *tmp;  /* temporary path */
  char *path; /* final path */
  int no_sync; /* set after open: rename without fsync (still never half-written for readers), for
                * caches whose entries are checked when read and remade when damaged */
} re_atomic;

/* Create the temporary file for `path` (mode 0644). */
re_status re_atomic_open(const char *path, re_atomic *a);
/* Write n bytes; reports short writes (disk full) with the path. */
re_status re_atomic_write(re_atomic *a, const void *buf, int64_t n);
/* Flush, fsync and close: the file is whole on disk under its temporary name, not yet
 * in place (then re_atomic_commit or re_atomic_abort). On failure the temp file is removed. */
re_status re_atomic_finish(re_atomic *a);
/* Flush, fsync, close (unless finished), rename into place and fsync the folder (no
 * fsync with no_sync). On failure before the rename the temp file is removed. */
re_status re_atomic_commit(re_atomic *a);
/* Discard the temporary file (safe after commit or on a zeroed struct). */
void re_atomic_abort(re_atomic *a);

/* fsync a file or folder by path (folders a file system cannot sync are fine). */
re_status re_fsync_path(const char *path);
/* fsync the folder that holds `path` (makes a rename in it durable). */
re_status re_fsync_parent(const char *path);

/* Create folder `path` and its parents (mode 0755); existing folders are fine. */
re_status re_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif
#endif
