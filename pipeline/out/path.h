/* Paths composed into fixed-size buffers: a path that does not fit is an error,
 * never silently cut short (a cut path can name another file). */
#ifndef REPEVAL_OUT_PATH_H
#define REPEVAL_OUT_PATH_H

#include <stdarg.h>
#include <stddef.h>

#include "repeval/core.h"

/* snprintf(buf, cap, fmt, ...) for a path; RE_EINVAL "path too long: ..." if it does not fit. */
re_status re_path_join(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* re_path_join with a va_list. */
re_status re_path_vjoin(char *buf, size_t cap, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

#endif
