/* Fuzz target: one CIFAR batch from memory. Byte 0: bit 0 = CIFAR-100 (two label
 * bytes), bit 1 = fine labels; the rest is the batch. */
#include <stdlib.h>

#include "repeval/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  re_dataset *ds = NULL;
  if (re_dataset_open_cifar_memory(data + 1, (int64_t)size - 1, "fuzz.bin", 1 + (data[0] & 1), (data[0] >> 1) & 1,
                                   &ds) != RE_OK)
    return 0;
  const re_dataset_info *in = re_dataset_get_info(ds);
  static float x[2 * 3072];
  int32_t y[2];
  for (int64_t i = 0; i + 2 <= in->count; i += 2)
    (void)re_dataset_read(ds, i, i + 2, x, y);
  if (in->count > 0)
    (void)re_dataset_read(ds, in->count - 1, in->count, x, y);
  re_dataset_close(&ds);
  return 0;
}
