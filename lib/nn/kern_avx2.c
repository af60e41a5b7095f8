/* AVX2 + FMA kernels of the fast path (see kern.h). This file is compiled with -mavx2
 * -mfma; nothing here runs unless re_kern_fast() said the CPU has both. Transcendental
 * functions come from SLEEF (Shibata & Petrogalli 2020; 1-ulp variants) when it is built
 * in, else from libm lane by lane. */
#include "kern.h"

#ifdef __AVX2__
#include <immintrin.h>
#include <math.h>
#include <string.h>

#ifdef REPEVAL_HAVE_SLEEF
#include <sleef.h>
#endif

typedef __m256 v8;

/* ---- micro-kernel ---------------------------------------------------------------- */

void re_k_tile(int64_t kb, const float *a, int64_t as, const float *b, float *c, int64_t ldc, int acc) {
  v8 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
     c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  if (acc) {
    c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
    c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
    c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
  }
  for (int64_t q = 0; q < kb; q++, a += as) {
    for (int kk = 0; kk < 8; kk++) {
      v8 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), t;
      b += 16;
      t = _mm256_broadcast_ss(a + kk);
      c00 = _mm256_fmadd_ps(t, b0, c00);
      c01 = _mm256_fmadd_ps(t, b1, c01);
      t = _mm256_broadcast_ss(a + 8 + kk);
      c10 = _mm256_fmadd_ps(t, b0, c10);
      c11 = _mm256_fmadd_ps(t, b1, c11);
      t = _mm256_broadcast_ss(a + 16 + kk);
      c20 = _mm256_fmadd_ps(t, b0, c20);
      c21 = _mm256_fmadd_ps(t, b1, c21);
      t = _mm256_broadcast_ss(a + 24 + kk);
      c30 = _mm256_fmadd_ps(t, b0, c30);
      c31 = _mm256_fmadd_ps(t, b1, c31);
      t = _mm256_broadcast_ss(a + 32 + kk);
      c40 = _mm256_fmadd_ps(t, b0, c40);
      c41 = _mm256_fmadd_ps(t, b1, c41);
      t = _mm256_broadcast_ss(a + 40 + kk);
      c50 = _mm256_fmadd_ps(t, b0, c50);
      c51 = _mm256_fmadd_ps(t, b1, c51);
    }
  }
  _mm256_storeu_ps(c, c00);
  _mm256_storeu_ps(c + 8, c01);
  _mm256_storeu_ps(c + ldc, c10);
  _mm256_storeu_ps(c + ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20);
  _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30);
  _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40);
  _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50);
  _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* ---- vector functions ------------------------------------------------------------ */

#ifdef REPEVAL_HAVE_SLEEF
static inline v8 exp8(v8 x) { return Sleef_expf8_u10avx2(x); }
static inline v8 tanh8(v8 x) { return Sleef_tanhf8_u10avx2(x); }
#else
static inline v8 lanes(v8 x, float (*f)(float)) {
  float v[8];
  _mm256_storeu_ps(v, x);
  for (int k = 0; k < 8; k++)
    v[k] = f(v[k]);
  return _mm256_loadu_ps(v);
}
static inline v8 exp8(v8 x) { return lanes(x, expf); }
static inline v8 tanh8(v8 x) { return lanes(x, tanhf); }
#endif

/* erf by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), five times faster than
 * SLEEF's 1-ulp erff in bench_nn_kernels: erf|x| = 1 - t (a1 + t (a2 + ... a5 t)) e^(-x^2),
 * t = 1 / (1 + p |x|), the sign restored after. */
static inline v8 erf8(v8 x) {
  v8 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f)), ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  v8 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), ax, _mm256_set1_ps(1.0f)));
  v8 p = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  v8 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
  v8 r = _mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f));
  return _mm256_or_ps(r, sign);
}

/* x / (1 + exp(-s x)): SiLU (s = 1), QuickGELU (1.702) and the tanh GELU written this way */
static inline v8 x_sigmoid(v8 x, v8 negs_x) {
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(negs_x)));
}

