/* Private: float32 kernels of the forward engine. Activations are row-major with
 * the batch first: images (B, C, H, W), tokens (B, T, D), vectors (B, D). Every
 * large product goes through OpenBLAS sgemm; workspaces are the caller's. */
#ifndef REPEVAL_NN_OPS_H
#define REPEVAL_NN_OPS_H

#include <stdint.h>

/* y (M x N) = x (M x K) W^T (W: N x K) + bias (N, may be NULL). */
void re_op_linear(const float *x, int64_t M, int64_t K, const float *W, const float *bias, int64_t N, float *y);

typedef struct re_conv_geom {
  int64_t C, H, W;      /* input */
  int64_t Co, Ho, Wo;   /* output */
  int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
} re_conv_geom;

/* Output size of a convolution/pooling window along one axis (floor mode); 0 when
 * the dilated window is larger than the padded input. */
int64_t re_conv_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d);

/* Bytes of workspace re_op_conv2d needs for a batch of B images. */
int64_t re_op_conv2d_workspace(const re_conv_geom *g, int64_t B);
/* 2-D convolution: x (B, C, H, W), W (Co, C/groups, kh, kw), bias (Co or NULL) -> y (B, Co, Ho, Wo). */
void re_op_conv2d(const re_conv_geom *g, const float *x, int64_t B, const float *W, const float *bias, float *y,
                  float *work);

/* y = x * scale[c] + shift[c] over channel axis c of (B, C, inner): BatchNorm in eval mode. In place allowed. */
void re_op_channel_affine(const float *x, int64_t B, int64_t C, int64_t inner, const float *scale,
                          const float *shift, float *y);
/* LayerNorm over the last dimension D of (rows, D). In place allowed. */
void re_op_layernorm(const float *x, int64_t rows, int64_t D, const float *gamma, const float *beta, double eps,
                     float *y);

typedef enum re_act { RE_ACT_RELU, RE_ACT_GELU, RE_ACT_SILU, RE_ACT_TANH, RE_ACT_SIGMOID } re_act;
/* Elementwise activation of n values. In place allowed. */
void re_op_activation(re_act a, const float *x, int64_t n, float *y);
/* y[i] = a[i] + b[i]. In place allowed. */
void re_op_add(const float *a, const float *b, int64_t n, float *y);

/* Max / average pooling over (B, C, H, W) with window kh x kw, stride, padding
 * (average: count_include_pad as PyTorch's default when include_pad). */
void re_op_maxpool2d(const re_conv_geom *g, const float *x, int64_t B, float *y);
void re_op_avgpool2d(const re_conv_geom *g, const float *x, int64_t B, int include_pad, float *y);
/* Adaptive average pooling to (Ho, Wo) with PyTorch's window rule. */
void re_op_adaptive_avgpool2d(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo,
                              float *y);

/* Multi-head self-attention over x (B, T, D) with packed in_proj (3D x D, bias 3D) and
 * out_proj (D x D, bias D) -> y (B, T, D). work: re_op_mha_workspace floats. */
int64_t re_op_mha_workspace(int64_t B, int64_t T, int64_t D);
void re_op_mha(const float *x, int64_t B, int64_t T, int64_t D, int64_t heads, const float *in_w,
               const float *in_b, const float *out_w, const float *out_b, float *y, float *work);

#endif
