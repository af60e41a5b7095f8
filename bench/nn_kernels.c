/* The forward engine's kernels side by side on the layer shapes of the benchmark models:
 * the portable kernels (im2col + OpenBLAS sgemm, libm loops), the fast path's kernels
 * (Winograd F(4x4,3x3) and packed sliver products on blocked images, SLEEF vector math)
 * and, when built with it, oneDNN (Debian's libdnnl, the library PyTorch CPU calls for
 * convolutions): direct convolutions on nChw8c images with weights reordered once,
 * inner products with packed weights, eltwise. Every implementation's output is
 * compared with the portable kernel's before its time counts.
 *
 *   bench_nn_kernels [--only conv,linear,act] [--rounds R] [--quick]
 *
 * Prints one JSON object per case: GFLOP/s (or Gelem/s for activations) from the median
 * CPU time over R interleaved rounds, and the largest error relative to the output's
 * largest value. Threads: OPENBLAS_NUM_THREADS for repeval, OMP_NUM_THREADS for oneDNN. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fast.h"
#include "kern.h"
#include "ops.h"

#ifdef BENCH_HAVE_ONEDNN
#include <dnnl.h>
#endif

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
}

static float *alloc_f(int64_t n, int fill) {
  float *p = NULL;
  if (re_kern_alloc(n, &p) != RE_OK) {
    fprintf(stderr, "bench_nn_kernels: out of memory (%lld floats)\n", (long long)n);
    exit(1);
  }
  for (int64_t k = 0; k < n; k++)
    p[k] = fill ? frand() : 0.0f;
  return p;
}

static double rel_err(const float *a, const float *b, int64_t n) {
  double e = 0, m = 0;
  for (int64_t k = 0; k < n; k++) {
    double d = fabs((double)a[k] - b[k]);
    e = d > e ? d : e;
    m = fabs(b[k]) > m ? fabs(b[k]) : m;
  }
  return m > 0 ? e / m : e;
}

/* ---- timing: interleaved rounds, median CPU seconds per call ---- */

#define MAX_IMPL 3
typedef void (*run_fn)(void *ctx);
typedef struct impl {
  const char *name;
  run_fn run;
  int ok;
  double times[64];
} impl;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof(double), cmp_d);
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void time_impls(impl *im, int n, void *ctx, int rounds) {
  for (int k = 0; k < n; k++)
    if (im[k].ok)
      im[k].run(ctx); /* warm-up: first-touch pages, primitive creation */
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < n; k++) {
      if (!im[k].ok)
        continue;
      double t0 = cpu_now(), t;
      int reps = 0;
      do { /* at least 20 ms per measurement */
        im[k].run(ctx);
        reps++;
        t = cpu_now() - t0;
      } while (t < 0.02 && reps < 1000);
      im[k].times[r] = t / reps;
    }
}

/* ---- convolutions ---- */

typedef struct conv_case {
  const char *what;
  int64_t B, C, H, Co, k, s, p;
} conv_case;

typedef struct conv_ctx {
  re_conv_geom g;
  int64_t B;
  float *x, *xb, *w, *bias, *y_plain, *y_fast, *y_blk, *work, *work_fast;
  re_fconv *f;
  int threads;
#ifdef BENCH_HAVE_ONEDNN
  dnnl_primitive_t prim;
  dnnl_memory_t src, wei, bia, dst;
  dnnl_stream_t stream;
  float *y_dnnl;
#endif
} conv_ctx;

static void conv_plain(void *p) {
  conv_ctx *c = p;
  re_op_conv2d(&c->g, c->x, c->B, c->w, c->bias, c->y_plain, c->work);
  re_op_activation(RE_ACT_RELU, c->y_plain, c->B * c->g.Co * c->g.Ho * c->g.Wo, c->y_plain);
}

