/* Convolutions of the fast path, from blocked images to blocked images (kern.h):
 * 3 x 3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): 36 products with
 * K = C instead of 9 C multiplies per output, the filter transform done once per
 * checkpoint; every other convolution as a product of packed weights with input slivers
 * gathered per output pixel (im2col six rows at a time, never a whole column matrix).
 * A batch norm after the convolution is folded into its weights; bias, residual and
 * activation are applied to each tile before it is stored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fast.h"

typedef enum { FC_WINO, FC_GEMM } fc_kind;

struct re_fconv {
  fc_kind kind;
  int plain_in;   /* GEMM from a plain (B, C, H, W) input, k = (c, ky, kx): C < 8 */
  re_conv_geom g;
  int64_t CB, COB, K, Kp, np;
  re_pack w;      /* GEMM: B[k][co] */
  float *u;       /* Winograd: [36][np][CB * 8][16] */
  float *bias;    /* np * 16 */
  re_epi epi;
  int64_t chunk;  /* Winograd: tiles per task, a multiple of 6 */
  re_wino_geom wg;
};

/* Winograd's filter transform, G g G^T (points 0, +-1, +-2, inf), in double. */
static const double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                               {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

/* Inputs of fewer than 8 channels (stems) stay on im2col + sgemm: bench_nn_kernels measured
 * the packed kernel from a plain input at half the portable kernel's speed or less there
 * (ResNet stems 12-17 against 25-34 GFLOP/s, the demo CNN's 1-channel conv 1.6 against 11). */
int re_fconv_eligible(const re_conv_geom *g) { return g->groups == 1 && g->C >= 8; }

const char *re_fconv_kernel(const re_fconv *f) {
  if (f->kind == FC_WINO)
    return "winograd F(4x4,3x3)";
  if (f->g.kh == 1 && f->g.kw == 1)
    return "packed gemm 1x1";
  return f->plain_in ? "packed gemm (im2col, plain in)" : "packed gemm (im2col)";
}

void re_fconv_free(re_fconv **pf) {
  re_fconv *f = *pf;
  if (!f)
    return;
  re_pack_free(&f->w);
  free(f->u);
  free(f->bias);
  free(f);
  *pf = NULL;
}

static int64_t round6(int64_t v) { return v < RE_MR ? RE_MR : (v + RE_MR - 1) / RE_MR * RE_MR; }

re_status re_fconv_make(const re_conv_geom *g, const float *w, const float *bias, const float *scale,
                        const float *shift, int has_act, re_act act, re_fconv **out) {
  re_status st = RE_OK;
  re_fconv *f = NULL;
  float *dense = NULL;
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *f, &f));
  f->g = *g;
  f->CB = (g->C + 7) / 8;
  f->COB = (g->Co + 7) / 8;
  f->np = (g->Co + RE_NR - 1) / RE_NR;
  int wino = g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->C >= 8;
  f->kind = wino ? FC_WINO : FC_GEMM;
  f->plain_in = !wino && g->C < 8;
  RE_CHECK(re_kern_alloc(f->np * RE_NR, &f->bias));
  for (int64_t co = 0; co < f->np * RE_NR; co++) { /* bias of the folded batch norm: b s + t */
    double b = co < g->Co && bias ? bias[co] : 0.0;
    f->bias[co] = co < g->Co ? (float)(scale ? b * scale[co] + shift[co] : b) : 0.0f;
  }
  f->epi.bias = f->bias;
  f->epi.has_act = has_act;
  f->epi.act = act;
  int64_t khw = g->kh * g->kw, C = g->C, Co = g->Co;
  if (wino) {
    int64_t Cp = f->CB * 8, n;
    RE_CHECK(re_mul_i64(36 * f->np * RE_NR, Cp, &n));
    RE_CHECK(re_kern_alloc(n, &f->u));
    memset(f->u, 0, sizeof(float) * (size_t)n);
    for (int64_t co = 0; co < Co; co++)
      for (int64_t c = 0; c < C; c++) {
        const float *k = w + (co * C + c) * 9;
        double s = scale ? scale[co] : 1.0, t[6][3];
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 3; j++)
            t[i][j] = s * (G[i][0] * k[j] + G[i][1] * k[3 + j] + G[i][2] * k[6 + j]);
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 6; j++) {
            double v = t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2];
            f->u[(((i * 6 + j) * f->np + co / RE_NR) * Cp + c) * RE_NR + co % RE_NR] = (float)v;
          }
      }
    f->wg = (re_wino_geom){0, f->CB, g->H, g->W, g->ph, g->pw, f->COB, g->Ho, g->Wo, (g->Ho + 3) / 4,
                           (g->Wo + 3) / 4};
    /* tiles per task: their transforms in the L2 cache, and enough of them to pay for
     * streaming the transformed filters (36 C Co floats) once per task */
    int64_t by_cache = 2730 / (Cp + f->np * RE_NR), ubytes = 36 * Cp * f->np * RE_NR * 4;
    int64_t by_u = ubytes > 8 * 1024 * 1024 ? 42 : ubytes > 1024 * 1024 ? 24 : 12;
    f->chunk = round6(by_cache > by_u ? by_cache : by_u);
    if (f->chunk > 96)
      f->chunk = 96;
  } else {
    /* dense B (K x Co) in the order the slivers are gathered, then packed */
    f->K = f->plain_in ? C * khw : khw * f->CB * 8;
    RE_CHECK(re_malloc(f->K, Co * (int64_t)sizeof(float), &dense));
    for (int64_t co = 0; co < Co; co++) {
      double s = scale ? scale[co] : 1.0;
      for (int64_t c = 0; c < (f->plain_in ? C : f->CB * 8); c++)
        for (int64_t q = 0; q < khw; q++) {
          int64_t k = f->plain_in ? c * khw + q : (q * f->CB + c / 8) * 8 + c % 8;
          dense[k * Co + co] = c < C ? (float)(s * w[(co * C + c) * khw + q]) : 0.0f;
        }
    }
    RE_CHECK(re_pack_b(dense, f->K, Co, Co, 1, &f->w));
    f->Kp = f->w.Kp;
  }
  *out = f;
  f = NULL;
