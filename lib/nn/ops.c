/* Float32 kernels of the forward engine (see ops.h). Convolutions are lowered
 * to im2col + sgemm; several small images are packed into one product so that
 * late layers with small spatial maps still give sgemm a wide matrix. */
#include "ops.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

#define CONV_MIN_COLUMNS 1024 /* pack images until the product has this many columns */

void re_op_linear(const float *x, int64_t M, int64_t K, const float *W, const float *bias, int64_t N, float *y) {
  if (bias) {
    for (int64_t r = 0; r < M; r++)
      memcpy(y + r * N, bias, sizeof(float) * (size_t)N);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, W, (int)K,
              bias ? 1.0f : 0.0f, y, (int)N);
}

void re_op_linear_t(const float *x, int64_t M, int64_t K, const float *W, const float *bias, int64_t N, float *y) {
  if (bias) {
    for (int64_t r = 0; r < M; r++)
      memcpy(y + r * N, bias, sizeof(float) * (size_t)N);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K, W, (int)N,
              bias ? 1.0f : 0.0f, y, (int)N);
}

int64_t re_conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  int64_t span = d * (k - 1) + 1; /* extent of one dilated window */
  if (in + 2 * p < span)         /* PyTorch: "Output size is too small" */
    return 0;
  return (in + 2 * p - span) / s + 1;
}

static int is_pointwise(const re_conv_geom *g) {
  return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 && g->groups == 1;
}

static int is_depthwise(const re_conv_geom *g) { return g->groups == g->C && g->groups == g->Co && g->groups > 1; }

static int64_t pack_count(const re_conv_geom *g, int64_t B) {
  int64_t hw = g->Ho * g->Wo, nb = (CONV_MIN_COLUMNS + hw - 1) / hw;
  return nb < 1 ? 1 : (nb > B ? B : nb);
}

int64_t re_op_conv2d_workspace(const re_conv_geom *g, int64_t B) {
  if (is_pointwise(g) || is_depthwise(g))
    return 0;
  int64_t nb = pack_count(g, B), L = nb * g->Ho * g->Wo, K = (g->C / g->groups) * g->kh * g->kw;
  int64_t floats = K * L + (nb > 1 ? g->Co * L : 0);
  return floats * (int64_t)sizeof(float);
}

/* cols (K x L, L = nb*Ho*Wo) for channels [c0, c0 + cg) of images [b0, b0 + nb). */
static void im2col(const re_conv_geom *g, const float *x, int64_t b0, int64_t nb, int64_t c0, int64_t cg, float *cols) {
  int64_t hw = g->Ho * g->Wo, L = nb * hw, Wo = g->Wo, sw = g->sw;
  for (int64_t c = 0; c < cg; c++)
    for (int64_t i = 0; i < g->kh; i++)
      for (int64_t j = 0; j < g->kw; j++) {
        float *row = cols + ((c * g->kh + i) * g->kw + j) * L;
        /* output column ox reads input column ox * sw + ix0, inside [0, W) exactly for
         * ox in [lo, hi): zero the padding on both sides, copy the rest without a
         * test per pixel (the same for every image and output row) */
        int64_t ix0 = -g->pw + j * g->dw;
        int64_t lo = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
        int64_t hi = ix0 > g->W - 1 ? 0 : (g->W - 1 - ix0) / sw + 1;
        hi = hi < Wo ? hi : Wo;
        lo = lo < hi ? lo : hi;
        for (int64_t b = 0; b < nb; b++) {
          const float *img = x + ((b0 + b) * g->C + c0 + c) * g->H * g->W;
          float *out = row + b * hw;
          for (int64_t oy = 0; oy < g->Ho; oy++) {
            int64_t iy = oy * g->sh - g->ph + i * g->dh;
            float *o = out + oy * Wo;
            if (iy < 0 || iy >= g->H) {
              for (int64_t ox = 0; ox < Wo; ox++)
                o[ox] = 0.0f;
              continue;
            }
            const float *src = img + iy * g->W;
            for (int64_t ox = 0; ox < lo; ox++)
              o[ox] = 0.0f;
            if (sw == 1)
              for (int64_t ox = lo; ox < hi; ox++)
                o[ox] = src[ox + ix0];
            else
              for (int64_t ox = lo; ox < hi; ox++)
                o[ox] = src[ox * sw + ix0];
            for (int64_t ox = hi; ox < Wo; ox++)
              o[ox] = 0.0f;
          }
        }
      }
}