static void conv_fast(void *p) {
  conv_ctx *c = p;
  re_fconv_run(c->f, re_fconv_plain_input(c->f) ? c->x : c->xb, c->B, NULL, c->y_blk, c->work_fast, c->threads);
}

#ifdef BENCH_HAVE_ONEDNN
static dnnl_engine_t engine;

static void conv_dnnl(void *p) {
  conv_ctx *c = p;
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_BIAS, c->bia},
                             {DNNL_ARG_DST, c->dst}};
  dnnl_primitive_execute(c->prim, c->stream, 4, args);
  dnnl_stream_wait(c->stream);
}

/* Direct convolution, nChw8c (plain nchw when C < 8) in and out, weights reordered once, ReLU post-op. */
static int conv_dnnl_make(conv_ctx *c) {
  const re_conv_geom *g = &c->g;
  dnnl_dims_t sd = {c->B, g->C, g->H, g->W}, wd = {g->Co, g->C, g->kh, g->kw}, bd = {g->Co},
              dd = {c->B, g->Co, g->Ho, g->Wo}, st = {g->sh, g->sw}, pad = {g->ph, g->pw};
  dnnl_memory_desc_t smd, wmd, wplain, bmd, dmd;
  dnnl_format_tag_t stag = g->C < 8 ? dnnl_nchw : dnnl_nChw8c;
  if (dnnl_memory_desc_init_by_tag(&smd, 4, sd, dnnl_f32, stag) ||
      dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any) ||
      dnnl_memory_desc_init_by_tag(&wplain, 4, wd, dnnl_f32, dnnl_oihw) ||
      dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x) ||
      dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dnnl_f32, dnnl_nChw8c))
    return 0;
  dnnl_convolution_desc_t cd;
  if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &smd, &wmd, &bmd, &dmd,
                                         st, pad, pad))
    return 0;
  dnnl_primitive_attr_t attr;
  dnnl_post_ops_t po;
  dnnl_primitive_attr_create(&attr);
  dnnl_post_ops_create(&po);
  dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
  dnnl_primitive_attr_set_post_ops(attr, po);
  dnnl_primitive_desc_t pd;
  if (dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL))
    return 0;
  const dnnl_memory_desc_t *qw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_t wuser;
  dnnl_memory_create(&c->src, &smd, engine, g->C < 8 ? c->x : c->xb);
  dnnl_memory_create(&wuser, &wplain, engine, c->w);
  dnnl_memory_create(&c->wei, qw, engine, DNNL_MEMORY_ALLOCATE);
  dnnl_memory_create(&c->bia, &bmd, engine, c->bias);
  dnnl_memory_create(&c->dst, &dmd, engine, c->y_dnnl);
  dnnl_primitive_desc_t rpd; /* the weights' reorder, once */
  dnnl_primitive_t rp;
  dnnl_reorder_primitive_desc_create(&rpd, &wplain, engine, qw, engine, NULL);
  dnnl_primitive_create(&rp, rpd);
  dnnl_stream_create(&c->stream, engine, dnnl_stream_default_flags);
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, c->wei}};
  dnnl_primitive_execute(rp, c->stream, 2, ra);
  dnnl_stream_wait(c->stream);
  dnnl_primitive_create(&c->prim, pd);
  return 1;
}
#endif

