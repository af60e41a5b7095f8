/* Status codes and the thread-local error message buffer. */
#include "repeval/core.h"

#include <stdio.h>
#include <string.h>

#define RE_ERRMSG_CAP 2048

static _Thread_local char errmsg[RE_ERRMSG_CAP];

const char *re_status_str(re_status st) {
  switch (st) {
  case RE_OK: return "ok";
  case RE_EINVAL: return "invalid argument";
  case RE_EIO: return "I/O error";
  case RE_ENOMEM: return "out of memory";
  case RE_EFORMAT: return "format error";
  case RE_EUNSUPPORTED: return "unsupported";
  case RE_ESHAPE: return "shape mismatch";
  case RE_EUNDEFINED: return "undefined";
  case RE_EDATA: return "bad data";
  case RE_EMPI: return "MPI error";
  case RE_EINTERRUPTED: return "interrupted";
  }
  return "unknown status";
}

re_status re_err(re_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg, sizeof errmsg, fmt, ap);
  va_end(ap);
  return st;
}

re_status re_err_context(re_status st, const char *fmt, ...) {
  char prefix[RE_ERRMSG_CAP];
  char old[RE_ERRMSG_CAP];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, errmsg, sizeof old);
  size_t n = strnlen(prefix, sizeof prefix - 1);
  memcpy(errmsg, prefix, n);
  size_t m = strnlen(old, sizeof old - 1);
  if (m > sizeof errmsg - 1 - n)
    m = sizeof errmsg - 1 - n;
  memcpy(errmsg + n, old, m);
  errmsg[n + m] = '\0';
  return st;
}

const char *re_errmsg(void) { return errmsg; }

void re_err_clear(void) { errmsg[0] = '\0'; }
