/* Attention kernels of the forward engine (see ops.h): rotary position embeddings
 * and blockwise self-attention with an online softmax. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void re_op_rope(float *x, int64_t rows, int64_t ld, int64_t heads, int64_t hstride, int64_t half,
                const int32_t *pos, const float *cos_t, const float *sin_t) {
  for (int64_t r = 0; r < rows; r++) {
    const float *c = cos_t + (int64_t)pos[r] * half, *s = sin_t + (int64_t)pos[r] * half;
    for (int64_t h = 0; h < heads; h++) {
      float *v = x + r * ld + h * hstride;
      for (int64_t i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

int64_t re_op_attention_workspace(int64_t block_q, int64_t block_k) { return block_q * block_k + 2 * block_q; }

/* One block of queries [i0, i0 + nq) of sample b, head h, against every visible key. */
static void query_block(const re_attn_args *a, int64_t b, int64_t h, int64_t i0, int64_t nq, float *S, float *mx,
                        float *sum) {
  int64_t T = a->T, hd = a->head_dim, g = h / (a->heads / a->kv_heads);
  const float *Q = a->q + (b * T + i0) * a->ldq + h * a->q_hs;
  const uint8_t *mask = a->mask ? a->mask + b * T : NULL;
  float *O = a->out + (b * T + i0) * a->ldo + h * hd;
  int64_t bk = a->block_k, jend = a->causal ? i0 + nq : T;
  for (int64_t r = 0; r < nq; r++) {
    mx[r] = -INFINITY;
    sum[r] = 0.0f;
    memset(O + r * a->ldo, 0, sizeof(float) * (size_t)hd);
  }
  for (int64_t j0 = 0; j0 < jend; j0 += bk) {
    int64_t nk = jend - j0 < bk ? jend - j0 : bk;
    if (mask) { /* a block of padding only adds nothing */
      int64_t any = 0;
      for (int64_t c = 0; c < nk && !any; c++)
        any = mask[j0 + c];
      if (!any)
        continue;
    }
    const float *K = a->k + (b * T + j0) * a->ldk + g * a->k_hs;
    const float *V = a->v + (b * T + j0) * a->ldv + g * a->v_hs;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)hd, a->scale, Q, (int)a->ldq, K,
                (int)a->ldk, 0.0f, S, (int)nk);
    for (int64_t r = 0; r < nq; r++) {
      float *s = S + r * nk, m = mx[r];
      int64_t lim = a->causal ? i0 + r - j0 + 1 : nk; /* keys j0 + c <= i0 + r */
      if (lim > nk)
        lim = nk;
      for (int64_t c = 0; c < nk; c++)
        if (c >= lim || (mask && !mask[j0 + c]))
          s[c] = -INFINITY;
        else if (s[c] > m)
          m = s[c];
      if (m == -INFINITY) { /* nothing visible yet: the row stays empty */
        for (int64_t c = 0; c < nk; c++)
          s[c] = 0.0f;
        continue;
      }
      float alpha = expf(mx[r] - m), l = 0.0f; /* exp(-inf) = 0 on the first visible block */
      for (int64_t c = 0; c < nk; c++) {
        s[c] = expf(s[c] - m);
        l += s[c];
      }
      sum[r] = sum[r] * alpha + l;
      mx[r] = m;
      if (alpha != 1.0f) {
        float *o = O + r * a->ldo;
        for (int64_t d = 0; d < hd; d++)
          o[d] *= alpha;
      }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)hd, (int)nk, 1.0f, S, (int)nk, V,
                (int)a->ldv, 1.0f, O, (int)a->ldo);
  }
  for (int64_t r = 0; r < nq; r++) {
    float *o = O + r * a->ldo, inv = sum[r] > 0.0f ? 1.0f / sum[r] : 0.0f;
    for (int64_t d = 0; d < hd; d++)
      o[d] *= inv;
  }
}

void re_op_attention(const re_attn_args *a, float *work) {
  int64_t bq = a->block_q;
  float *S = work, *mx = work + bq * a->block_k, *sum = mx + bq;
  for (int64_t b = 0; b < a->B; b++)
    for (int64_t h = 0; h < a->heads; h++)
      for (int64_t i0 = 0; i0 < a->T; i0 += bq)
        query_block(a, b, h, i0, a->T - i0 < bq ? a->T - i0 : bq, S, mx, sum);
}