static void bench_conv(const conv_case *cc, int rounds) {
  conv_ctx c;
  memset(&c, 0, sizeof c);
  re_conv_geom *g = &c.g;
  g->C = cc->C, g->H = g->W = cc->H, g->Co = cc->Co, g->kh = g->kw = cc->k, g->sh = g->sw = cc->s;
  g->ph = g->pw = cc->p, g->dh = g->dw = 1, g->groups = 1;
  g->Ho = g->Wo = re_conv_out(cc->H, cc->k, cc->s, cc->p, 1);
  c.B = cc->B;
  c.threads = re_kern_threads();
  int64_t nx = c.B * g->C * g->H * g->W, ny = c.B * g->Co * g->Ho * g->Wo, COB = (g->Co + 7) / 8;
  c.x = alloc_f(nx, 1);
  c.xb = alloc_f(c.B * re_pad8(g->C) * g->H * g->W, 0);
  re_block(c.x, c.B, g->C, g->H * g->W, c.xb);
  c.w = alloc_f(g->Co * g->C * g->kh * g->kw, 1);
  c.bias = alloc_f(g->Co, 1);
  c.y_plain = alloc_f(ny, 0);
  c.y_fast = alloc_f(ny, 0);
  c.y_blk = alloc_f(c.B * COB * 8 * g->Ho * g->Wo, 0);
  c.work = alloc_f(re_op_conv2d_workspace(g, c.B) / 4 + 1, 0);
  if (re_fconv_make(g, c.w, c.bias, NULL, NULL, 1, RE_ACT_RELU, &c.f) != RE_OK) {
    fprintf(stderr, "bench_nn_kernels: %s\n", re_errmsg());
    exit(1);
  }
  c.work_fast = alloc_f(re_fconv_work(c.f, c.threads), 0);
  impl im[MAX_IMPL] = {{"plain", conv_plain, 1, {0}}, {"fast", conv_fast, 1, {0}}, {"onednn", NULL, 0, {0}}};
#ifdef BENCH_HAVE_ONEDNN
  c.y_dnnl = alloc_f(c.B * COB * 8 * g->Ho * g->Wo, 0);
  im[2].run = conv_dnnl;
  im[2].ok = conv_dnnl_make(&c);
#endif
  time_impls(im, MAX_IMPL, &c, rounds);
  double flops = 2.0 * (double)ny * (double)(g->C * g->kh * g->kw);
  re_unblock(c.y_blk, c.B, g->Co, g->Ho * g->Wo, c.y_fast);
  printf("{\"kind\": \"conv\", \"case\": \"%s\", \"shape\": \"B%lld C%lld %lldx%lld -> Co%lld k%lld s%lld\", "
         "\"gflop\": %.4f, \"kernel\": \"%s\"",
         cc->what, (long long)c.B, (long long)g->C, (long long)g->H, (long long)g->W, (long long)g->Co,
         (long long)cc->k, (long long)cc->s, flops * 1e-9, re_fconv_kernel(c.f));
  for (int k = 0; k < MAX_IMPL; k++) {
    if (!im[k].ok)
      continue;
    double t = median(im[k].times, rounds), err = 0;
    if (k == 1)
      err = rel_err(c.y_fast, c.y_plain, ny);
#ifdef BENCH_HAVE_ONEDNN
    if (k == 2) {
      re_unblock(c.y_dnnl, c.B, g->Co, g->Ho * g->Wo, c.y_fast);
      err = rel_err(c.y_fast, c.y_plain, ny);
    }
#endif
    printf(", \"%s\": {\"gflops\": %.2f, \"seconds\": %.6f, \"rel_err\": %.2e}", im[k].name, flops / t * 1e-9, t, err);
  }
  printf("}\n");
  fflush(stdout);
  re_fconv_free(&c.f);
  free(c.x), free(c.xb), free(c.w), free(c.bias), free(c.y_plain), free(c.y_fast), free(c.y_blk), free(c.work);
  free(c.work_fast);
#ifdef BENCH_HAVE_ONEDNN
  free(c.y_dnnl);
#endif
}

/* ---- linear layers ---- */

typedef struct lin_case {
  const char *what;
  int64_t M, K, N;
  int gelu;
} lin_case;

typedef struct lin_ctx {
  int64_t M, K, N;
  int gelu, threads;
  float *x, *w, *b, *y_blas, *y_fast, *work;
  re_pack p;
  re_epi e;
#ifdef BENCH_HAVE_ONEDNN
  dnnl_primitive_t prim;
  dnnl_memory_t src, wei, bia, dst;
  dnnl_stream_t stream;
  float *y_dnnl;
#endif
} lin_ctx;

