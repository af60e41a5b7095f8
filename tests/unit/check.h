/* Minimal assertion helpers for the C unit tests: each test file is one
 * executable; main() returns non-zero if any check failed. */
#ifndef REPEVAL_TEST_CHECK_H
#define REPEVAL_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "repeval/core.h"

static int check_failed_ = 0, check_passed_ = 0;

#define CHECK(cond)                                                                    \
  do {                                                                                 \
    if (cond) {                                                                        \
      check_passed_++;                                                                 \
    } else {                                                                           \
      check_failed_++;                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
    }                                                                                  \
  } while (0)

#define CHECK_OK(expr)                                                                 \
  do {                                                                                 \
    re_status s_ = (expr);                                                             \
    if (s_ == RE_OK) {                                                                 \
      check_passed_++;                                                                 \
    } else {                                                                           \
      check_failed_++;                                                                 \
      fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #expr,        \
              re_status_str(s_), re_errmsg());                                         \
    }                                                                                  \
  } while (0)

/* expr must fail with status `code` and a message containing `substr`. */
#define CHECK_FAILS(expr, code, substr)                                                \
  do {                                                                                 \
    re_err_clear();                                                                    \
    re_status s_ = (expr);                                                             \
    if (s_ == (code) && strstr(re_errmsg(), (substr))) {                               \
      check_passed_++;                                                                 \
    } else {                                                                           \
      check_failed_++;                                                                 \
      fprintf(stderr, "%s:%d: %s: expected %s with \"%s\", got %s: \"%s\"\n", __FILE__, \
              __LINE__, #expr, re_status_str(code), (substr), re_status_str(s_),        \
              re_errmsg());                                                            \
    }                                                                                  \
  } while (0)

/* |a - b| <= rtol * max(|a|, |b|, 1e-300) */
#define CHECK_CLOSE(a, b, rtol)                                                        \
  do {                                                                                 \
    double a_ = (a), b_ = (b);                                                         \
    double s_ = fmax(fmax(fabs(a_), fabs(b_)), 1e-300);                                \
    if (fabs(a_ - b_) <= (rtol) * s_) {                                                \
      check_passed_++;                                                                 \
    } else {                                                                           \
      check_failed_++;                                                                 \
      fprintf(stderr, "%s:%d: %s = %.17g vs %s = %.17g (rel %.3g > %.3g)\n", __FILE__,  \
              __LINE__, #a, a_, #b, b_, fabs(a_ - b_) / s_, (double)(rtol));            \
    }                                                                                  \
  } while (0)

static inline int check_report(void) {
  printf("%d passed, %d failed\n", check_passed_, check_failed_);
  return check_failed_ ? 1 : 0;
}

/* Deterministic uniform and normal pseudo-random numbers (xorshift64*). */
static unsigned long long check_rng_ = 88172645463325252ull;
static inline void check_seed(unsigned long long s) { check_rng_ = s ? s : 1; }
static inline double check_uniform(void) {
  check_rng_ ^= check_rng_ >> 12;
  check_rng_ ^= check_rng_ << 25;
  check_rng_ ^= check_rng_ >> 27;
  return (double)((check_rng_ * 2685821657736338717ull) >> 11) * 0x1p-53;
}
static inline double check_normal(void) {
  double u = check_uniform(), v = check_uniform();
  if (u < 1e-300)
    u = 1e-300;
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

#endif