static inline v8 act8(v8 x, re_act a) {
  switch (a) {
  case RE_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps()); /* NaN -> 0, as the plain loop */
  case RE_ACT_GELU: {
    v8 h = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
    return _mm256_fmadd_ps(h, erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f))), h);
  }
  case RE_ACT_SILU: return x_sigmoid(x, _mm256_sub_ps(_mm256_setzero_ps(), x));
  case RE_ACT_TANH: return tanh8(x);
  case RE_ACT_SIGMOID:
    return _mm256_div_ps(_mm256_set1_ps(1.0f),
                         _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
  case RE_ACT_GELU_TANH: {
    v8 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    v8 u = _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x);
    return x_sigmoid(x, _mm256_mul_ps(_mm256_set1_ps(-1.5957691216057308f), u));
  }
  case RE_ACT_QUICK_GELU: return x_sigmoid(x, _mm256_mul_ps(_mm256_set1_ps(-1.702f), x));
  }
  return x;
}

void re_k_act(re_act a, const float *x, int64_t n, float *y) {
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    _mm256_storeu_ps(y + k, act8(_mm256_loadu_ps(x + k), a));
  if (k < n) {
    float t[8] = {0};
    memcpy(t, x + k, sizeof(float) * (size_t)(n - k));
    v8 r = act8(_mm256_loadu_ps(t), a);
    _mm256_storeu_ps(t, r);
    memcpy(y + k, t, sizeof(float) * (size_t)(n - k));
  }
}

/* ---- epilogue ---------------------------------------------------------------------- */

static inline v8 epi8(v8 v, const float *bias, const float *res, const re_epi *e) {
  if (bias)
    v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
  if (res)
    v = _mm256_add_ps(v, _mm256_loadu_ps(res));
  return e->has_act ? act8(v, e->act) : v;
}

void re_k_store(const float *tile, int mr, int nc, float *const *dst, int64_t off8, const float *const *res,
                const float *bias, const re_epi *e) {
  for (int r = 0; r < mr; r++) {
    const float *t = tile + r * RE_NR;
    for (int h = 0; h < 2 && h * 8 < nc; h++) {
      const float *bh = bias ? bias + 8 * h : NULL, *rh = res ? res[r] + h * off8 : NULL;
      float *d = dst[r] + h * off8;
      int w = nc - 8 * h < 8 ? nc - 8 * h : 8;
      if (w == 8) {
        _mm256_storeu_ps(d, epi8(_mm256_loadu_ps(t + 8 * h), bh, rh, e));
        continue;
      }
      float tb[8] = {0}, rb[8] = {0}, o[8];
      if (bh)
        memcpy(tb, bh, sizeof(float) * (size_t)w);
      if (rh)
        memcpy(rb, rh, sizeof(float) * (size_t)w);
      _mm256_storeu_ps(o, epi8(_mm256_loadu_ps(t + 8 * h), bh ? tb : NULL, rh ? rb : NULL, e));
      memcpy(d, o, sizeof(float) * (size_t)w);
    }
  }
}

/* ---- Winograd F(4x4, 3x3) ---------------------------------------------------------- */

/* B^T d along one axis (6 values, stride s -> stride os), points 0, +-1, +-2, inf:
 * o0 = 4 d0 - 5 d2 + d4           o3 = -2 (d1 - d3) - d2 + d4
 * o1 = -4 (d1 + d2) + d3 + d4     o4 =  2 (d1 - d3) - d2 + d4
 * o2 =  4 (d1 - d2) - d3 + d4     o5 = 4 d1 - 5 d3 + d5 */