static void lin_blas(void *p) {
  lin_ctx *c = p;
  re_op_linear(c->x, c->M, c->K, c->w, c->b, c->N, c->y_blas);
  if (c->gelu)
    re_op_activation(RE_ACT_GELU, c->y_blas, c->M * c->N, c->y_blas);
}

static void lin_fast(void *p) {
  lin_ctx *c = p;
  re_gemm_rows(c->x, c->M, c->K, &c->p, &c->e, NULL, 0, c->y_fast, c->N, c->work, c->threads);
}

#ifdef BENCH_HAVE_ONEDNN
static void lin_dnnl(void *p) {
  lin_ctx *c = p;
  dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_WEIGHTS, c->wei}, {DNNL_ARG_BIAS, c->bia},
                             {DNNL_ARG_DST, c->dst}};
  dnnl_primitive_execute(c->prim, c->stream, 4, args);
  dnnl_stream_wait(c->stream);
}

/* Inner product, weights in the layout oneDNN picks (reordered once), GELU (erf) post-op. */
static int lin_dnnl_make(lin_ctx *c) {
  dnnl_dims_t sd = {c->M, c->K}, wd = {c->N, c->K}, bd = {c->N}, dd = {c->M, c->N};
  dnnl_memory_desc_t smd, wmd, wplain, bmd, dmd;
  dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_f32, dnnl_nc);
  dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&wplain, 2, wd, dnnl_f32, dnnl_oi);
  dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x);
  dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_f32, dnnl_nc);
  dnnl_inner_product_desc_t d;
  if (dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, &smd, &wmd, &bmd, &dmd))
    return 0;
  dnnl_primitive_attr_t attr;
  dnnl_post_ops_t po;
  dnnl_primitive_attr_create(&attr);
  dnnl_post_ops_create(&po);
  if (c->gelu)
    dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
  dnnl_primitive_attr_set_post_ops(attr, po);
  dnnl_primitive_desc_t pd;
  if (dnnl_primitive_desc_create(&pd, &d, attr, engine, NULL))
    return 0;
  const dnnl_memory_desc_t *qw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_t wuser;
  dnnl_memory_create(&c->src, &smd, engine, c->x);
  dnnl_memory_create(&wuser, &wplain, engine, c->w);
  dnnl_memory_create(&c->wei, qw, engine, DNNL_MEMORY_ALLOCATE);
  dnnl_memory_create(&c->bia, &bmd, engine, c->b);
  dnnl_memory_create(&c->dst, &dmd, engine, c->y_dnnl);
  dnnl_primitive_desc_t rpd;
  dnnl_primitive_t rp;
  dnnl_reorder_primitive_desc_create(&rpd, &wplain, engine, qw, engine, NULL);
  dnnl_primitive_create(&rp, rpd);
  dnnl_stream_create(&c->stream, engine, dnnl_stream_default_flags);
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, c->wei}};
  dnnl_primitive_execute(rp, c->stream, 2, ra);
  dnnl_stream_wait(c->stream);
  dnnl_primitive_create(&c->prim, pd);
  return 1;
}
#endif

