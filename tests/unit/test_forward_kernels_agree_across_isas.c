/* The fast path's micro-kernels agree: the AVX-512 two-panel kernel gives the same bits
 * as two AVX2 tiles (every output is the same chain of fused multiply-adds over k), for
 * 1 .. 97 blocks of k, with and without accumulation and for two row strides; and the
 * packed-weight product (one reduction block and several, an odd and an even number of
 * panels, bias + ReLU + residual, 1 and 2 threads) equals a float64 product to 1e-5
 * relative, the same bits at 1 and 2 threads. On a CPU without AVX2 nothing here runs
 * (the portable kernels are tested against PyTorch in tests/ref). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/nn/kern.h"
#include "check.h"

static uint64_t rng = 88172645463325252ull;
static float uni(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_floats(int64_t n) {
  float *p = NULL;
  if (re_kern_alloc(n, &p) != RE_OK)
    abort();
  for (int64_t i = 0; i < n; i++)
    p[i] = uni();
  return p;
}

static void tiles(void) {
  int64_t kbs[] = {1, 2, 3, 17, 97};
  for (size_t q = 0; q < sizeof kbs / sizeof *kbs; q++)
    for (int acc = 0; acc < 2; acc++)
      for (int64_t ldc = 16; ldc <= 48; ldc += 32) {
        int64_t kb = kbs[q];
        float *a = rand_floats(kb * 48), *b0 = rand_floats(kb * 128), *b1 = rand_floats(kb * 128);
        float *c = rand_floats(6 * ldc * 2), *r = malloc(sizeof(float) * (size_t)(12 * ldc));
        memcpy(r, c, sizeof(float) * (size_t)(12 * ldc));
        /* the reference: two AVX2 tiles; c0 at c, c1 16 columns on (ldc 48) or 6 rows on (ldc 16) */
        int64_t off1 = ldc == 16 ? 6 * ldc : 16;
        re_k_tile(kb, a, 48, b0, r, ldc, acc);
        re_k_tile(kb, a, 48, b1, r + off1, ldc, acc);
        /* float64 check of the first tile */
        double worst = 0;
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 16; j++) {
            double s = 0;
            for (int64_t k = 0; k < kb * 8; k++)
              s += (double)a[(k / 8) * 48 + i * 8 + k % 8] * b0[k * 16 + j];
            if (acc)
              s += c[i * ldc + j];
            double e = fabs(s - r[i * ldc + j]) / (1.0 + fabs(s));
            worst = e > worst ? e : worst;
          }
        CHECK(worst < 1e-5);
        re_k_tile2()(kb, a, 48, b0, b1, c, c + off1, ldc, acc);
        CHECK(memcmp(c, r, sizeof(float) * (size_t)(12 * ldc)) == 0);
        if (re_kern_avx512()) {
          memcpy(c, r, sizeof(float) * (size_t)(12 * ldc)); /* any start; acc reads it */
          float *c2 = malloc(sizeof(float) * (size_t)(12 * ldc));
          memcpy(c2, c, sizeof(float) * (size_t)(12 * ldc));
          re_k_tile(kb, a, 48, b0, c2, ldc, acc);
          re_k_tile(kb, a, 48, b1, c2 + off1, ldc, acc);
          re_k_tile2_avx512(kb, a, 48, b0, b1, c, c + off1, ldc, acc);
          CHECK(memcmp(c, c2, sizeof(float) * (size_t)(12 * ldc)) == 0);
          free(c2);
        }
        free(a), free(b0), free(b1), free(c), free(r);
      }
}

static void product(int64_t M, int64_t K, int64_t N) {
  float *x = rand_floats(M * K), *w = rand_floats(K * N), *res = rand_floats(M * N);
  re_pack p;
  CHECK_OK(re_pack_b(w, K, N, N, 1, &p));
  float *bias = calloc((size_t)(p.np * RE_NR), sizeof(float));
  for (int64_t j = 0; j < N; j++)
    bias[j] = uni();
  re_epi e = {bias, 1, RE_ACT_RELU};
  float *work = NULL, *y1 = calloc((size_t)(M * N), sizeof(float)), *y2 = calloc((size_t)(M * N), sizeof(float));
  CHECK_OK(re_kern_alloc(re_gemm_op_work(&p, 2), &work));
  re_gemm_rows(x, M, K, &p, &e, res, N, y1, N, work, 1);
  re_gemm_rows(x, M, K, &p, &e, res, N, y2, N, work, 2);
  CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(M * N)) == 0);
  double worst = 0, big = 1e-30;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = bias[j] + (double)res[i * N + j];
      for (int64_t k = 0; k < K; k++)
        s += (double)x[i * K + k] * w[k * N + j];
      s = s > 0 ? s : 0;
      double d = fabs(s - y1[i * N + j]);
      worst = d > worst ? d : worst;
      big = fabs(s) > big ? fabs(s) : big;
    }
  if (worst / big >= 1e-5)
    fprintf(stderr, "product %lld x %lld x %lld: relative error %.2e\n", (long long)M, (long long)K, (long long)N,
            worst / big);
  CHECK(worst / big < 1e-5);
  re_pack_free(&p);
  free(x), free(w), free(res), free(bias), free(work), free(y1), free(y2);
}

int main(void) {
  if (!re_kern_fast()) {
    printf("the fast kernels are not in use (no AVX2 + FMA on this CPU, or REPEVAL_NN_KERNELS=plain)\n");
    return 0;
  }
  printf("AVX-512 kernel %s\n", re_kern_avx512() ? "in use" : "not in use (AVX2 tiles)");
  tiles();
  product(37, 200, 70);   /* one reduction block, 5 panels (the last one alone) */
  product(13, 205, 96);   /* K not a multiple of 8, 6 panels */
  product(50, 1700, 83);  /* three reduction blocks (partial sums kept), 6 panels, columns past N */
  product(300, 64, 48);   /* several row blocks, 3 panels */
  return check_report();
}
