/* Paths composed into fixed-size buffers, checked for truncation. */
#include "out/path.h"

#include <stdarg.h>
#include <stdio.h>

re_status re_path_join(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  re_status st = re_path_vjoin(buf, cap, fmt, ap);
  va_end(ap);
  return st;
}

re_status re_path_vjoin(char *buf, size_t cap, const char *fmt, va_list ap) {
  int n = vsnprintf(buf, cap, fmt, ap);
  if (n < 0)
    return re_err(RE_EINVAL, "path cannot be composed");
  if ((size_t)n >= cap)
    return re_err(RE_EINVAL, "path too long: %.64s... (%d bytes, at most %zu)", buf, n, cap - 1);
  return RE_OK;
}