static void bench_linear(const lin_case *lc, int rounds) {
  lin_ctx c;
  memset(&c, 0, sizeof c);
  c.M = lc->M, c.K = lc->K, c.N = lc->N, c.gelu = lc->gelu;
  c.threads = re_kern_threads();
  c.x = alloc_f(c.M * c.K, 1);
  c.w = alloc_f(c.N * c.K, 1);
  c.b = alloc_f(c.N, 1);
  c.y_blas = alloc_f(c.M * c.N, 0);
  c.y_fast = alloc_f(c.M * c.N, 0);
  if (re_pack_b(c.w, c.K, c.N, 1, c.K, &c.p) != RE_OK)
    exit(1);
  float *bp = alloc_f(c.p.np * RE_NR, 0);
  memcpy(bp, c.b, sizeof(float) * (size_t)c.N);
  c.e.bias = bp;
  c.e.has_act = c.gelu;
  c.e.act = RE_ACT_GELU;
  c.work = alloc_f(re_gemm_op_work(&c.p, c.threads), 0);
  impl im[MAX_IMPL] = {{"openblas", lin_blas, 1, {0}}, {"fast", lin_fast, 1, {0}}, {"onednn", NULL, 0, {0}}};
#ifdef BENCH_HAVE_ONEDNN
  c.y_dnnl = alloc_f(c.M * c.N, 0);
  im[2].run = lin_dnnl;
  im[2].ok = lin_dnnl_make(&c);
#endif
  time_impls(im, MAX_IMPL, &c, rounds);
  double flops = 2.0 * (double)c.M * (double)c.K * (double)c.N;
  printf("{\"kind\": \"linear\", \"case\": \"%s\", \"shape\": \"%lld x %lld -> %lld%s\", \"gflop\": %.4f",
         lc->what, (long long)c.M, (long long)c.K, (long long)c.N, c.gelu ? " + GELU" : "", flops * 1e-9);
  for (int k = 0; k < MAX_IMPL; k++) {
    if (!im[k].ok)
      continue;
    double t = median(im[k].times, rounds), err = 0;
    if (k == 1)
      err = rel_err(c.y_fast, c.y_blas, c.M * c.N);
#ifdef BENCH_HAVE_ONEDNN
    if (k == 2)
      err = rel_err(c.y_dnnl, c.y_blas, c.M * c.N);
#endif
    printf(", \"%s\": {\"gflops\": %.2f, \"seconds\": %.6f, \"rel_err\": %.2e}", im[k].name, flops / t * 1e-9, t, err);
  }
  printf("}\n");
  fflush(stdout);
  re_pack_free(&c.p);
  free(c.x), free(c.w), free(c.b), free(c.y_blas), free(c.y_fast), free(c.work), free(bp);
#ifdef BENCH_HAVE_ONEDNN
  free(c.y_dnnl);
#endif
}

/* ---- element-wise ---- */

typedef struct act_ctx {
  re_act a;
  int64_t n, rows, cols;
  int softmax;
  float *x, *y_libm, *y_fast;
#ifdef BENCH_HAVE_ONEDNN
  dnnl_primitive_t prim;
  dnnl_memory_t src, dst;
  dnnl_stream_t stream;
  float *y_dnnl;
#endif
} act_ctx;

static void softmax_plain(const float *x, int64_t rows, int64_t n, float *y) { /* the loop of ops.c */
  for (int64_t r = 0; r < rows; r++) {
    const float *s = x + r * n;
    float *row = y + r * n, m = -INFINITY, sum = 0;
    for (int64_t c = 0; c < n; c++)
      m = s[c] > m ? s[c] : m;
    for (int64_t c = 0; c < n; c++) {
      row[c] = expf(s[c] - m);
      sum += row[c];
    }
    float inv = 1.0f / sum;
    for (int64_t c = 0; c < n; c++)
      row[c] *= inv;
  }
}

static void act_libm(void *p) {
  act_ctx *c = p;
  if (c->softmax)
    softmax_plain(c->x, c->rows, c->cols, c->y_libm);
  else
    re_op_activation(c->a, c->x, c->n, c->y_libm);
}

static void act_fast(void *p) {
  act_ctx *c = p;
  if (c->softmax) {
    memcpy(c->y_fast, c->x, sizeof(float) * (size_t)c->n);
    re_k_softmax_rows(c->y_fast, c->rows, c->cols, c->cols, 1.0f);
  } else {
    re_k_act(c->a, c->x, c->n, c->y_fast);
  }
}

