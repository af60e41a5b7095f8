/* Private: float32 kernels of the forward engine. Activations are row-major with
 * the batch first: images (B, C, H, W), tokens (B, T, D), vectors (B, D). Every
 * large product goes through OpenBLAS sgemm; workspaces are the caller's. */
#ifndef REPEVAL_NN_OPS_H
#define REPEVAL_NN_OPS_H

#include <stdint.h>

/* y (M x N) = x (M x K) W^T (W: N x K) + bias (N, may be NULL). */
void re_op_linear(const float *x, int64_t M, int64_t K, const float *W, const float *bias, int64_t N, float *y);
/* y (M x N) = x (M x K) W (W: K x N, GPT-2's Conv1D layout) + bias (N, may be NULL). */
void re_op_linear_t(const float *x, int64_t M, int64_t K, const float *W, const float *bias, int64_t N, float *y);

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

/* RMSNorm over the last dimension D of (rows, D): x / sqrt(mean(x^2) + eps) * gamma
 * (Zhang & Sennrich 2019; transformers' LlamaRMSNorm). In place allowed. */
void re_op_rmsnorm(const float *x, int64_t rows, int64_t D, const float *gamma, double eps, float *y);

/* GELU_TANH: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), transformers' gelu_new.
 * QUICK_GELU: x * sigmoid(1.702 x) (CLIP). */
typedef enum re_act {
  RE_ACT_RELU,
  RE_ACT_GELU,
  RE_ACT_SILU,
  RE_ACT_TANH,
  RE_ACT_SIGMOID,
  RE_ACT_GELU_TANH,
  RE_ACT_QUICK_GELU
} re_act;
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

/* y[r, d] = x[r, d] * scale[d] for rows x D. In place allowed. */
void re_op_scale_features(const float *x, int64_t rows, int64_t D, const float *scale, float *y);

/* Resampling matrix (out x in, row-major, rows summing to 1) of PyTorch's 1-D bicubic
 * interpolation from `in` to `out` samples with align_corners=False: Keys' cubic with
 * a = -0.75 and clamped borders, or with antialias (a = -0.5, the kernel widened by
 * in/out when shrinking, weights normalised), as torch.nn.functional.interpolate. */
void re_op_bicubic_matrix(int64_t in, int64_t out, int antialias, double *w);

/* ---- attention (ops_attn.c) ---- */

/* Rotary position embedding in place, transformers' rotate_half convention: for each
 * row r (rows = B*T, row stride ld) and head h (at column h*hstride), the first 2*half
 * values x are rotated: x[i] <- x[i] cos - x[i+half] sin, x[i+half] <- x[i+half] cos + x[i] sin,
 * with cos/sin (npos x half) taken at row pos[r]. */
void re_op_rope(float *x, int64_t rows, int64_t ld, int64_t heads, int64_t hstride, int64_t half,
                const int32_t *pos, const float *cos_t, const float *sin_t);

/* Self-attention over a batch, blockwise with an online softmax (Milakov & Gimelshein 2018;
 * FlashAttention, Dao et al. 2022): for each sample, head and block of queries, key blocks
 * are visited in order keeping a running max and sum, so no T x T matrix is formed.
 * Query head h reads key/value head h / (heads / kv_heads) (grouped-query attention).
 * Element (b, t, h, d) of q is q[(b*T + t)*ldq + h*q_hs + d], likewise k, v; out
 * (b, t, h*head_dim + d) at out[(b*T + t)*ldo + h*head_dim + d]. */
typedef struct re_attn_args {
  int64_t B, T, heads, kv_heads, head_dim;
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv, q_hs, k_hs, v_hs;
  float *out;
  int64_t ldo;
  float scale;           /* scores are scale * q.k */
  int causal;            /* key j is visible to query i only when j <= i */
  const uint8_t *mask;   /* B x T, 0: padding key (never attended); NULL: none */
  int64_t block_q, block_k;
} re_attn_args;
/* Floats of workspace re_op_attention needs. */
int64_t re_op_attention_workspace(int64_t block_q, int64_t block_k);
/* Rows whose every key is masked get zeros. */
void re_op_attention(const re_attn_args *a, float *work);

#endif
