/* Fuzz target: IDX images (+ labels), plain or gzip, opened from memory and read.
 * Input: byte 0 bit 0 = with labels; bytes 1-2 = length of the images part
 * (little-endian); then the images file, then the labels file. */
#include <stdlib.h>

#include "repeval/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  size_t split = (size_t)data[1] | (size_t)data[2] << 8, rest = size - 3;
  if (split > rest)
    split = rest;
  const uint8_t *img = data + 3, *lab = data + 3 + split;
  re_dataset *ds = NULL;
  if (re_dataset_open_idx_memory(img, (int64_t)split, (data[0] & 1) ? lab : NULL, (int64_t)(rest - split), "fuzz",
                                 &ds) != RE_OK)
    return 0;
  const re_dataset_info *in = re_dataset_get_info(ds);
  if (in->count > 0 && in->sample_dim <= (1 << 20)) {
    float *x = malloc(sizeof(float) * (size_t)in->sample_dim * 2);
    int32_t y[2];
    if (x) {
      (void)re_dataset_read(ds, 0, 1, x, y);
      (void)re_dataset_read(ds, in->count - 1, in->count, x, y);
      if (in->count >= 2)
        (void)re_dataset_read(ds, in->count / 2 - 1, in->count / 2 + 1, x, y);
    }
    free(x);
  }
  re_dataset_close(&ds);
  return 0;
}
