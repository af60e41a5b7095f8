/* Private: what every dataset backend (IDX, CIFAR, .npy, WebDataset, tokens, token
 * streams, text) provides to the common part in dataset.c. A backend validates its
 * files at open, fills a re_dataset_info and returns raw samples (uint8 pixels
 * already scaled to [0, 1]) or token rows; dataset.c checks ranges, fills missing
 * labels and applies the normalisation. */
#ifndef REPEVAL_DS_INTERNAL_H
#define REPEVAL_DS_INTERNAL_H

#include "repeval/dataset.h"
#include "repeval/npy.h"

typedef struct re_ds_ops {
  /* Samples [i, j) (0 <= i < j <= count, checked by the caller) into
   * x ((j - i) x sample_dim) and, when labels is not NULL, labels (j - i). */
  re_status (*read)(void *impl, int64_t i, int64_t j, float *x, int32_t *labels);
  /* Free the backend state (never NULL). */
  void (*close)(void *impl);
  /* Token datasets (read is then NULL): ids and mask ((j - i) x seq_len), labels as read. */
  re_status (*read_tokens)(void *impl, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels);
} re_ds_ops;

/* Wrap a backend into a dataset. On failure ops->close(impl) has been called. */
re_status re_ds_wrap(const re_ds_ops *ops, void *impl, const re_dataset_info *info, re_dataset **out);
/* Give the dataset the names of its classes (n of them, owned from now on, also on failure). */
void re_ds_set_class_names(re_dataset *d, char **names, int64_t n);

/* Integer element k of an integer .npy array, with sign, without going through
 * double; *too_big is set for unsigned values above INT64_MAX. 0 if the dtype is
 * not an integer (or bool) type. */
int re_ds_npy_int(const re_npy *a, int64_t k, int64_t *v, int *too_big);

/* Offset of the first byte of s[0, len) that is not valid UTF-8 (RFC 3629: no
 * overlong forms, surrogates or values above U+10FFFF), or -1 when all are. */
int64_t re_ds_utf8_invalid(const char *s, int64_t len);

/* dst[k] = src[k] / 255 in float32 (torchvision's ToTensor, bit for bit). */
void re_ds_u8_to_unit(const uint8_t *src, int64_t n, float *dst);

/* A read-only memory map of a whole regular file (len 0: base NULL). */
typedef struct re_ds_map {
  void *base;
  int64_t len;
} re_ds_map;

/* Map `path`; errors name the path. */
re_status re_ds_map_file(const char *path, re_ds_map *m);
/* Unmap (a zeroed map is fine) and zero *m. */
void re_ds_unmap(re_ds_map *m);

/* Refuse NaN/Inf inputs of rows x dim (float dtypes can store them; a network
 * would turn them into NaN activations far from their cause). `first` >= 0 names
 * the sample index of row 0 in `where`'s numbering; < 0: one unnamed sample. */
re_status re_ds_check_finite(const float *x, int64_t rows, int64_t dim, int64_t first, const char *where);

/* Refuse a label beyond what an int32 holds (labels are int32 on read). */
#define RE_DS_MAX_LABEL INT32_MAX

#endif