static inline void bt6(const v8 *d, int s, v8 *o, int os) {
  v8 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  v8 f4 = _mm256_set1_ps(4.0f), f5 = _mm256_set1_ps(5.0f), f2 = _mm256_set1_ps(2.0f);
  o[0] = _mm256_fmadd_ps(f4, d0, _mm256_fnmadd_ps(f5, d2, d4));
  o[os] = _mm256_fnmadd_ps(f4, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4));
  o[2 * os] = _mm256_fmadd_ps(f4, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3));
  v8 t5 = _mm256_sub_ps(d1, d3), t6 = _mm256_sub_ps(d4, d2);
  o[3 * os] = _mm256_fnmadd_ps(f2, t5, t6);
  o[4 * os] = _mm256_fmadd_ps(f2, t5, t6);
  o[5 * os] = _mm256_fmadd_ps(f4, d1, _mm256_fnmadd_ps(f5, d3, d5));
}

/* A^T m along one axis (6 -> 4): rows (1 1 1 1 1 0), (0 1 -1 2 -2 0), (0 1 1 4 4 0), (0 1 -1 8 -8 1) */
static inline void at6(const v8 *m, int s, v8 *o, int os) {
  v8 m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
  v8 a = _mm256_add_ps(m1, m2), b = _mm256_sub_ps(m1, m2), c = _mm256_add_ps(m3, m4), d = _mm256_sub_ps(m3, m4);
  o[0] = _mm256_add_ps(_mm256_add_ps(m0, a), c);
  o[os] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
  o[2 * os] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
  o[3 * os] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), m5);
}

void re_k_wino_input(const re_wino_geom *g, const float *x, int64_t t0, int64_t nt, float *V) {
  int64_t ns = (nt + RE_MR - 1) / RE_MR, CB = g->CB, H = g->H, W = g->W, per = g->th * g->tw;
  int64_t xs = ns * CB * 48; /* floats between positions xi */
  v8 zero = _mm256_setzero_ps();
  for (int64_t t = 0; t < ns * RE_MR; t++) {
    int64_t tt = t0 + (t < nt ? t : nt - 1), b = tt / per, r = tt % per, ty = r / g->tw, tx = r % g->tw;
    int64_t y0 = ty * 4 - g->ph, x0 = tx * 4 - g->pw;
    int inner = y0 >= 0 && y0 + 6 <= H && x0 >= 0 && x0 + 6 <= W;
    for (int64_t cb = 0; cb < CB; cb++) {
      const float *src = x + (b * CB + cb) * H * W * 8;
      v8 d[36], tmp[36];
      for (int i = 0; i < 6; i++) {
        int64_t iy = y0 + i;
        for (int j = 0; j < 6; j++) {
          int64_t ix = x0 + j;
          d[i * 6 + j] = inner || (iy >= 0 && iy < H && ix >= 0 && ix < W) ? _mm256_loadu_ps(src + (iy * W + ix) * 8)
                                                                            : zero;
        }
      }
      for (int j = 0; j < 6; j++) /* columns, then rows: B^T d B */
        bt6(d + j, 6, tmp + j, 6);
      for (int i = 0; i < 6; i++)
        bt6(tmp + i * 6, 1, d + i * 6, 1);
      float *vb = V + ((t / RE_MR) * CB + cb) * 48 + (t % RE_MR) * 8;
      for (int xi = 0; xi < 36; xi++)
        _mm256_storeu_ps(vb + xi * xs, d[xi]);
    }
  }
}

void re_k_wino_output(const re_wino_geom *g, const float *M, int64_t ms, int64_t npad, int64_t t0, int64_t nt,
                      const re_epi *e, const float *res, float *y) {
  int64_t per = g->th * g->tw, Ho = g->Ho, Wo = g->Wo;
  for (int64_t t = 0; t < nt; t++) {
    int64_t tt = t0 + t, b = tt / per, r = tt % per, ty = r / g->tw, tx = r % g->tw;
    for (int64_t ob = 0; ob < g->COB; ob++) {
      v8 m[36], tmp[24], o[16];
      for (int xi = 0; xi < 36; xi++)
        m[xi] = _mm256_loadu_ps(M + xi * ms + t * npad + ob * 8);
      for (int j = 0; j < 6; j++)
        at6(m + j, 6, tmp + j, 6);
      for (int i = 0; i < 4; i++)
        at6(tmp + i * 6, 1, o + i * 4, 1);
      int64_t plane = (b * g->COB + ob) * Ho * Wo * 8;
      const float *bias = e->bias ? e->bias + ob * 8 : NULL;
      for (int i = 0; i < 4 && ty * 4 + i < Ho; i++)
        for (int j = 0; j < 4 && tx * 4 + j < Wo; j++) {
          int64_t off = plane + ((ty * 4 + i) * Wo + tx * 4 + j) * 8;
          _mm256_storeu_ps(y + off, epi8(o[i * 4 + j], bias, res ? res + off : NULL, e));
        }
    }
  }
}

