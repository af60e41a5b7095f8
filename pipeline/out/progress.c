/* Progress lines with rate and ETA. */
#include "out/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(char *buf, size_t cap, double s) {
  if (s < 0 || s > 1e7) {
    snprintf(buf, cap, "?");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

void progress_start(progress *p, const char *what, int64_t total, int enabled) {
  memset(p, 0, sizeof *p);
  p->enabled = enabled;
  p->tty = isatty(STDERR_FILENO);
  p->t0 = p->last_print = progress_now();
  p->total = total;
  snprintf(p->what, sizeof p->what, "%s", what);
}

void progress_update(progress *p, int64_t done, int64_t samples) {
  if (!p->enabled)
    return;
  double now = progress_now(), el = now - p->t0;
  int due = p->tty ? (now - p->last_print >= 0.2 || done == p->total)
                   : (now - p->last_print >= 30.0 || (p->total >= 10 && done * 10 / p->total != p->last_done * 10 / p->total));
  if (!due)
    return;
  p->last_print = now;
  p->last_done = done;
  double frac = p->total > 0 ? (double)done / (double)p->total : 1.0;
  char eta[32], ela[32];
  fmt_time(eta, sizeof eta, frac > 0 ? el * (1 - frac) / frac : -1);
  fmt_time(ela, sizeof ela, el);
  double rate = el > 0 ? (double)samples / el : 0;
  char rbuf[64] = "";
  if (samples > 0)
    snprintf(rbuf, sizeof rbuf, "%.0f samples/s, ", rate);
  if (p->tty) {
    int width = 24, fill = (int)(frac * width);
    char bar[32];
    for (int k = 0; k < width; k++)
      bar[k] = k < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %lld/%lld %3.0f%% | %s%s elapsed, ETA %s   ", p->what, bar, (long long)done,
            (long long)p->total, 100 * frac, rbuf, ela, eta);
  } else {
    fprintf(stderr, "repeval: %s %lld/%lld (%.0f%%), %s%s elapsed, ETA %s\n", p->what, (long long)done,
            (long long)p->total, 100 * frac, rbuf, ela, eta);
  }
  fflush(stderr);
}

void progress_finish(progress *p, int64_t samples) {
  if (!p->enabled)
    return;
  double el = progress_now() - p->t0;
  char ela[32];
  fmt_time(ela, sizeof ela, el);
  if (p->tty)
    fprintf(stderr, "\n");
  if (samples > 0)
    fprintf(stderr, "repeval: %s done: %lld samples in %s (%.0f samples/s)\n", p->what, (long long)samples, ela,
            el > 0 ? (double)samples / el : 0.0);
  else
    fprintf(stderr, "repeval: %s done in %s\n", p->what, ela);
}
