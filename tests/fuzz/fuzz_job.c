/* Fuzz target: job files (`repeval run JOB.yaml`), parsed and validated by job_load.
 * job_load reads a path (patterns and relative paths are resolved against the job's
 * folder), so each input is written to job.yaml in a private temporary folder that
 * also holds a few empty files the seeds refer to (img.idx, lab.idx, ck*.safetensors,
 * model.yaml, s.tar, b.bin, x.npy, y.npy), letting validation go past "file not found".
 * The folder is made in $TMPDIR (else /tmp) and removed at exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"

#include "run/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], path[300];
static const char *const files[] = {"img.idx", "lab.idx", "ck.safetensors", "ck1.safetensors", "ck2.pt",
                                    "model.yaml", "s.tar", "b.bin", "x.npy", "y.npy", "job.yaml"};

static void cleanup(void) {
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, files[k]);
    unlink(p);
  }
  rmdir(dir);
}

static void setup(void) {
  fuzz_make_dir(dir, sizeof dir, "job");
  for (size_t k = 0; k + 1 < sizeof files / sizeof files[0]; k++) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, files[k]);
    FILE *f = fopen(p, "wb");
    if (f)
      fclose(f);
  }
  snprintf(path, sizeof path, "%s/job.yaml", dir);
  atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0])
    setup();
  if (!fuzz_write_input(path, data, size))
    return 0;
  job *j = NULL;
  if (job_load(path, &j) == RE_OK)
    (void)job_dataset_index(j, "d");
  job_free(&j);
  return 0;
}
