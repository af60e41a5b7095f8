/* AVX-512 micro-kernel of the fast path (see kern.h). This file is compiled with
 * -mavx512f; nothing here runs unless re_kern_avx512() said the CPU has it. A panel row of
 * 16 floats is one 512-bit vector, so the kernel takes two panels at once: 6 rows x 32
 * columns, 12 accumulators. Every output is the same chain of fused multiply-adds over k
 * as in the AVX2 kernel, so the two give the same bits. */
#include "kern.h"

#ifdef __AVX512F__
#include <immintrin.h>

void re_k_tile2_avx512(int64_t kb, const float *a, int64_t as, const float *b0, const float *b1, float *c0,
                       float *c1, int64_t ldc, int acc) {
  __m512 x0 = _mm512_setzero_ps(), x1 = x0, x2 = x0, x3 = x0, x4 = x0, x5 = x0;
  __m512 y0 = x0, y1 = x0, y2 = x0, y3 = x0, y4 = x0, y5 = x0;
  if (acc) {
    x0 = _mm512_loadu_ps(c0), y0 = _mm512_loadu_ps(c1);
    x1 = _mm512_loadu_ps(c0 + ldc), y1 = _mm512_loadu_ps(c1 + ldc);
    x2 = _mm512_loadu_ps(c0 + 2 * ldc), y2 = _mm512_loadu_ps(c1 + 2 * ldc);
    x3 = _mm512_loadu_ps(c0 + 3 * ldc), y3 = _mm512_loadu_ps(c1 + 3 * ldc);
    x4 = _mm512_loadu_ps(c0 + 4 * ldc), y4 = _mm512_loadu_ps(c1 + 4 * ldc);
    x5 = _mm512_loadu_ps(c0 + 5 * ldc), y5 = _mm512_loadu_ps(c1 + 5 * ldc);
  }
  for (int64_t q = 0; q < kb; q++, a += as) {
    for (int kk = 0; kk < 8; kk++) {
      __m512 p = _mm512_loadu_ps(b0), r = _mm512_loadu_ps(b1), t;
      b0 += 16, b1 += 16;
      t = _mm512_set1_ps(a[kk]);
      x0 = _mm512_fmadd_ps(t, p, x0), y0 = _mm512_fmadd_ps(t, r, y0);
      t = _mm512_set1_ps(a[8 + kk]);
      x1 = _mm512_fmadd_ps(t, p, x1), y1 = _mm512_fmadd_ps(t, r, y1);
      t = _mm512_set1_ps(a[16 + kk]);
      x2 = _mm512_fmadd_ps(t, p, x2), y2 = _mm512_fmadd_ps(t, r, y2);
      t = _mm512_set1_ps(a[24 + kk]);
      x3 = _mm512_fmadd_ps(t, p, x3), y3 = _mm512_fmadd_ps(t, r, y3);
      t = _mm512_set1_ps(a[32 + kk]);
      x4 = _mm512_fmadd_ps(t, p, x4), y4 = _mm512_fmadd_ps(t, r, y4);
      t = _mm512_set1_ps(a[40 + kk]);
      x5 = _mm512_fmadd_ps(t, p, x5), y5 = _mm512_fmadd_ps(t, r, y5);
    }
  }
  _mm512_storeu_ps(c0, x0), _mm512_storeu_ps(c1, y0);
  _mm512_storeu_ps(c0 + ldc, x1), _mm512_storeu_ps(c1 + ldc, y1);
  _mm512_storeu_ps(c0 + 2 * ldc, x2), _mm512_storeu_ps(c1 + 2 * ldc, y2);
  _mm512_storeu_ps(c0 + 3 * ldc, x3), _mm512_storeu_ps(c1 + 3 * ldc, y3);
  _mm512_storeu_ps(c0 + 4 * ldc, x4), _mm512_storeu_ps(c1 + 4 * ldc, y4);
  _mm512_storeu_ps(c0 + 5 * ldc, x5), _mm512_storeu_ps(c1 + 5 * ldc, y5);
}

#else /* not built with AVX-512: re_kern_avx512() is 0, this is never called */

void re_k_tile2_avx512(int64_t kb, const float *a, int64_t as, const float *b0, const float *b1, float *c0,
                       float *c1, int64_t ldc, int acc) {
  (void)kb, (void)a, (void)as, (void)b0, (void)b1, (void)c0, (void)c1, (void)ldc, (void)acc;
}
#endif
