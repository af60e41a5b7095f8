/* The AVX2 loop of re_vexp (vexp.h): SLEEF's Sleef_expd4_u10avx2 (Shibata & Petrogalli
 * 2020, 1-ulp), four doubles at a time; the tail through a zero-padded vector. Compiled
 * with -mavx2 -mfma and called only when the CPU has both. */
#include "vexp.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(REPEVAL_HAVE_SLEEF)
#include <immintrin.h>
#include <sleef.h>

void re_vexp_avx2(double *x, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    _mm256_storeu_pd(x + i, Sleef_expd4_u10avx2(_mm256_loadu_pd(x + i)));
  if (i < n) {
    double t[4] = {0, 0, 0, 0};
    memcpy(t, x + i, (size_t)(n - i) * sizeof(double));
    _mm256_storeu_pd(t, Sleef_expd4_u10avx2(_mm256_loadu_pd(t)));
    memcpy(x + i, t, (size_t)(n - i) * sizeof(double));
  }
}
#else
void re_vexp_avx2(double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    x[i] = exp(x[i]);
}
#endif
