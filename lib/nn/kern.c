/* The fast path's switches (CPU features, REPEVAL_NN_KERNELS, threads), aligned
 * buffers and the blocked layout's conversions. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"

/* The kernels this process may use: 0 portable, 1 AVX2, 2 AVX2 + the AVX-512 micro-kernel;
 * from the CPU and REPEVAL_NN_KERNELS ("plain", "avx2"), read once. */
static int kernel_level(void) {
  static int cached = -1;
  if (cached >= 0)
    return cached;
  int level = 0;
#ifdef REPEVAL_HAVE_AVX2_KERNELS
  __builtin_cpu_init();
  level = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#ifdef REPEVAL_HAVE_AVX512_KERNELS
  if (level == 1 && __builtin_cpu_supports("avx512f"))
    level = 2;
#endif
  const char *e = getenv("REPEVAL_NN_KERNELS");
  if (e && !strcmp(e, "plain"))
    level = 0;
  else if (e && !strcmp(e, "avx2") && level > 1)
    level = 1;
  cached = level;
  return level;
}

int re_kern_fast(void) { return kernel_level() >= 1; }

int re_kern_avx512(void) { return kernel_level() == 2; }

static void tile2_avx2(int64_t kb, const float *a, int64_t as, const float *b0, const float *b1, float *c0,
                       float *c1, int64_t ldc, int acc) {
  re_k_tile(kb, a, as, b0, c0, ldc, acc);
  re_k_tile(kb, a, as, b1, c1, ldc, acc);
}

re_tile2_fn re_k_tile2(void) { return re_kern_avx512() ? re_k_tile2_avx512 : tile2_avx2; }

int re_kern_threads(void) {
  int t = openblas_get_num_threads();
  return t < 1 ? 1 : t > 256 ? 256 : t;
}

re_status re_kern_alloc(int64_t n, float **out) {
  *out = NULL;
  int64_t bytes;
  RE_TRY(re_mul_i64(n > 0 ? n : 1, (int64_t)sizeof(float), &bytes));
  bytes = (bytes + 63) / 64 * 64;
  void *p = aligned_alloc(64, (size_t)bytes);
  if (!p)
    return re_err(RE_ENOMEM, "forward: cannot allocate %lld bytes of packed weights or workspace", (long long)bytes);
  *out = p;
  return RE_OK;
}

void re_block(const float *x, int64_t B, int64_t C, int64_t hw, float *y) {
  int64_t CB = (C + 7) / 8;
  for (int64_t b = 0; b < B; b++)
    for (int64_t cb = 0; cb < CB; cb++) {
      float *d = y + (b * CB + cb) * hw * 8;
      int64_t lanes = C - cb * 8 < 8 ? C - cb * 8 : 8;
      const float *s = x + (b * C + cb * 8) * hw;
      if (lanes < 8)
        memset(d, 0, sizeof(float) * (size_t)(hw * 8));
      for (int64_t l = 0; l < lanes; l++)
        for (int64_t p = 0; p < hw; p++)
          d[p * 8 + l] = s[l * hw + p];
    }
}

void re_unblock(const float *x, int64_t B, int64_t C, int64_t hw, float *y) {
  int64_t CB = (C + 7) / 8;
  for (int64_t b = 0; b < B; b++)
    for (int64_t cb = 0; cb < CB; cb++) {
      const float *s = x + (b * CB + cb) * hw * 8;
      int64_t lanes = C - cb * 8 < 8 ? C - cb * 8 : 8;
      float *d = y + (b * C + cb * 8) * hw;
      for (int64_t l = 0; l < lanes; l++)
        for (int64_t p = 0; p < hw; p++)
          d[l * hw + p] = s[p * 8 + l];
    }
}
