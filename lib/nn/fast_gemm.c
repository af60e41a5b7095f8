/* Products with weights packed once per checkpoint (see kern.h): B in panels of 16
 * columns, A packed per call into slivers of 6 rows by chunks that stay in the L2
 * cache, one micro-kernel, and the bias, residual and activation applied to each tile
 * before it is stored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kern.h"

#define L2_BUDGET (192 * 1024) /* bytes of packed A a task keeps close */

re_status re_pack_b(const float *src, int64_t K, int64_t N, int64_t sk, int64_t sn, re_pack *out) {
  memset(out, 0, sizeof *out);
  out->K = K;
  out->Kp = re_pad8(K);
  out->N = N;
  out->np = (N + RE_NR - 1) / RE_NR;
  int64_t n;
  RE_TRY(re_mul_i64(out->np * RE_NR, out->Kp, &n));
  RE_TRY(re_kern_alloc(n, &out->w));
  for (int64_t j = 0; j < out->np; j++)
    for (int64_t k = 0; k < out->Kp; k++) {
      float *d = out->w + (j * out->Kp + k) * RE_NR;
      for (int64_t c = 0; c < RE_NR; c++) {
        int64_t col = j * RE_NR + c;
        d[c] = k < K && col < N ? src[k * sk + col * sn] : 0.0f;
      }
    }
  return RE_OK;
}

void re_pack_free(re_pack *p) {
  free(p->w);
  memset(p, 0, sizeof *p);
}

/* Rows of A per task: packed chunks of about L2_BUDGET bytes, a multiple of 6. */
static int64_t chunk_rows(int64_t Kp) {
  int64_t r = L2_BUDGET / (Kp * 4) / RE_MR * RE_MR;
  return r < RE_MR ? RE_MR : r > 240 ? 240 : r;
}

int64_t re_gemm_work(int64_t K, int threads) {
  int64_t Kp = re_pad8(K);
  return (int64_t)threads * (chunk_rows(Kp) * Kp + 2 * RE_MR * RE_NR + 64);
}

/* Slivers of rows [r0, r0 + mc) of x (rows past M repeat row M - 1). */
static void pack_rows(const float *x, int64_t M, int64_t ldx, int64_t K, int64_t Kp, int64_t r0, int64_t mc,
                      float *a) {
  int64_t ns = (mc + RE_MR - 1) / RE_MR;
  for (int64_t s = 0; s < ns; s++)
    for (int r = 0; r < RE_MR; r++) {
      int64_t row = r0 + s * RE_MR + r;
      const float *src = x + (row < M ? row : M - 1) * ldx;
      float *d = a + s * Kp * RE_MR + r * 8;
      int64_t k = 0;
      for (; k + 8 <= K; k += 8)
        memcpy(d + k * RE_MR, src + k, 8 * sizeof(float));
      if (k < K) {
        memset(d + k * RE_MR, 0, 8 * sizeof(float));
        memcpy(d + k * RE_MR, src + k, sizeof(float) * (size_t)(K - k));
      }
    }
}

void re_gemm_rows(const float *x, int64_t M, int64_t ldx, const re_pack *b, const re_epi *e, const float *res,
                  int64_t ldr, float *y, int64_t ldy, float *work, int threads) {
  int64_t Kp = b->Kp, mc = chunk_rows(Kp), nchunks = (M + mc - 1) / mc;
  /* few chunks: split the panels too, so that every thread has work */
  int64_t groups = nchunks >= threads ? 1 : (threads + nchunks - 1) / nchunks;
  if (groups > b->np)
    groups = b->np;
  int64_t tasks = nchunks * groups, per_thread = mc * Kp + 2 * RE_MR * RE_NR + 64;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    float *a = work + (int64_t)tid * per_thread, *tile = a + mc * Kp;
    tile = (float *)(((uintptr_t)tile + 63) & ~(uintptr_t)63);
    int64_t c = task / groups, grp = task % groups, r0 = c * mc, rows = M - r0 < mc ? M - r0 : mc;
    int64_t j0 = grp * b->np / groups, j1 = (grp + 1) * b->np / groups;
    pack_rows(x, M, ldx, b->K, Kp, r0, rows, a);
    for (int64_t j = j0; j < j1; j++) {
      int nc = b->N - j * RE_NR < RE_NR ? (int)(b->N - j * RE_NR) : RE_NR;
      const float *bias = e->bias ? e->bias + j * RE_NR : NULL;
      for (int64_t s = 0; s * RE_MR < rows; s++) {
        int64_t i = r0 + s * RE_MR;
        int mr = rows - s * RE_MR < RE_MR ? (int)(rows - s * RE_MR) : RE_MR;
        float *dst[RE_MR];
        const float *rp[RE_MR];
        for (int r = 0; r < mr; r++) {
          dst[r] = y + (i + r) * ldy + j * RE_NR;
          rp[r] = res ? res + (i + r) * ldr + j * RE_NR : NULL;
        }
        re_k_tile(Kp / 8, a + s * Kp * RE_MR, 48, b->w + j * Kp * RE_NR, tile, RE_NR);
        re_k_store(tile, mr, nc, dst, 8, res ? rp : NULL, bias, e);
      }
    }
  }
}
