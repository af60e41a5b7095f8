/* Datasets: samples in a fixed global order, read in ranges as float32 with labels.
 * Formats: IDX (MNIST / Fashion-MNIST, plain or .gz), CIFAR-10/100 binary, .npy
 * input/label pairs, WebDataset tar shards (.tar, .tar.gz, .tar.zst).
 *
 * A sample is a float32 vector of `sample_dim` values in C, H, W order (images)
 * or the flattened .npy row. Image pixels stored as uint8 are scaled to [0, 1]
 * (as torchvision's ToTensor does), then the optional per-channel normalisation
 * (x - mean[c]) / std[c] is applied. */
#ifndef REPEVAL_DATASET_H
#define REPEVAL_DATASET_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re_dataset_info {
  int64_t count;      /* number of samples */
  int64_t sample_dim; /* floats per sample */
  int channels, height, width; /* image geometry (1, 1, sample_dim for non-images) */
  int has_labels;
  int64_t num_classes; /* max label + 1 over the dataset, or 0 when unknown/no labels */
} re_dataset_info;

typedef struct re_dataset re_dataset;

/* IDX images (+ optional labels, NULL for none); `.gz` files are decompressed. */
re_status re_dataset_open_idx(const char *images, const char *labels, re_dataset **out);
/* CIFAR binary batches: records of label byte(s) + 3072 pixel bytes (3 x 32 x 32).
 * label_bytes: 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine); use_fine picks the
 * label for CIFAR-100. Files are concatenated in the order given. */
re_status re_dataset_open_cifar(const char *const *files, int nfiles, int label_bytes, int use_fine,
                                re_dataset **out);
/* .npy inputs (N x ...) and labels (N, integer dtype; NULL for none). */
re_status re_dataset_open_npy(const char *inputs, const char *labels, re_dataset **out);
/* WebDataset shards, in the order given; samples are consecutive members sharing a
 * key, with an input member of extension `input_ext` ("png", "npy", or "auto": the
 * first sample decides, .png when it has one, else .npy) and an optional integer
 * label member `label_ext` ("cls"; NULL for none). */
re_status re_dataset_open_wds(const char *const *shards, int nshards, const char *input_ext,
                              const char *label_ext, re_dataset **out);
/* In-memory variants (plain or gzip IDX, one CIFAR batch, one tar shard); `name`
 * stands for the file in messages. The bytes are not copied and must stay valid
 * until the dataset is closed. */
re_status re_dataset_open_idx_memory(const void *images, int64_t images_len, const void *labels,
                                     int64_t labels_len, const char *name, re_dataset **out);
/* One CIFAR batch held in memory (see re_dataset_open_cifar). */
re_status re_dataset_open_cifar_memory(const void *buf, int64_t len, const char *name, int label_bytes,
                                       int use_fine, re_dataset **out);
/* One WebDataset tar shard held in memory (see re_dataset_open_wds). */
re_status re_dataset_open_wds_memory(const void *buf, int64_t len, const char *name, const char *input_ext,
                                     const char *label_ext, re_dataset **out);
/* Close (NULL allowed); sets *d to NULL. */
void re_dataset_close(re_dataset **d);

/* Geometry, count and labels. */
const re_dataset_info *re_dataset_get_info(const re_dataset *d);
/* Per-channel normalisation applied on read; n must equal the channel count. */
re_status re_dataset_set_normalize(re_dataset *d, const float *mean, const float *std, int n);
/* Read samples [i, j) into x ((j - i) x sample_dim) and labels (j - i, may be NULL;
 * -1 when the dataset has no labels). Sequential ranges are fast for every format;
 * random ranges may rescan (WebDataset restarts the shard holding i when i is behind
 * its stream position). */
re_status re_dataset_read(re_dataset *d, int64_t i, int64_t j, float *x, int32_t *labels);

/* Contiguous shard of rank r of R over n samples: [floor(n r / R), floor(n (r+1) / R)). */
void re_shard_range(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

#ifdef __cplusplus
}
#endif
#endif
