/* Private: the vectorised kernels of the forward engine's fast path (kern_avx2.c, built
 * with AVX2 and FMA and called only when the CPU has both) and the drivers built on them
 * (fast_gemm.c, fast_conv.c).
 *
 * Blocked activations: images in the fast path are stored (B, CB, H, W, 8) with
 * CB = ceil(C / 8): the channels of a pixel come in groups of 8 (one AVX2 vector), and the
 * lanes past C are zero. Products use one micro-kernel: a sliver of 6 rows of A times a
 * panel of 16 columns of B, with A stored as K/8 blocks of [6 rows][8 k] and B as K rows
 * of 16 floats, K padded to a multiple of 8 with zeros. */
#ifndef REPEVAL_NN_KERN_H
#define REPEVAL_NN_KERN_H

#include <stdint.h>

#include "ops.h"
#include "repeval/core.h"

#define RE_MR 6  /* rows of a sliver */
#define RE_NR 16 /* columns of a panel */

/* 1 when the fast path may run: the kernels are built (x86-64), the CPU has AVX2 and FMA,
 * and REPEVAL_NN_KERNELS is not "plain". Read once. */
int re_kern_fast(void);
/* 1 when the fast path may use its AVX-512 micro-kernel: built in, the CPU has AVX-512F,
 * and REPEVAL_NN_KERNELS is not "avx2" (nor "plain"). Read once. */
int re_kern_avx512(void);
/* Threads of the fast path's kernels: OpenBLAS's count (OPENBLAS_NUM_THREADS), so that
 * one setting governs the whole process. */
int re_kern_threads(void);

static inline int64_t re_pad8(int64_t c) { return (c + 7) / 8 * 8; }

/* ---- micro-kernel and epilogue (kern_avx2.c) ---- */

/* c (6 x 16, row stride ldc) = A sliver (kb blocks of [6][8], consecutive blocks `as`
 * floats apart) x B panel (8 kb rows of 16), plus c's own values when acc. */
void re_k_tile(int64_t kb, const float *a, int64_t as, const float *b, float *c, int64_t ldc, int acc);

/* Two panels at once: c0 = A x panel b0 and c1 = A x panel b1 (each 6 x 16 with row
 * stride ldc, as re_k_tile; plus their own values when acc). The same bits as two
 * re_k_tile calls. */
typedef void (*re_tile2_fn)(int64_t kb, const float *a, int64_t as, const float *b0, const float *b1, float *c0,
                            float *c1, int64_t ldc, int acc);
/* The two-panel kernel to use: AVX-512 (kern_avx512.c) when re_kern_avx512(), else two AVX2 tiles. */
re_tile2_fn re_k_tile2(void);
void re_k_tile2_avx512(int64_t kb, const float *a, int64_t as, const float *b0, const float *b1, float *c0,
                       float *c1, int64_t ldc, int acc);

/* What is done to a tile of results before it is stored: + bias[col], + the residual at
 * the destination's position, then the activation. */
typedef struct re_epi {
  const float *bias; /* per column of the whole output, padded to the panel width; NULL: none */
  int has_act;
  re_act act;
} re_epi;

/* Store rows [0, mr) and columns [0, nc) of a tile: row r's columns 0..7 go to dst[r],
 * columns 8..15 to dst[r] + off8; the residual (if res) is read at the same offsets from
 * res[r]. bias points at the panel's first column. */
void re_k_store(const float *tile, int mr, int nc, float *const *dst, int64_t off8, const float *const *res,
                const float *bias, const re_epi *e);

/* ---- Winograd F(4x4, 3x3) (Lavin & Gray 2016) ---- */

/* Geometry of a 3 x 3, stride 1 convolution on blocked images, cut into 4 x 4 output tiles
 * numbered t = (b * th + ty) * tw + tx. */
typedef struct re_wino_geom {
  int64_t B, CB, H, W, ph, pw; /* input */
  int64_t COB, Ho, Wo, th, tw; /* output */
} re_wino_geom;
/* V[xi][s][cb][r][8] = (B^T d B)[xi] of tile t0 + 6 s + r (tiles past t0 + nt repeat the
 * last one), d the 6 x 6 input patch of channel block cb (zero outside the image); ns =
 * ceil(nt / 6) slivers per position xi. */
void re_k_wino_input(const re_wino_geom *g, const float *x, int64_t t0, int64_t nt, float *V);
/* Output of tiles t0 .. t0 + nt - 1: y = epi(A^T M[.][t] A) per channel block, pixels past
 * the image dropped. M[xi][t - t0][npad] (row stride npad, position stride ms); res (blocked
 * like y) may be NULL. */
