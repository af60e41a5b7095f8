/* Result files of `repeval run`: tidy CSV, the results bundle (tar + zstd, written
 * with libarchive) and the atomic replacement of the output folder. */
#ifndef REPEVAL_OUTPUT_H
#define REPEVAL_OUTPUT_H

#include <stdio.h>

#include "repeval/core.h"

/* Write one CSV field, quoted when it holds a comma, quote or newline. */
void out_csv_field(FILE *f, const char *s);

/* Bundle every regular file under `dir` (recursively, sorted names, paths relative to
 * dir) into `tarpath` as a zstd-compressed POSIX tar; readable by `tar --zstd -xf`.
 * Files under the subfolder `skip` (NULL: none) are left out. */
re_status out_bundle(const char *dir, const char *tarpath, const char *skip);

/* Regular files under dir (recursively, sorted, relative to dir); free each and *files. */
re_status out_list_files(const char *dir, char ***files, int *n);

/* Replace folder `final` by `partial` atomically enough that a reader sees either the
 * old or the new complete folder (one exchange where the file system allows, else
 * final -> final.old-PID, partial -> final); the previous results are then removed
 * file by file, only what their manifest lists (outdir_remove_result). */
re_status out_commit_dir(const char *partial, const char *final);

/* Remove a folder tree (best effort). */
void out_remove_tree(const char *dir);

/* 64-bit FNV-1a checksum and size of a file, for the manifest. */
re_status out_checksum(const char *path, uint64_t *sum, int64_t *bytes);

#endif