static void conv_depthwise(const re_conv_geom *g, const float *x, int64_t B, const float *W, const float *bias,
                           float *y) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < g->C; c++) {
      const float *img = x + (b * g->C + c) * g->H * g->W, *k = W + c * g->kh * g->kw;
      float *out = y + (b * g->Co + c) * g->Ho * g->Wo;
      float bc = bias ? bias[c] : 0.0f;
      for (int64_t oy = 0; oy < g->Ho; oy++)
        for (int64_t ox = 0; ox < g->Wo; ox++) {
          float s = bc;
          for (int64_t i = 0; i < g->kh; i++) {
            int64_t iy = oy * g->sh - g->ph + i * g->dh;
            if (iy < 0 || iy >= g->H)
              continue;
            for (int64_t j = 0; j < g->kw; j++) {
              int64_t ix = ox * g->sw - g->pw + j * g->dw;
              if (ix >= 0 && ix < g->W)
                s += img[iy * g->W + ix] * k[i * g->kw + j];
            }
          }
          out[oy * g->Wo + ox] = s;
        }
    }
}

void re_op_conv2d(const re_conv_geom *g, const float *x, int64_t B, const float *W, const float *bias, float *y,
                  float *work) {
  int64_t hw = g->Ho * g->Wo;
  if (is_depthwise(g)) {
    conv_depthwise(g, x, B, W, bias, y);
    return;
  }
  if (is_pointwise(g)) {
    for (int64_t b = 0; b < B; b++) {
      float *yb = y + b * g->Co * hw;
      if (bias)
        for (int64_t c = 0; c < g->Co; c++)
          for (int64_t k = 0; k < hw; k++)
            yb[c * hw + k] = bias[c];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->Co, (int)hw, (int)g->C, 1.0f, W, (int)g->C,
                  x + b * g->C * hw, (int)hw, bias ? 1.0f : 0.0f, yb, (int)hw);
    }
    return;
  }
  int64_t cg = g->C / g->groups, cog = g->Co / g->groups, K = cg * g->kh * g->kw;
  int64_t nb = pack_count(g, B);
  float *cols = work, *tmp = work + K * nb * hw;
  for (int64_t b0 = 0; b0 < B; b0 += nb) {
    int64_t n = B - b0 < nb ? B - b0 : nb, L = n * hw;
    for (int64_t grp = 0; grp < g->groups; grp++) {
      im2col(g, x, b0, n, grp * cg, cg, cols);
      const float *Wg = W + grp * cog * K;
      if (n == 1) {
        float *out = y + (b0 * g->Co + grp * cog) * hw;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cog, (int)hw, (int)K, 1.0f, Wg, (int)K, cols,
                    (int)hw, 0.0f, out, (int)hw);
        if (bias)
          for (int64_t c = 0; c < cog; c++)
            for (int64_t k = 0; k < hw; k++)
              out[c * hw + k] += bias[grp * cog + c];
        continue;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cog, (int)L, (int)K, 1.0f, Wg, (int)K, cols,
                  (int)L, 0.0f, tmp, (int)L);
      for (int64_t c = 0; c < cog; c++) {
        float bc = bias ? bias[grp * cog + c] : 0.0f;
        for (int64_t b = 0; b < n; b++) {
          const float *src = tmp + c * L + b * hw;
          float *dst = y + ((b0 + b) * g->Co + grp * cog + c) * hw;
          for (int64_t k = 0; k < hw; k++)
            dst[k] = src[k] + bc;
        }
      }
    }
  }
}

void re_op_channel_affine(const float *x, int64_t B, int64_t C, int64_t inner, const float *scale,
                          const float *shift, float *y) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      const float *s = x + (b * C + c) * inner;
      float *d = y + (b * C + c) * inner, a = scale[c], t = shift[c];
      for (int64_t k = 0; k < inner; k++)
        d[k] = s[k] * a + t;
    }
}

void re_op_layernorm(const float *x, int64_t rows, int64_t D, const float *gamma, const float *beta, double eps,
                     float *y) {
  for (int64_t r = 0; r < rows; r++) {
    const float *s = x + r * D;
    float *d = y + r * D;
    double mu = 0, var = 0;
    for (int64_t k = 0; k < D; k++)
      mu += s[k];
    mu /= (double)D;
    for (int64_t k = 0; k < D; k++)
      var += (s[k] - mu) * (s[k] - mu);
    var /= (double)D;
    float inv = (float)(1.0 / sqrt(var + eps)), m = (float)mu;
    for (int64_t k = 0; k < D; k++)
      d[k] = (s[k] - m) * inv * (gamma ? gamma[k] : 1.0f) + (beta ? beta[k] : 0.0f);
  }
}

void re_op_rmsnorm(const float *x, int64_t rows, int64_t D, const float *gamma, double eps, float *y) {
  for (int64_t r = 0; r < rows; r++) {
    const float *s = x + r * D;
    float *d = y + r * D;
    double ss = 0;
    for (int64_t k = 0; k < D; k++)
      ss += (double)s[k] * s[k];
    float inv = (float)(1.0 / sqrt(ss / (double)D + eps));
    for (int64_t k = 0; k < D; k++)
      d[k] = (s[k] * inv) * (gamma ? gamma[k] : 1.0f);
  }
}

