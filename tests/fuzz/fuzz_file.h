/* Helpers of the fuzz targets whose readers work on paths: a private folder in
 * $TMPDIR (else /tmp) and each input written to a file in it. */
#ifndef REPEVAL_FUZZ_FILE_H
#define REPEVAL_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Make dir (cap bytes) a new folder repeval-fuzz-<tag>-XXXXXX; aborts on failure. */
static inline void fuzz_make_dir(char *dir, size_t cap, const char *tag) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, cap, "%s/repeval-fuzz-%s-XXXXXX", tmp && strlen(tmp) < 200 ? tmp : "/tmp", tag);
  if (!mkdtemp(dir))
    abort();
}

/* Write the input to path; 0 if the file cannot be written. */
static inline int fuzz_write_input(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return 0;
  if (size)
    fwrite(data, 1, size, f);
  fclose(f);
  return 1;
}

#endif
