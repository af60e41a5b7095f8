/* The job file of `repeval run`: datasets, models with their checkpoints and taps,
 * analyses, output. Parsed from YAML and fully validated before any compute; every
 * problem names its file:line:col. The schema is documented in docs/job-spec.md. */
#ifndef REPEVAL_JOB_H
#define REPEVAL_JOB_H

#include "run/job_types.h"

/* Parse and validate a job file: expands ${ENV} and {a..b}/{x,y} patterns and globs,
 * checks that every referenced file exists; the analyses are parsed by their kinds
 * (run/analysis.h). */
re_status job_load(const char *path, job **out);
/* The same, for a job that will run after others (repeval submit --after): patterns of
 * activations folders may match nothing yet (those jobs write them); such models then
 * have no checkpoints in *out. */
re_status job_load_deferred(const char *path, job **out);
/* Free (NULL allowed). */
void job_free(job **j);

/* Open dataset d (its format and options; normalisation is the caller's). */
re_status job_dataset_open(const job_dataset *d, re_dataset **out);

#endif
