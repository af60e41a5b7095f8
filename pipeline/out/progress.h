/* Progress of long work on rank 0: a live line on a terminal, periodic plain lines
 * otherwise (Slurm logs), nothing with --quiet. */
#ifndef REPEVAL_PROGRESS_H
#define REPEVAL_PROGRESS_H

#include <stdint.h>

typedef struct progress {
  int enabled, tty;
  double t0, last_print;
  int64_t total, last_done;
  char what[64];
} progress;

/* Monotonic seconds. */
double progress_now(void);
/* Start reporting `total` units of work called `what`. */
void progress_start(progress *p, const char *what, int64_t total, int enabled);
/* Report `done` units finished and `samples` processed so far. */
void progress_update(progress *p, int64_t done, int64_t samples);
/* Final line. */
void progress_finish(progress *p, int64_t samples);

#endif
