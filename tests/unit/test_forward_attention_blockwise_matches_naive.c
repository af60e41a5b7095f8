/* The blockwise attention kernel (online softmax over key blocks, grouped-query
 * heads read in place) equals a naive float64 softmax(q k^T * scale) v for every
 * block size, sequence length (1 .. 100, not multiples of the blocks), head grouping
 * (4 query heads on 4, 2, 1 key/value heads), with and without the causal mask, and
 * with key-padding masks (right, left, holes); rows that see no key are zero. The
 * rotary kernel equals the rotate_half formula. Tolerance 1e-5 relative to the
 * largest output. */
#include <stdint.h>
#include <stdlib.h>

#include "../../lib/nn/ops.h"
#include "check.h"

static void naive(const re_attn_args *a, double *out) {
  int64_t T = a->T, hd = a->head_dim, rep = a->heads / a->kv_heads;
  double *s = malloc(sizeof(double) * (size_t)T);
  for (int64_t b = 0; b < a->B; b++)
    for (int64_t h = 0; h < a->heads; h++)
      for (int64_t i = 0; i < T; i++) {
        const float *q = a->q + (b * T + i) * a->ldq + h * a->q_hs;
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < T; j++) {
          int visible = (!a->causal || j <= i) && (!a->mask || a->mask[b * T + j]);
          const float *k = a->k + (b * T + j) * a->ldk + (h / rep) * a->k_hs;
          double dot = 0;
          for (int64_t d = 0; d < hd; d++)
            dot += (double)q[d] * k[d];
          s[j] = visible ? dot * a->scale : -INFINITY;
          if (s[j] > m)
            m = s[j];
        }
        double *o = out + (b * T + i) * a->heads * hd + h * hd;
        for (int64_t d = 0; d < hd; d++)
          o[d] = 0;
        if (m == -INFINITY)
          continue;
        for (int64_t j = 0; j < T; j++) {
          s[j] = exp(s[j] - m);
          sum += s[j];
        }
        for (int64_t j = 0; j < T; j++) {
          const float *v = a->v + (b * T + j) * a->ldv + (h / rep) * a->v_hs;
          for (int64_t d = 0; d < hd; d++)
            o[d] += s[j] / sum * v[d];
        }
      }
  free(s);
}

static void fill(float *x, int64_t n) {
  for (int64_t k = 0; k < n; k++)
    x[k] = (float)check_normal();
}

static void one_case(int64_t T, int64_t Hkv, int causal, int mask_kind, int64_t block) {
  const int64_t B = 3, H = 4, hd = 16, pad = 3;
  re_attn_args a = {0};
  a.B = B, a.T = T, a.heads = H, a.kv_heads = Hkv, a.head_dim = hd;
  a.ldq = H * hd + pad, a.ldk = a.ldv = Hkv * hd + pad; /* row strides wider than the data */
  a.q_hs = a.k_hs = a.v_hs = hd;
  float *q = malloc(sizeof(float) * (size_t)(B * T * a.ldq)), *k = malloc(sizeof(float) * (size_t)(B * T * a.ldk));
  float *v = malloc(sizeof(float) * (size_t)(B * T * a.ldv)), *out = malloc(sizeof(float) * (size_t)(B * T * H * hd));
  double *want = malloc(sizeof(double) * (size_t)(B * T * H * hd));
  uint8_t *mask = malloc((size_t)(B * T));
  fill(q, B * T * a.ldq), fill(k, B * T * a.ldk), fill(v, B * T * a.ldv);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      int64_t len = T - (b * T) / 3; /* sample 0 full, the others shorter */
      if (mask_kind == 1)
        mask[b * T + t] = t < len; /* right padding */
      else if (mask_kind == 2)
        mask[b * T + t] = t >= T - len; /* left padding: early queries see no key */
      else
        mask[b * T + t] = check_uniform() < 0.7 || t == 0; /* holes */
    }
  a.q = q, a.k = k, a.v = v, a.out = out, a.ldo = H * hd;
  a.scale = 0.25f;
  a.causal = causal;
  a.mask = mask_kind ? mask : NULL;
  a.block_q = block < T ? block : T;
  a.block_k = (block * 2 + 1) / 3 < T ? (block * 2 + 1) / 3 : T; /* key blocks of another size */
  if (a.block_k < 1)
    a.block_k = 1;
  float *work = malloc(sizeof(float) * (size_t)re_op_attention_workspace(a.block_q, a.block_k));
  re_op_attention(&a, work);
  naive(&a, want);
  double err = 0, scale = 1e-30;
  for (int64_t i = 0; i < B * T * H * hd; i++) {
    err = fmax(err, fabs(out[i] - want[i]));
    scale = fmax(scale, fabs(want[i]));
  }
  if (!(err <= 1e-5 * scale))
    fprintf(stderr, "T %lld, kv heads %lld, causal %d, mask %d, block %lld: error %.3g\n", (long long)T,
            (long long)Hkv, causal, mask_kind, (long long)block, err / scale);
  CHECK(err <= 1e-5 * scale);
  free(q), free(k), free(v), free(out), free(want), free(mask), free(work);
}

static void rope_case(void) {
  const int64_t rows = 5, heads = 2, hstride = 10, half = 3, ld = 23, npos = 7;
  float x[5 * 23], x0[5 * 23], c[7 * 3], s[7 * 3];
  int32_t pos[5] = {0, 6, 2, 2, 5};
  fill(x, rows * ld);
  memcpy(x0, x, sizeof x);
  for (int64_t p = 0; p < npos; p++)
    for (int64_t i = 0; i < half; i++) {
      double ang = (double)p / pow(100.0, (double)i / (double)half);
      c[p * half + i] = (float)cos(ang), s[p * half + i] = (float)sin(ang);
    }
  re_op_rope(x, rows, ld, heads, hstride, half, pos, c, s);
  int ok = 1;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t col = 0; col < ld; col++) {
      int64_t h = col / hstride, i = col % hstride;
      double want = x0[r * ld + col];
      if (h < heads && i < 2 * half) {
        int64_t j = i % half;
        double cc = c[pos[r] * half + j], ss = s[pos[r] * half + j];
        const float *base = x0 + r * ld + h * hstride;
        want = i < half ? base[j] * cc - base[j + half] * ss : base[j + half] * cc + base[j] * ss;
      }
      ok &= fabs(x[r * ld + col] - want) <= 1e-6 * (1 + fabs(want));
    }
  CHECK(ok);
}

int main(void) {
  check_seed(11);
  static const int64_t lengths[] = {1, 5, 33, 64, 100};
  static const int64_t blocks[] = {1, 8, 16, 64, 128};
  for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
    for (int64_t Hkv = 4; Hkv >= 1; Hkv /= 2)
      for (int causal = 0; causal <= 1; causal++)
        for (int mk = 0; mk <= 3; mk++)
          for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++)
            one_case(lengths[li], Hkv, causal, mk, blocks[bi]);
  rope_case();
  return check_report();
}