void re_op_activation(re_act a, const float *x, int64_t n, float *y) {
  switch (a) {
  case RE_ACT_RELU:
    for (int64_t k = 0; k < n; k++)
      y[k] = x[k] > 0 ? x[k] : 0.0f;
    break;
  case RE_ACT_GELU: /* exact: x/2 (1 + erf(x / sqrt 2)) */
    for (int64_t k = 0; k < n; k++)
      y[k] = 0.5f * x[k] * (1.0f + erff(x[k] * 0.70710678118654752f));
    break;
  case RE_ACT_SILU:
    for (int64_t k = 0; k < n; k++)
      y[k] = x[k] / (1.0f + expf(-x[k]));
    break;
  case RE_ACT_TANH:
    for (int64_t k = 0; k < n; k++)
      y[k] = tanhf(x[k]);
    break;
  case RE_ACT_SIGMOID:
    for (int64_t k = 0; k < n; k++)
      y[k] = 1.0f / (1.0f + expf(-x[k]));
    break;
  case RE_ACT_GELU_TANH: /* Hendrycks & Gimpel 2016, the tanh approximation, written with
                            x/2 (1 + tanh u) = x / (1 + exp(-2u)): one expf instead of tanhf */
    for (int64_t k = 0; k < n; k++) {
      float v = x[k];
      y[k] = v / (1.0f + expf(-1.5957691216057308f * (v + 0.044715f * v * v * v)));
    }
    break;
  case RE_ACT_QUICK_GELU: /* x * sigmoid(1.702 x), CLIP (Radford et al. 2021) */
    for (int64_t k = 0; k < n; k++)
      y[k] = x[k] / (1.0f + expf(-1.702f * x[k]));
    break;
  }
}

void re_op_scale_features(const float *x, int64_t rows, int64_t D, const float *scale, float *y) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t d = 0; d < D; d++)
      y[r * D + d] = x[r * D + d] * scale[d];
}

/* Keys' cubic convolution kernel (1981) for |x| < 1 and 1 <= |x| < 2, as PyTorch writes it. */
static double cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static double cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

static double cubic_aa(double x) {
  x = fabs(x);
  return x < 1 ? cubic1(x, -0.5) : x < 2 ? cubic2(x, -0.5) : 0.0;
}

void re_op_bicubic_matrix(int64_t in, int64_t out, int antialias, double *w) {
  double scale = (double)in / (double)out;
  memset(w, 0, sizeof(double) * (size_t)(in * out));
  for (int64_t i = 0; i < out; i++) {
    double *row = w + i * in;
    if (!antialias) { /* four taps around the source position, indices clamped to the border */
      double real = scale * ((double)i + 0.5) - 0.5, t;
      int64_t idx = (int64_t)floor(real);
      t = real - (double)idx;
      double c[4] = {cubic2(t + 1, -0.75), cubic1(t, -0.75), cubic1(1 - t, -0.75), cubic2(2 - t, -0.75)};
      for (int j = 0; j < 4; j++) {
        int64_t k = idx + j - 1;
        row[k < 0 ? 0 : k >= in ? in - 1 : k] += c[j];
      }
      continue;
    }
    /* antialias: the kernel covers 2 * max(scale, 1) samples each side, weights normalised */
    double support = scale >= 1 ? 2 * scale : 2.0, inv = scale >= 1 ? 1 / scale : 1.0;
    double center = scale * ((double)i + 0.5), total = 0;
    int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
    lo = lo < 0 ? 0 : lo;
    hi = hi > in ? in : hi;
    for (int64_t k = lo; k < hi; k++) {
      row[k] = cubic_aa(((double)k - center + 0.5) * inv);
      total += row[k];
    }
    if (total != 0)
      for (int64_t k = lo; k < hi; k++)
        row[k] /= total;
  }
}

void re_op_add(const float *a, const float *b, int64_t n, float *y) {
  for (int64_t k = 0; k < n; k++)
    y[k] = a[k] + b[k];
}

/* Windows that all lie inside the image (no padding, no dilation): no bounds checks,
 * and a select the compiler turns into blends rather than branches on the data. */
static void maxpool_interior(const re_conv_geom *g, const float *x, int64_t B, float *y) {
  const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo, kh = g->kh, kw = g->kw, sh = g->sh, sw = g->sw;
  for (int64_t bc = 0; bc < B * g->C; bc++) {
    const float *img = x + bc * H * W;
    float *out = y + bc * Ho * Wo;
    for (int64_t oy = 0; oy < Ho; oy++) {
      float *o = out + oy * Wo;
      for (int64_t ox = 0; ox < Wo; ox++)
        o[ox] = -INFINITY;
      for (int64_t i = 0; i < kh; i++) {
        const float *row = img + (oy * sh + i) * W;
        for (int64_t j = 0; j < kw; j++)
          for (int64_t ox = 0; ox < Wo; ox++) {
            float v = row[ox * sw + j], m = o[ox];
            o[ox] = (v > m || v != v) ? v : m; /* NaN propagates, as in PyTorch */
          }
      }
    }
  }
}

