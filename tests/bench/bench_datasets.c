/* Dataset read throughput: open, then read every sample sequentially in batches
 * of 256, for Fashion-MNIST (IDX .gz, train and t10k) and for WebDataset shards.
 *   bench_datasets [FMNIST_DIR] [SHARD...]
 * FMNIST_DIR defaults to $FMNIST, then to Debian's dataset-fashion-mnist folder. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "repeval/dataset.h"

#ifndef BENCH_FMNIST_DEFAULT
#define BENCH_FMNIST_DEFAULT "/usr/share/datasets/fashion-mnist"
#endif
#define BATCH 256

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double file_mb(const char *const *paths, int n) {
  double b = 0;
  struct stat sb;
  for (int k = 0; k < n; k++)
    if (stat(paths[k], &sb) == 0)
      b += (double)sb.st_size;
  return b / 1e6;
}

/* Read everything in batches; prints one line. Returns 0 on success. */
static int run(const char *label, re_dataset *ds, double t_open, double in_mb) {
  const re_dataset_info *in = re_dataset_get_info(ds);
  float *x = malloc(sizeof(float) * (size_t)(BATCH * in->sample_dim));
  int32_t y[BATCH];
  if (!x)
    return 1;
  double t0 = now(), checksum = 0;
  for (int64_t i = 0; i < in->count; i += BATCH) {
    int64_t j = i + BATCH < in->count ? i + BATCH : in->count;
    re_status st = re_dataset_read(ds, i, j, x, y);
    if (st != RE_OK) {
      fprintf(stderr, "%s: %s\n", label, re_errmsg());
      free(x);
      return 1;
    }
    checksum += x[0] + y[0];
  }
  double t = now() - t0;
  double out_mb = (double)in->count * (double)in->sample_dim * 4 / 1e6;
  printf("%-28s %7lld samples %dx%dx%d  open %.3f s  read %.3f s  %9.0f samples/s  %7.1f MB/s float32 out  "
         "%7.1f MB/s file in (open+read)  [checksum %.3f]\n",
         label, (long long)in->count, in->channels, in->height, in->width, t_open, t, (double)in->count / t,
         out_mb / t, in_mb / (t_open + t), checksum);
  free(x);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : getenv("FMNIST");
  if (!dir)
    dir = BENCH_FMNIST_DEFAULT;
  int bad = 0;
  const char *sets[2] = {"train", "t10k"};
  for (int s = 0; s < 2; s++) {
    char img[4096], lab[4096];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, sets[s]);
    snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, sets[s]);
    re_dataset *ds = NULL;
    double t0 = now();
    if (re_dataset_open_idx(img, lab, &ds) != RE_OK) {
      fprintf(stderr, "skipping Fashion-MNIST %s: %s\n", sets[s], re_errmsg());
      continue;
    }
    const char *files[2] = {img, lab};
    char label[64];
    snprintf(label, sizeof label, "fmnist %s (idx.gz)", sets[s]);
    bad |= run(label, ds, now() - t0, file_mb(files, 2));
    re_dataset_close(&ds);
  }
  if (argc > 2) {
    const char *const *shards = (const char *const *)argv + 2;
    re_dataset *ds = NULL;
    double t0 = now();
    if (re_dataset_open_wds(shards, argc - 2, "png", "cls", &ds) != RE_OK) {
      fprintf(stderr, "webdataset: %s\n", re_errmsg());
      return 1;
    }
    char label[64];
    snprintf(label, sizeof label, "webdataset png (%d shards)", argc - 2);
    bad |= run(label, ds, now() - t0, file_mb(shards, argc - 2));
    re_dataset_close(&ds);
  }
  return bad;
}