/* ---- element-wise -------------------------------------------------------------------- */

void re_k_affine_blk(const float *x, int64_t B, int64_t CB, int64_t hw, const float *scale, const float *shift,
                     float *y) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t cb = 0; cb < CB; cb++) {
      v8 s = _mm256_loadu_ps(scale + cb * 8), t = _mm256_loadu_ps(shift + cb * 8);
      const float *xs = x + (b * CB + cb) * hw * 8;
      float *ys = y + (b * CB + cb) * hw * 8;
      for (int64_t p = 0; p < hw; p++)
        _mm256_storeu_ps(ys + p * 8, _mm256_fmadd_ps(_mm256_loadu_ps(xs + p * 8), s, t));
    }
}

void re_k_add(const float *x, const float *r, int64_t n, int relu, float *y) {
  int64_t k = 0;
  v8 zero = _mm256_setzero_ps();
  for (; k + 8 <= n; k += 8) {
    v8 v = _mm256_add_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(r + k));
    _mm256_storeu_ps(y + k, relu ? _mm256_max_ps(v, zero) : v);
  }
  for (; k < n; k++) {
    float v = x[k] + r[k];
    y[k] = relu ? (v > 0 ? v : 0.0f) : v;
  }
}

static inline float hsum8(v8 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

static inline float hmax8(v8 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

void re_k_softmax_rows(float *s, int64_t rows, int64_t n, int64_t ld, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = s + r * ld, m = -INFINITY;
    int64_t k = 0;
    v8 vm = _mm256_set1_ps(-INFINITY);
    for (; k + 8 <= n; k += 8)
      vm = _mm256_max_ps(vm, _mm256_loadu_ps(row + k));
    m = hmax8(vm);
    for (; k < n; k++)
      m = row[k] > m ? row[k] : m;
    v8 vsum = _mm256_setzero_ps(), mm = _mm256_set1_ps(m), sc = _mm256_set1_ps(scale);
    float sum = 0;
    for (k = 0; k + 8 <= n; k += 8) {
      v8 e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + k), mm), sc));
      _mm256_storeu_ps(row + k, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    for (; k < n; k++) {
      row[k] = expf((row[k] - m) * scale);
      sum += row[k];
    }
    sum += hsum8(vsum);
    v8 inv = _mm256_set1_ps(1.0f / sum);
    for (k = 0; k + 8 <= n; k += 8)
      _mm256_storeu_ps(row + k, _mm256_mul_ps(_mm256_loadu_ps(row + k), inv));
    for (; k < n; k++)
      row[k] *= 1.0f / sum;
  }
}