done:
  free(dense);
  re_fconv_free(&f);
  return st;
}

static int64_t per_thread(const re_fconv *f) {
  if (f->kind == FC_WINO) {
    int64_t ns = f->chunk / RE_MR;
    return 36 * ns * f->CB * 48 + 36 * ns * RE_MR * f->np * RE_NR + 64;
  }
  return 0;
}

int64_t re_fconv_work(const re_fconv *f, int threads) {
  return f->kind == FC_WINO ? (int64_t)threads * per_thread(f) : re_gemm_op_work(&f->w, threads);
}

typedef struct conv_ctx {
  const re_fconv *f;
  const float *x, *res;
  float *y;
} conv_ctx;

/* Slivers of output pixels [r0, r0 + rows) over reduction range [k0, k0 + kc) (past the
 * batch: the last pixel again): im2col six rows at a time. */
static void pack_conv(const re_gemm_op *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, float *a) {
  const conv_ctx *cx = op->ctx;
  const re_fconv *f = cx->f;
  const re_conv_geom *g = &f->g;
  const float *x = cx->x;
  int64_t hw = g->Ho * g->Wo, ns = (rows + RE_MR - 1) / RE_MR, k1 = k0 + kc;
  for (int64_t s = 0; s < ns; s++) {
    float *as = a + s * kc * RE_MR;
    for (int r = 0; r < RE_MR; r++) {
      int64_t px = r0 + s * RE_MR + r;
      px = px < op->M ? px : op->M - 1;
      int64_t b = px / hw, oy = px % hw / g->Wo, ox = px % g->Wo;
      if (f->plain_in) { /* k = (c, ky, kx), then zeros up to Kp */
        for (int64_t k = k0; k < k1; k++)
          as[(k - k0) / 8 * 48 + r * 8 + k % 8] = 0.0f;
        int64_t k = 0;
        for (int64_t c = 0; c < g->C && k < k1; c++) {
          const float *img = x + (b * g->C + c) * g->H * g->W;
          for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = oy * g->sh - g->ph + ky * g->dh;
            for (int64_t kx = 0; kx < g->kw; kx++, k++) {
              int64_t ix = ox * g->sw - g->pw + kx * g->dw;
              if (k >= k0 && k < k1 && iy >= 0 && iy < g->H && ix >= 0 && ix < g->W)
                as[(k - k0) / 8 * 48 + r * 8 + k % 8] = img[iy * g->W + ix];
            }
          }
        }
        continue;
      }
      for (int64_t q8 = k0 / 8; q8 < k1 / 8; q8++) { /* k = ((ky, kx), channel block, lane) */
        int64_t q = q8 / f->CB, cb = q8 % f->CB;
        int64_t iy = oy * g->sh - g->ph + q / g->kw * g->dh, ix = ox * g->sw - g->pw + q % g->kw * g->dw;
        float *d = as + (q8 - k0 / 8) * 48 + r * 8;
        if (iy >= 0 && iy < g->H && ix >= 0 && ix < g->W)
          memcpy(d, x + (((b * f->CB + cb) * g->H + iy) * g->W + ix) * 8, 8 * sizeof(float));
        else
          memset(d, 0, 8 * sizeof(float));
      }
    }
  }
}

