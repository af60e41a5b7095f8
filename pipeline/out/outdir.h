/* The output folder of `repeval run`, `merge` and `finalize`: the rules that keep
 * repeval from deleting or replacing what it did not write (docs/reliability.md,
 * "Output folders"):
 *
 *  - the path is normalised once ("out/" is "out"; "", ".", "..", "/" are refused)
 *    and a symbolic link is followed once: the rules apply to the real folder;
 *  - the output may not be, contain or lie inside an input of the job;
 *  - an existing folder is replaced only if it is empty or a repeval result whose
 *    manifest.json carries repeval's output marker and lists every file in it;
 *  - a previous result is removed file by file, only what its manifest lists;
 *  - <out>.partial-* folders carry a marker naming their owner (host, pid, start
 *    time) and are swept only when that owner is gone;
 *  - one run at a time per output: an exclusive lock in the state folder. */
#ifndef REPEVAL_OUTDIR_H
#define REPEVAL_OUTDIR_H

#include "out/output.h"
#include "repeval/core.h"

/* The value of "output": {"marker": ...} in the manifest of a result folder. */
#define OUTDIR_MARKER "repeval-results-1"
/* Files repeval's own commands may add to a result folder after the run. */
#define OUTDIR_LATER_FILES "report.html"

/* Normalise `given` and follow a link: *real (malloc'd) is the absolute path of the
 * output folder, which need not exist yet. */
re_status outdir_resolve(const char *given, char **real);
/* Refuse an output that is, contains or lies inside one of the n input paths. */
re_status outdir_check_inputs(const char *real, const char *given, char *const *inputs, int n);
/* Refuse an existing `real` unless it is an empty folder or a complete repeval result
 * that holds only the files its manifest lists (plus OUTDIR_LATER_FILES). */
re_status outdir_check_replaceable(const char *real, const char *given);
/* Delete the previous result now at `dir` (swapped out of the output's place): the
 * files its manifest lists, repeval's temporary names, then the folders if empty.
 * Anything else is left where it is and named in the returned error. */
re_status outdir_remove_result(const char *dir);

/* Create the partial folder <real>.partial-<pid>[-XXXXXX] with its owner marker;
 * `path` receives its name. */
re_status outdir_partial_create(const char *real, char *path, size_t cap);
/* Remove the owner marker from a partial folder before it becomes the result. */
void outdir_partial_unmark(const char *path);
/* Name of the owner marker inside a partial folder (left out of manifests and bundles). */
#define OUTDIR_PARTIAL_MARKER OUT_HIDDEN_PREFIX "partial"
/* Remove <real>.partial-* folders whose marker names an owner that is gone (this host,
 * and the pid is dead or now another process); `own` is never touched. */
void outdir_sweep_partials(const char *real, const char *own);

/* An exclusive lock on an output, held in <state folder>/lock while a run writes. */
typedef struct outdir_lock {
  int fd;
  char path[4200];
} outdir_lock;
/* Take the lock (creating the folder); refuse, naming the holder, if another run has it. */
re_status outdir_lock_take(const char *state_dir, const char *out, outdir_lock *l);
/* Release (fd -1 allowed). */
void outdir_lock_release(outdir_lock *l);

/* Who this process is, as written in markers and locks: "host pid start boot". */
void outdir_owner(char *buf, size_t cap);

/* Replace folder `final` by `partial` atomically enough that a reader sees either the
 * old or the new complete folder (one exchange where the file system allows, else
 * final -> final.old-PID, partial -> final); the previous results are then removed
 * file by file, only what their manifest lists (outdir_remove_result). */
re_status out_commit_dir(const char *partial, const char *final);

/* Remove a folder tree (best effort). */
void out_remove_tree(const char *dir);

#endif