void re_k_layernorm(const float *x, int64_t rows, int64_t D, const float *gamma, const float *beta, double eps,
                    float *y) {
  for (int64_t r = 0; r < rows; r++) {
    const float *s = x + r * D;
    float *d = y + r * D;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    int64_t k = 0;
    for (; k + 8 <= D; k += 8) {
      v8 v = _mm256_loadu_ps(s + k);
      a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double lanes[4], mu;
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    mu = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; k < D; k++)
      mu += s[k];
    mu /= (double)D;
    __m256d m4 = _mm256_set1_pd(mu), q0 = _mm256_setzero_pd(), q1 = q0;
    for (k = 0; k + 8 <= D; k += 8) {
      v8 v = _mm256_loadu_ps(s + k);
      __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m4);
      __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m4);
      q0 = _mm256_fmadd_pd(d0, d0, q0);
      q1 = _mm256_fmadd_pd(d1, d1, q1);
    }
    double var;
    _mm256_storeu_pd(lanes, _mm256_add_pd(q0, q1));
    var = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; k < D; k++)
      var += (s[k] - mu) * (s[k] - mu);
    var /= (double)D;
    float inv = (float)(1.0 / sqrt(var + eps)), mf = (float)mu;
    v8 vi = _mm256_set1_ps(inv), vm = _mm256_set1_ps(mf);
    for (k = 0; k + 8 <= D; k += 8) {
      v8 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(s + k), vm), vi);
      if (gamma)
        v = _mm256_mul_ps(v, _mm256_loadu_ps(gamma + k));
      if (beta)
        v = _mm256_add_ps(v, _mm256_loadu_ps(beta + k));
      _mm256_storeu_ps(d + k, v);
    }
    for (; k < D; k++)
      d[k] = (s[k] - mf) * inv * (gamma ? gamma[k] : 1.0f) + (beta ? beta[k] : 0.0f);
  }
}

/* ---- pooling on blocked images ------------------------------------------------------- */

void re_k_maxpool_blk(const re_conv_geom *g, const float *x, int64_t B, float *y) {
  int64_t CB = (g->C + 7) / 8;
  for (int64_t bc = 0; bc < B * CB; bc++) {
    const float *img = x + bc * g->H * g->W * 8;
    float *out = y + bc * g->Ho * g->Wo * 8;
    for (int64_t oy = 0; oy < g->Ho; oy++)
      for (int64_t ox = 0; ox < g->Wo; ox++) {
        v8 m = _mm256_set1_ps(-INFINITY);
        for (int64_t i = 0; i < g->kh; i++) {
          int64_t iy = oy * g->sh - g->ph + i * g->dh;
          if (iy < 0 || iy >= g->H)
            continue;
          for (int64_t j = 0; j < g->kw; j++) {
            int64_t ix = ox * g->sw - g->pw + j * g->dw;
            if (ix < 0 || ix >= g->W)
              continue;
            v8 v = _mm256_loadu_ps(img + (iy * g->W + ix) * 8);
            /* NaN wins and stays, as in the plain loop: max(m, v) is v when v is NaN */
            v8 nan_m = _mm256_cmp_ps(m, m, _CMP_UNORD_Q);
            m = _mm256_blendv_ps(_mm256_max_ps(m, v), m, nan_m);
          }
        }
        _mm256_storeu_ps(out + (oy * g->Wo + ox) * 8, m);
      }
  }
}

void re_k_avgpool_blk(const re_conv_geom *g, const float *x, int64_t B, int include_pad, float *y) {
  int64_t CB = (g->C + 7) / 8;
  for (int64_t bc = 0; bc < B * CB; bc++) {
    const float *img = x + bc * g->H * g->W * 8;
    float *out = y + bc * g->Ho * g->Wo * 8;
    for (int64_t oy = 0; oy < g->Ho; oy++)
      for (int64_t ox = 0; ox < g->Wo; ox++) {
        int64_t y0 = oy * g->sh - g->ph, x0 = ox * g->sw - g->pw;
        int64_t y1 = y0 + g->kh < g->H + g->ph ? y0 + g->kh : g->H + g->ph;
        int64_t x1 = x0 + g->kw < g->W + g->pw ? x0 + g->kw : g->W + g->pw;
        int64_t pool = (y1 - y0) * (x1 - x0);
        y0 = y0 < 0 ? 0 : y0;
        x0 = x0 < 0 ? 0 : x0;
        y1 = y1 > g->H ? g->H : y1;
        x1 = x1 > g->W ? g->W : x1;
        v8 s = _mm256_setzero_ps();
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            s = _mm256_add_ps(s, _mm256_loadu_ps(img + (iy * g->W + ix) * 8));
        int64_t div = include_pad ? pool : (y1 - y0) * (x1 - x0);
        _mm256_storeu_ps(out + (oy * g->Wo + ox) * 8,
                         div > 0 ? _mm256_div_ps(s, _mm256_set1_ps((float)div)) : _mm256_setzero_ps());
      }
  }
}

