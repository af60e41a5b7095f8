/* Fuzz target: a WebDataset tar shard from memory: member grouping, labels, PNG
 * or .npy headers at open, full decodes on read (sequential, then backwards).
 * Byte 0: bit 0 = .npy inputs (else .png), bit 1 = no labels; the rest is the tar. */
#include <stdlib.h>

#include "repeval/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  re_dataset *ds = NULL;
  if (re_dataset_open_wds_memory(data + 1, (int64_t)size - 1, "fuzz.tar", (data[0] & 1) ? "npy" : "png",
                                 (data[0] & 2) ? NULL : "cls", &ds) != RE_OK)
    return 0;
  const re_dataset_info *in = re_dataset_get_info(ds);
  if (in->count > 0 && in->sample_dim <= (1 << 22)) {
    float *x = malloc(sizeof(float) * (size_t)in->sample_dim);
    int32_t y;
    int64_t n = in->count < 64 ? in->count : 64;
    for (int64_t i = 0; x && i < n; i++)
      if (re_dataset_read(ds, i, i + 1, x, &y) != RE_OK)
        break;
    if (x && n > 1)
      (void)re_dataset_read(ds, n / 2, n / 2 + 1, x, &y); /* goes back: restarts the shard */
    free(x);
  }
  re_dataset_close(&ds);
  return 0;
}
