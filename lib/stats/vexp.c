/* exp over arrays of doubles (see vexp.h): one check of the CPU, then the vector loop or
 * libm. */
#include "vexp.h"

#include <math.h>

static int vector_ok(void) {
  static int cached = -1;
  if (cached < 0) {
    int ok = 0;
#if defined(REPEVAL_HAVE_AVX2_KERNELS) && defined(REPEVAL_HAVE_SLEEF)
    __builtin_cpu_init();
    ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    cached = ok;
  }
  return cached;
}

void re_vexp(double *x, int64_t n) {
  if (vector_ok()) {
    re_vexp_avx2(x, n);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    x[i] = exp(x[i]);
}
