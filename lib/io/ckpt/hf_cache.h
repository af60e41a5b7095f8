/* Private: the Hugging Face hub cache layout, offline, for the model-folder reader.
 *   <repo>/refs/<branch>       the commit (40 hex digits) a branch points to
 *   <repo>/snapshots/<commit>/ the files of that commit, symbolic links into blobs/
 *   <repo>/blobs/<hash>        the file contents */
#ifndef REPEVAL_HF_CACHE_H
#define REPEVAL_HF_CACHE_H

#include "repeval/checkpoint.h"

/* Resolve `branch` of the cache repo folder `repo`: *snapshot gets
 * <repo>/snapshots/<commit> and *commit the commit (both malloc'd). Checks the
 * refs file, the commit, the snapshot folder and every link in it. */
re_status re_hf_cache_resolve(const char *repo, const char *branch, char **snapshot, char **commit);
/* If `folder` is a snapshot folder of a cache repo (its parent is snapshots/ next
 * to blobs/ or refs/), *root gets the repo folder's real path (malloc'd); else NULL. */
re_status re_hf_cache_root_of(const char *folder, char **root);
/* RE_EFORMAT unless `path` resolves (links followed) to a file inside the folder
 * whose real path is `root`; `what` names the path in the message. */
re_status re_hf_cache_check_within(const char *root, const char *path, const char *what);

#endif