void re_op_maxpool2d(const re_conv_geom *g, const float *x, int64_t B, float *y) {
  if (g->ph == 0 && g->pw == 0 && g->dh == 1 && g->dw == 1 && (g->Ho - 1) * g->sh + g->kh <= g->H &&
      (g->Wo - 1) * g->sw + g->kw <= g->W) {
    maxpool_interior(g, x, B, y);
    return;
  }
  for (int64_t bc = 0; bc < B * g->C; bc++) {
    const float *img = x + bc * g->H * g->W;
    float *out = y + bc * g->Ho * g->Wo;
    for (int64_t oy = 0; oy < g->Ho; oy++)
      for (int64_t ox = 0; ox < g->Wo; ox++) {
        float m = -INFINITY;
        for (int64_t i = 0; i < g->kh; i++) {
          int64_t iy = oy * g->sh - g->ph + i * g->dh;
          if (iy < 0 || iy >= g->H)
            continue;
          for (int64_t j = 0; j < g->kw; j++) {
            int64_t ix = ox * g->sw - g->pw + j * g->dw;
            if (ix >= 0 && ix < g->W) {
              float v = img[iy * g->W + ix];
              if (v > m || isnan(v))
                m = v;
            }
          }
        }
        out[oy * g->Wo + ox] = m;
      }
  }
}

void re_op_avgpool2d(const re_conv_geom *g, const float *x, int64_t B, int include_pad, float *y) {
  for (int64_t bc = 0; bc < B * g->C; bc++) {
    const float *img = x + bc * g->H * g->W;
    float *out = y + bc * g->Ho * g->Wo;
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
        float s = 0;
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++)
            s += img[iy * g->W + ix];
        int64_t div = include_pad ? pool : (y1 - y0) * (x1 - x0);
        out[oy * g->Wo + ox] = div > 0 ? s / (float)div : 0.0f;
      }
  }
}

void re_op_adaptive_avgpool2d(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                              float *y) {
  for (int64_t bc = 0; bc < B * C; bc++) {
    const float *img = x + bc * H * W;
    float *out = y + bc * Ho * Wo;
    for (int64_t oy = 0; oy < Ho; oy++) {
      int64_t ys = oy * H / Ho, ye = ((oy + 1) * H + Ho - 1) / Ho;
      for (int64_t ox = 0; ox < Wo; ox++) {
        int64_t xs = ox * W / Wo, xe = ((ox + 1) * W + Wo - 1) / Wo;
        float s = 0;
        for (int64_t iy = ys; iy < ye; iy++)
          for (int64_t ix = xs; ix < xe; ix++)
            s += img[iy * W + ix];
        out[oy * Wo + ox] = s / (float)((ye - ys) * (xe - xs));
      }
    }
  }
}

int64_t re_op_mha_workspace(int64_t B, int64_t T, int64_t D) { return 4 * B * T * D + T * T; }

void re_op_mha(const float *x, int64_t B, int64_t T, int64_t D, int64_t heads, const float *in_w,
               const float *in_b, const float *out_w, const float *out_b, float *y, float *work) {
  float *qkv = work, *ctx = work + 3 * B * T * D, *S = ctx + B * T * D;
  int64_t dh = D / heads;
  float scale = 1.0f / sqrtf((float)dh);
  re_op_linear(x, B * T, D, in_w, in_b, 3 * D, qkv);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < heads; h++) {
      const float *Q = qkv + b * T * 3 * D + h * dh, *K = Q + D, *V = Q + 2 * D;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)dh, scale, Q, (int)(3 * D), K,
                  (int)(3 * D), 0.0f, S, (int)T);
      for (int64_t r = 0; r < T; r++) { /* softmax of each row */
        float *row = S + r * T, m = -INFINITY, sum = 0;
        for (int64_t c = 0; c < T; c++)
          m = row[c] > m ? row[c] : m;
        for (int64_t c = 0; c < T; c++) {
          row[c] = expf(row[c] - m);
          sum += row[c];
        }
        float inv = 1.0f / sum;
        for (int64_t c = 0; c < T; c++)
          row[c] *= inv;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)dh, (int)T, 1.0f, S, (int)T, V,
                  (int)(3 * D), 0.0f, ctx + b * T * D + h * dh, (int)D);
    }
  re_op_linear(ctx, B * T, D, out_w, out_b, D, y);
}