/* Output pixel r's channels of panel j in the blocked image. */
static void dst_conv(const re_gemm_op *op, int64_t r, int64_t j, float **y, const float **res, int64_t *off8) {
  const conv_ctx *cx = op->ctx;
  const re_fconv *f = cx->f;
  int64_t hw = f->g.Ho * f->g.Wo, b = r / hw, p = r % hw, off = ((b * f->COB + 2 * j) * hw + p) * 8;
  *y = cx->y + off;
  *res = cx->res ? cx->res + off : NULL;
  *off8 = hw * 8;
}

static void run_gemm(const re_fconv *f, const float *x, int64_t B, const float *res, float *y, float *work,
                     int threads) {
  conv_ctx cx = {f, x, res, y};
  re_gemm_op op = {B * f->g.Ho * f->g.Wo, &f->w, &f->epi, pack_conv, dst_conv, f->COB * 8, &cx};
  re_gemm_run(&op, work, threads);
}

static void run_wino(const re_fconv *f, const float *x, int64_t B, const float *res, float *y, float *work,
                     int threads) {
  re_wino_geom wg = f->wg;
  wg.B = B;
  int64_t ntiles = B * wg.th * wg.tw, T = f->chunk, tasks = (ntiles + T - 1) / T, pt = per_thread(f);
  int64_t npad = f->np * RE_NR, Cp = f->CB * 8;
  re_tile2_fn tile2 = re_k_tile2();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    int64_t t0 = task * T, nt = ntiles - t0 < T ? ntiles - t0 : T, ns = (nt + RE_MR - 1) / RE_MR;
    float *V = work + (int64_t)tid * pt, *M = V + 36 * ns * f->CB * 48;
    re_k_wino_input(&wg, x, t0, nt, V);
    for (int xi = 0; xi < 36; xi++)
      for (int64_t j = 0; j < f->np; j += 2) {
        const float *u = f->u + (xi * f->np + j) * Cp * RE_NR;
        for (int64_t s = 0; s < ns; s++) {
          const float *v = V + (xi * ns + s) * f->CB * 48;
          float *m = M + (xi * ns + s) * RE_MR * npad + j * RE_NR;
          if (j + 1 < f->np)
            tile2(f->CB, v, 48, u, u + Cp * RE_NR, m, m + RE_NR, npad, 0);
          else
            re_k_tile(f->CB, v, 48, u, m, npad, 0);
        }
      }
    re_k_wino_output(&wg, M, ns * RE_MR * npad, npad, t0, nt, &f->epi, res, y);
  }
}

void re_fconv_run(const re_fconv *f, const float *x, int64_t B, const float *res, float *y, float *work,
                  int threads) {
  if (f->kind == FC_WINO)
    run_wino(f, x, B, res, y, work, threads);
  else
    run_gemm(f, x, B, res, y, work, threads);
}

int re_fconv_plain_input(const re_fconv *f) { return f->plain_in; }
