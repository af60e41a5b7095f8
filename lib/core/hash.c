/* FNV-1a 64: the checksum of state files, cache shards, manifests and name tables. */
#include "repeval/core.h"

#include <stdio.h>

uint64_t re_fnv1a64(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t k = 0; k < n; k++) {
    h ^= b[k];
    h *= 0x100000001b3ULL; /* the 64-bit FNV prime */
  }
  return h;
}

re_status re_fnv1a64_file(uint64_t h, const char *path, uint64_t *out, int64_t *bytes) {
  FILE *f;
  RE_TRY(re_fopen_regular(path, &f));
  unsigned char buf[1 << 16];
  size_t n;
  int64_t total = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    h = re_fnv1a64(h, buf, n);
    total += (int64_t)n;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad)
    return re_err(RE_EIO, "%s: read error", path);
  *out = h;
  if (bytes)
    *bytes = total;
  return RE_OK;
}