void re_k_adaptive_avgpool_blk(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                               float *y) {
  int64_t CB = (C + 7) / 8;
  for (int64_t bc = 0; bc < B * CB; bc++) {
    const float *img = x + bc * H * W * 8;
    float *out = y + bc * Ho * Wo * 8;
    for (int64_t oy = 0; oy < Ho; oy++) {
      int64_t ys = oy * H / Ho, ye = ((oy + 1) * H + Ho - 1) / Ho;
      for (int64_t ox = 0; ox < Wo; ox++) {
        int64_t xs = ox * W / Wo, xe = ((ox + 1) * W + Wo - 1) / Wo;
        v8 s = _mm256_setzero_ps();
        for (int64_t iy = ys; iy < ye; iy++)
          for (int64_t ix = xs; ix < xe; ix++)
            s = _mm256_add_ps(s, _mm256_loadu_ps(img + (iy * W + ix) * 8));
        _mm256_storeu_ps(out + (oy * Wo + ox) * 8, _mm256_div_ps(s, _mm256_set1_ps((float)((ye - ys) * (xe - xs)))));
      }
    }
  }
}

#else /* no AVX2 (another processor): re_kern_fast() is 0, none of these is called */

void re_k_tile(int64_t kb, const float *a, int64_t as, const float *b, float *c, int64_t ldc, int acc) {
  (void)kb, (void)a, (void)as, (void)b, (void)c, (void)ldc, (void)acc;
}
void re_k_store(const float *tile, int mr, int nc, float *const *dst, int64_t off8, const float *const *res,
                const float *bias, const re_epi *e) {
  (void)tile, (void)mr, (void)nc, (void)dst, (void)off8, (void)res, (void)bias, (void)e;
}
void re_k_wino_input(const re_wino_geom *g, const float *x, int64_t t0, int64_t nt, float *V) {
  (void)g, (void)x, (void)t0, (void)nt, (void)V;
}
void re_k_wino_output(const re_wino_geom *g, const float *M, int64_t ms, int64_t npad, int64_t t0, int64_t nt,
                      const re_epi *e, const float *res, float *y) {
  (void)g, (void)M, (void)ms, (void)npad, (void)t0, (void)nt, (void)e, (void)res, (void)y;
}
void re_k_act(re_act a, const float *x, int64_t n, float *y) { re_op_activation(a, x, n, y); }
void re_k_affine_blk(const float *x, int64_t B, int64_t CB, int64_t hw, const float *scale, const float *shift,
                     float *y) {
  (void)x, (void)B, (void)CB, (void)hw, (void)scale, (void)shift, (void)y;
}
void re_k_add(const float *x, const float *r, int64_t n, int relu, float *y) {
  for (int64_t k = 0; k < n; k++) {
    float v = x[k] + r[k];
    y[k] = relu ? (v > 0 ? v : 0.0f) : v;
  }
}
void re_k_softmax_rows(float *s, int64_t rows, int64_t n, int64_t ld, float scale) {
  (void)s, (void)rows, (void)n, (void)ld, (void)scale;
}
void re_k_layernorm(const float *x, int64_t rows, int64_t D, const float *gamma, const float *beta, double eps,
                    float *y) {
  (void)x, (void)rows, (void)D, (void)gamma, (void)beta, (void)eps, (void)y;
}
void re_k_maxpool_blk(const re_conv_geom *g, const float *x, int64_t B, float *y) { (void)g, (void)x, (void)B, (void)y; }
void re_k_avgpool_blk(const re_conv_geom *g, const float *x, int64_t B, int include_pad, float *y) {
  (void)g, (void)x, (void)B, (void)include_pad, (void)y;
}
void re_k_adaptive_avgpool_blk(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                               float *y) {
  (void)x, (void)B, (void)C, (void)H, (void)W, (void)Ho, (void)Wo, (void)y;
}
#endif