void re_k_wino_output(const re_wino_geom *g, const float *M, int64_t ms, int64_t npad, int64_t t0, int64_t nt,
                      const re_epi *e, const float *res, float *y);

/* ---- element-wise and layout kernels ---- */

/* y = act(x) over n values (plain or blocked; n a multiple of 8 not required). */
void re_k_act(re_act a, const float *x, int64_t n, float *y);
/* Blocked (B, CB, HW, 8): y = x * scale[c] + shift[c] (scale and shift padded to 8 CB with zeros). */
void re_k_affine_blk(const float *x, int64_t B, int64_t CB, int64_t hw, const float *scale, const float *shift,
                     float *y);
/* y[i] = x[i] + r[i], then ReLU when relu. */
void re_k_add(const float *x, const float *r, int64_t n, int relu, float *y);
/* Softmax of scale * s over each of `rows` rows of n values (stride ld), in place (scale > 0). */
void re_k_softmax_rows(float *s, int64_t rows, int64_t n, int64_t ld, float scale);
/* LayerNorm over rows of D values (mean and variance summed in double, as the plain loop). */
void re_k_layernorm(const float *x, int64_t rows, int64_t D, const float *gamma, const float *beta, double eps,
                    float *y);

/* Pooling on blocked images, the plain kernels' semantics (ops.c). g->C is the channel count. */
void re_k_maxpool_blk(const re_conv_geom *g, const float *x, int64_t B, float *y);
void re_k_avgpool_blk(const re_conv_geom *g, const float *x, int64_t B, int include_pad, float *y);
void re_k_adaptive_avgpool_blk(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                               float *y);

/* ---- layout conversions (plain C, kern_layout.c) ---- */

/* (B, C, hw) -> blocked (B, CB, hw, 8), padding lanes zero. */
void re_block(const float *x, int64_t B, int64_t C, int64_t hw, float *y);
/* Blocked -> (B, C, hw). */
void re_unblock(const float *x, int64_t B, int64_t C, int64_t hw, float *y);

/* ---- products with packed weights (fast_gemm.c) ---- */

/* A packed right-hand side: B (K x N) as ceil(N / 16) panels of Kp = pad8(K) rows of 16. */
typedef struct re_pack {
  int64_t K, Kp, N, np;
  float *w; /* np * Kp * 16, 64-byte aligned */
} re_pack;

/* B[k][n] = src[k * sk + n * sn] for k < K, n < N (0 outside). */
re_status re_pack_b(const float *src, int64_t K, int64_t N, int64_t sk, int64_t sn, re_pack *out);
/* The same into w (re_pack_floats(K, N) floats, 32-byte aligned), which out then borrows. */
int64_t re_pack_floats(int64_t K, int64_t N);
void re_pack_b_into(const float *src, int64_t K, int64_t N, int64_t sk, int64_t sn, float *w, re_pack *out);
void re_pack_free(re_pack *p);
/* Aligned buffer of n floats (64 bytes); free with free(). */
re_status re_kern_alloc(int64_t n, float **out);

/* A product Y = epi(A B) with B packed: A's rows come in slivers from `pack` (rows
 * [r0, r0 + rows) and the reduction range [k0, k0 + kc), both multiples of 8 on the k
 * side; rows past M repeat row M - 1), Y's rows go where `dst` says (row r, panel j:
 * dst[0] for columns 0..7, dst[0] + *off8 for 8..15, likewise res). */
typedef struct re_gemm_op {
  int64_t M;
  const re_pack *b;
  const re_epi *e;
  void (*pack)(const struct re_gemm_op *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, float *a);
  void (*dst)(const struct re_gemm_op *op, int64_t r, int64_t j, float **y, const float **res, int64_t *off8);
  int64_t nc_max;   /* columns that exist in Y (b->N, or the padded channels of a blocked image) */
  const void *ctx;  /* the source and destination the callbacks read */
} re_gemm_op;
/* Floats of workspace for `threads` threads. */
int64_t re_gemm_op_work(const re_pack *b, int threads);
/* Run op on `threads` threads (rows, or panels too when rows are few); every output is
 * summed in the same order whatever the thread count. With threads = 1 it runs on the
 * calling thread only (inside another parallel loop: its own work). */
void re_gemm_run(const re_gemm_op *op, float *work, int threads);

/* y (M x N, row stride ldy) = epi(x (M x K, row stride ldx) * B), the residual (if res)
 * read with stride ldr. */
void re_gemm_rows(const float *x, int64_t M, int64_t ldx, const re_pack *b, const re_epi *e, const float *res,
                  int64_t ldr, float *y, int64_t ldy, float *work, int threads);

#endif
