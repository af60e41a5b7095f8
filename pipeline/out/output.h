/* Result files of `repeval run`: tidy CSV, the results bundle (tar + zstd, written
 * with libarchive) and the atomic replacement of the output folder. */
#ifndef REPEVAL_OUTPUT_H
#define REPEVAL_OUTPUT_H

#include <stdio.h>

#include "repeval/core.h"

/* Files whose names start with this are repeval's own markers (a partial folder's
 * owner): never part of a result, its manifest or its bundle. */
#define OUT_HIDDEN_PREFIX ".repeval-"

/* Write one CSV field, quoted when it holds a comma, quote or newline. */
void out_csv_field(FILE *f, const char *s);

/* Bundle every regular file under `dir` (recursively, sorted names, paths relative to
 * dir) into `tarpath` as a zstd-compressed POSIX tar; readable by `tar --zstd -xf`.
 * Files under the subfolder `skip` (NULL: none) are left out. */
re_status out_bundle(const char *dir, const char *tarpath, const char *skip);

/* Regular files under dir (recursively, sorted, relative to dir); free each and *files. */
re_status out_list_files(const char *dir, char ***files, int *n);

/* 64-bit FNV-1a checksum and size of a file, for the manifest; of a model folder, over
 * its files (links followed) in name order: each name, then its bytes. */
re_status out_checksum(const char *path, uint64_t *sum, int64_t *bytes);
/* h extended with what says a file changed (path, size, modification time); for a
 * folder, with that of each of its files. */
uint64_t out_meta_hash(uint64_t h, const char *path);

#endif
