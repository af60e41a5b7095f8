/* Private: the fast path's convolutions (fast_conv.c) and its plan for a bound net
 * (plan.c): which kernels run, which modules are folded into the one before them. */
#ifndef REPEVAL_NN_FAST_H
#define REPEVAL_NN_FAST_H

#include "kern.h"

typedef struct re_fconv re_fconv;

/* 1 when the fast path can run this convolution (groups == 1). */
int re_fconv_eligible(const re_conv_geom *g);
/* Pack a convolution's weights (Co, C, kh, kw) once: Winograd filters for 3 x 3 stride-1
 * convolutions of C >= 8 channels, else sliver panels. scale/shift (Co each, or NULL)
 * fold a batch norm after it: y = conv(x) * scale + shift; then the activation if has_act. */
re_status re_fconv_make(const re_conv_geom *g, const float *w, const float *bias, const float *scale,
                        const float *shift, int has_act, re_act act, re_fconv **out);
void re_fconv_free(re_fconv **f);
/* 1 when the convolution reads a plain (B, C, H, W) input (C < 8), else a blocked one. */
int re_fconv_plain_input(const re_fconv *f);
/* Name of the kernel, for the profile. */
const char *re_fconv_kernel(const re_fconv *f);
/* Floats of workspace for `threads` threads. */
int64_t re_fconv_work(const re_fconv *f, int threads);
/* y (blocked, B x Co x Ho x Wo) = epi(conv(x) + res): res blocked like y or NULL. */
void re_fconv_run(const re_fconv *f, const float *x, int64_t B, const float *res, float *y, float *work,
                  int threads);

/* A linear layer's packed weights: B = W^T (in x out), bias and activation in the epilogue. */
typedef struct re_fast_lin {
  re_pack w;
  float *bias; /* out padded to the panel width, or NULL */
  re_epi epi;
} re_fast_lin;

/* Multi-head self-attention with packed projections (fast_attn.c): x (B, T, D) -> y, the
 * in projection to [q | k | v] (3D), the out projection (D), and res (B, T, D, or NULL)
 * added in the out projection's epilogue. work: re_fmha_work floats. */
int64_t re_fmha_work(const re_fast_lin *in, const re_fast_lin *out, int64_t B, int64_t T, int64_t heads,
                     int threads);
void re_fmha_run(const re_fast_lin *in, const re_fast_lin *out, const float *x, int64_t B, int64_t T, int64_t D,
                 int64_t heads, const float *res, float *y, float *work, int threads);

#endif
