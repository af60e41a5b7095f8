/* Fuzz target: .npy header parsing and row reads of whatever parses. */
#include <stdlib.h>

#include "repeval/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  re_npy *a = NULL;
  if (re_npy_from_memory(data, (int64_t)size, "fuzz.npy", &a) != RE_OK)
    return 0;
  int64_t rows = re_npy_rows(a), cols = re_npy_cols(a);
  if (rows > 0 && cols > 0 && cols < (1 << 20)) {
    double *row = malloc(sizeof(double) * (size_t)cols);
    int64_t last = rows - 1;
    if (row && re_npy_read_rows_f64(a, 0, 1, row) == RE_OK)
      (void)re_npy_read_rows_f64(a, last, 1, row);
    free(row);
  }
  re_npy_close(&a);
  return 0;
}
