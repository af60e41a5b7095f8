/* Multi-head self-attention of the fast path (torchvision's nn.MultiheadAttention with a
 * packed in_proj): the projections with packed weights, then per sample and head
 * S = Q K^T, softmax(S / sqrt(d)) and S V with K and V packed per head, the heads spread
 * over the threads; the output projection may add the residual in its epilogue. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fast.h"

/* Per-thread floats of one head's work: K^T and V packed, the scores, the products' A slivers. */
static int64_t head_floats(int64_t T, int64_t hd) {
  re_pack pk = {hd, re_pad8(hd), T, (T + RE_NR - 1) / RE_NR, NULL};
  re_pack pv = {T, re_pad8(T), hd, (hd + RE_NR - 1) / RE_NR, NULL};
  int64_t g1 = re_gemm_op_work(&pk, 1), g2 = re_gemm_op_work(&pv, 1);
  return re_pack_floats(hd, T) + re_pack_floats(T, hd) + T * T + (g1 > g2 ? g1 : g2) + 64;
}

int64_t re_fmha_work(const re_fast_lin *in, const re_fast_lin *out, int64_t B, int64_t T, int64_t heads,
                     int threads) {
  int64_t D = out->w.N, g1 = re_gemm_op_work(&in->w, threads), g2 = re_gemm_op_work(&out->w, threads);
  return 4 * B * T * D + (int64_t)threads * head_floats(T, D / heads) + (g1 > g2 ? g1 : g2) + 128;
}

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

void re_fmha_run(const re_fast_lin *in, const re_fast_lin *out, const float *x, int64_t B, int64_t T, int64_t D,
                 int64_t heads, const float *res, float *y, float *work, int threads) {
  int64_t hd = D / heads, per = head_floats(T, hd);
  float *qkv = work, *ctx = qkv + 3 * B * T * D, *heads_w = ctx + B * T * D;
  float *gw = align64(heads_w + (int64_t)threads * per);
  float scale = 1.0f / sqrtf((float)hd);
  re_gemm_rows(x, B * T, D, &in->w, &in->epi, NULL, 0, qkv, 3 * D, gw, threads);
  re_epi none = {NULL, 0, RE_ACT_RELU};
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t bh = 0; bh < B * heads; bh++) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    int64_t b = bh / heads, h = bh % heads;
    float *w = align64(heads_w + (int64_t)tid * per);
    float *kw = w, *vw = align64(kw + re_pack_floats(hd, T)), *S = align64(vw + re_pack_floats(T, hd));
    float *g = align64(S + T * T);
    const float *Q = qkv + b * T * 3 * D + h * hd, *K = Q + D, *V = Q + 2 * D;
    re_pack pk, pv;
    re_pack_b_into(K, hd, T, 1, 3 * D, kw, &pk); /* B[d][key] = K[key][d] */
    re_gemm_rows(Q, T, 3 * D, &pk, &none, NULL, 0, S, T, g, 1);
    re_k_softmax_rows(S, T, T, T, scale);
    re_pack_b_into(V, T, hd, 3 * D, 1, vw, &pv); /* B[key][d] = V[key][d] */
    re_gemm_rows(S, T, T, &pv, &none, NULL, 0, ctx + b * T * D + h * hd, D, g, 1);
  }
  re_gemm_rows(ctx, B * T, D, &out->w, &out->epi, res, D, y, D, gw, threads);
}