#ifdef BENCH_HAVE_ONEDNN
static void act_dnnl(void *p) {
  act_ctx *c = p;
  dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, c->src}, {DNNL_ARG_DST, c->dst}};
  dnnl_primitive_execute(c->prim, c->stream, 2, args);
  dnnl_stream_wait(c->stream);
}

static int act_dnnl_make(act_ctx *c) {
  dnnl_dims_t d = {c->rows, c->cols};
  dnnl_memory_desc_t md;
  dnnl_memory_desc_init_by_tag(&md, 2, d, dnnl_f32, dnnl_nc);
  dnnl_primitive_desc_t pd;
  if (c->softmax) {
    dnnl_softmax_desc_t sd;
    if (dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, &md, 1) ||
        dnnl_primitive_desc_create(&pd, &sd, NULL, engine, NULL))
      return 0;
  } else {
    dnnl_alg_kind_t alg = c->a == RE_ACT_GELU ? dnnl_eltwise_gelu_erf : c->a == RE_ACT_TANH ? dnnl_eltwise_tanh
                                                                                             : dnnl_eltwise_swish;
    dnnl_eltwise_desc_t ed;
    if (dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, alg, &md, 1.0f, 0.0f) ||
        dnnl_primitive_desc_create(&pd, &ed, NULL, engine, NULL))
      return 0;
  }
  dnnl_memory_create(&c->src, &md, engine, c->x);
  dnnl_memory_create(&c->dst, &md, engine, c->y_dnnl);
  dnnl_stream_create(&c->stream, engine, dnnl_stream_default_flags);
  dnnl_primitive_create(&c->prim, pd);
  return 1;
}
#endif

static void bench_act(const char *what, re_act a, int softmax, int64_t rows, int64_t cols, int rounds) {
  act_ctx c;
  memset(&c, 0, sizeof c);
  c.a = a, c.softmax = softmax, c.rows = rows, c.cols = cols, c.n = rows * cols;
  c.x = alloc_f(c.n, 1);
  for (int64_t k = 0; k < c.n; k++)
    c.x[k] *= 8.0f;
  c.y_libm = alloc_f(c.n, 0);
  c.y_fast = alloc_f(c.n, 0);
  impl im[MAX_IMPL] = {{"libm", act_libm, 1, {0}}, {"fast", act_fast, 1, {0}}, {"onednn", NULL, 0, {0}}};
#ifdef BENCH_HAVE_ONEDNN
  c.y_dnnl = alloc_f(c.n, 0);
  im[2].run = act_dnnl;
  im[2].ok = act_dnnl_make(&c);
#endif
  time_impls(im, MAX_IMPL, &c, rounds);
  printf("{\"kind\": \"act\", \"case\": \"%s\", \"shape\": \"%lld x %lld\", \"gelem\": %.4f", what, (long long)rows,
         (long long)cols, (double)c.n * 1e-9);
  for (int k = 0; k < MAX_IMPL; k++) {
    if (!im[k].ok)
      continue;
    double t = median(im[k].times, rounds), err = 0;
    if (k == 1)
      err = rel_err(c.y_fast, c.y_libm, c.n);
#ifdef BENCH_HAVE_ONEDNN
    if (k == 2)
      err = rel_err(c.y_dnnl, c.y_libm, c.n);
#endif
    printf(", \"%s\": {\"gelems\": %.3f, \"seconds\": %.6f, \"rel_err\": %.2e}", im[k].name, (double)c.n / t * 1e-9, t,
           err);
  }
  printf("}\n");
  fflush(stdout);
  free(c.x), free(c.y_libm), free(c.y_fast);
#ifdef BENCH_HAVE_ONEDNN
  free(c.y_dnnl);
#endif
}

