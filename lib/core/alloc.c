/* Overflow-checked size arithmetic and allocation helpers. */
#define _DEFAULT_SOURCE /* madvise (MADV_HUGEPAGE) */
#include "repeval/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

re_status re_mul_i64(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    return re_err(RE_ENOMEM, "size overflow: %lld x %lld", (long long)a, (long long)b);
  *out = r;
  return RE_OK;
}

re_status re_add_i64(int64_t a, int64_t b, int64_t *out) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r))
    return re_err(RE_ENOMEM, "size overflow: %lld + %lld", (long long)a, (long long)b);
  *out = r;
  return RE_OK;
}

static re_status checked_bytes(int64_t count, int64_t size, size_t *bytes) {
  int64_t b;
  RE_TRY(re_mul_i64(count, size, &b));
  if ((uint64_t)b > (uint64_t)SIZE_MAX)
    return re_err(RE_ENOMEM, "allocation of %lld bytes exceeds the address space", (long long)b);
  *bytes = b ? (size_t)b : 1;
  return RE_OK;
}

re_status re_calloc(int64_t count, int64_t size, void *out) {
  void **p = (void **)out;
  size_t bytes;
  *p = NULL;
  RE_TRY(checked_bytes(count, size, &bytes));
  *p = calloc(1, bytes);
  if (!*p)
    return re_err(RE_ENOMEM, "cannot allocate %zu bytes", bytes);
  return RE_OK;
}

re_status re_malloc(int64_t count, int64_t size, void *out) {
  void **p = (void **)out;
  size_t bytes;
  *p = NULL;
  RE_TRY(checked_bytes(count, size, &bytes));
  *p = malloc(bytes);
  if (!*p)
    return re_err(RE_ENOMEM, "cannot allocate %zu bytes", bytes);
  return RE_OK;
}

/* Ask for transparent huge pages over the whole pages of a buffer of 8 MiB or more. */
static void advise_huge(void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (bytes < ((size_t)8 << 20))
    return;
  uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
  if (e > a)
    (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

re_status re_malloc_whole(int64_t count, int64_t size, void *out) {
  RE_TRY(re_malloc(count, size, out));
  advise_huge(*(void **)out, (size_t)count * (size_t)size); /* the product was checked */
  return RE_OK;
}

re_status re_calloc_whole(int64_t count, int64_t size, void *out) {
  RE_TRY(re_calloc(count, size, out));
  advise_huge(*(void **)out, (size_t)count * (size_t)size);
  return RE_OK;
}

re_status re_realloc(void *p, int64_t count, int64_t size) {
  void **pp = (void **)p;
  size_t bytes;
  RE_TRY(checked_bytes(count, size, &bytes));
  void *q = realloc(*pp, bytes);
  if (!q)
    return re_err(RE_ENOMEM, "cannot allocate %zu bytes", bytes);
  *pp = q;
  return RE_OK;
}

void re_free(void *p) {
  void **pp = (void **)p;
  if (pp) {
    free(*pp);
    *pp = NULL;
  }
}

re_status re_strdup(const char *s, char **out) {
  size_t n = strlen(s) + 1;
  *out = malloc(n);
  if (!*out)
    return re_err(RE_ENOMEM, "cannot allocate %zu bytes", n);
  memcpy(*out, s, n);
  return RE_OK;
}
