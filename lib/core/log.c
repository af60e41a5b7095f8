/* Leveled logging to stderr, configured by REPEVAL_LOG. */
#include "repeval/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static re_log_level log_level = RE_LOG_WARN;
static int log_rank = -1;

void re_log_init_from_env(void) {
  const char *v = getenv("REPEVAL_LOG");
  if (!v || !*v)
    return;
  if (!strcmp(v, "error"))
    log_level = RE_LOG_ERROR;
  else if (!strcmp(v, "warn") || !strcmp(v, "warning"))
    log_level = RE_LOG_WARN;
  else if (!strcmp(v, "info"))
    log_level = RE_LOG_INFO;
  else if (!strcmp(v, "debug"))
    log_level = RE_LOG_DEBUG;
  else
    fprintf(stderr, "repeval: warning: REPEVAL_LOG=%s is not one of error|warn|info|debug\n", v);
}

void re_log_set_level(re_log_level level) { log_level = level; }

re_log_level re_log_get_level(void) { return log_level; }

void re_log_set_rank(int rank) { log_rank = rank; }

void re_log(re_log_level level, const char *fmt, ...) {
  static const char *names[] = {"error", "warning", "info", "debug"};
  if (level > log_level)
    return;
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (log_rank >= 0)
    fprintf(stderr, "repeval[%d]: %s: %s\n", log_rank, names[level], line);
  else
    fprintf(stderr, "repeval: %s: %s\n", names[level], line);
}