int main(int argc, char **argv) {
  const char *only = "conv,linear,act";
  int rounds = 5, quick = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else
      return fprintf(stderr, "usage: bench_nn_kernels [--only conv,linear,act] [--rounds R] [--quick]\n"), 2;
  }
  if (rounds < 1 || rounds > 64)
    return fprintf(stderr, "bench_nn_kernels: --rounds must be in 1..64\n"), 2;
  if (!re_kern_fast())
    return fprintf(stderr, "bench_nn_kernels: the fast kernels need AVX2 and FMA "
                           "(or REPEVAL_NN_KERNELS=plain is set)\n"),
           1;
#ifdef BENCH_HAVE_ONEDNN
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
    return fprintf(stderr, "bench_nn_kernels: no oneDNN CPU engine\n"), 1;
#endif
  int64_t q = quick ? 4 : 1; /* --quick: a quarter of the batch */
  static const conv_case convs[] = {
      {"ResNet-18 CIFAR layer1 3x3", 64, 64, 32, 64, 3, 1, 1},
      {"ResNet-18 CIFAR layer2 3x3", 64, 128, 16, 128, 3, 1, 1},
      {"ResNet-18 CIFAR layer3 3x3", 64, 256, 8, 256, 3, 1, 1},
      {"ResNet-18 CIFAR layer4 3x3", 64, 512, 4, 512, 3, 1, 1},
      {"ResNet-18 CIFAR layer4.0 3x3 stride 2", 64, 256, 8, 512, 3, 2, 1},
      {"ResNet-18 CIFAR stem", 64, 3, 32, 64, 3, 1, 1},
      {"ResNet-50 stem 7x7 stride 2", 16, 3, 224, 64, 7, 2, 3},
      {"ResNet-50 layer1 1x1 256->64", 16, 256, 56, 64, 1, 1, 0},
      {"ResNet-50 layer1 3x3", 16, 64, 56, 64, 3, 1, 1},
      {"ResNet-50 layer1 1x1 64->256", 16, 64, 56, 256, 1, 1, 0},
      {"ResNet-50 layer3 3x3", 16, 256, 14, 256, 3, 1, 1},
      {"ResNet-50 layer3 1x1 1024->256", 16, 1024, 14, 256, 1, 1, 0},
      {"ResNet-50 layer4 1x1 2048->512", 16, 2048, 7, 512, 1, 1, 0},
      {"demo CNN conv1", 256, 1, 28, 8, 3, 1, 1},
      {"demo CNN conv2", 256, 8, 14, 16, 3, 1, 1},
  };
  static const lin_case lins[] = {
      {"ViT-B/16 qkv", 1576, 768, 2304, 0},      {"ViT-B/16 out_proj", 1576, 768, 768, 0},
      {"ViT-B/16 mlp.0 + GELU", 1576, 768, 3072, 1}, {"ViT-B/16 mlp.3", 1576, 3072, 768, 0},
      {"BERT-base intermediate + GELU", 1024, 768, 3072, 1},
  };
  if (strstr(only, "conv"))
    for (size_t k = 0; k < sizeof convs / sizeof convs[0]; k++) {
      conv_case c = convs[k];
      c.B = c.B / q > 0 ? c.B / q : 1;
      bench_conv(&c, rounds);
    }
  if (strstr(only, "linear"))
    for (size_t k = 0; k < sizeof lins / sizeof lins[0]; k++) {
      lin_case c = lins[k];
      c.M = c.M / q;
      bench_linear(&c, rounds);
    }
  if (strstr(only, "act")) {
    int64_t rows = 1576 / q;
    bench_act("GELU (erf), ViT-B/16 MLP", RE_ACT_GELU, 0, rows, 3072, rounds);
    bench_act("tanh", RE_ACT_TANH, 0, rows, 3072, rounds);
    bench_act("SiLU", RE_ACT_SILU, 0, rows, 3072, rounds);
    bench_act("softmax rows, ViT-B/16 attention (8 x 12 heads x 197)", RE_ACT_RELU, 1, 96 * 197 / q, 197, rounds);
  }
  return 0;
}
