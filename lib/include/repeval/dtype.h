/* Element types of tensors in files (npy, safetensors, PyTorch) and conversion to float. */
#ifndef REPEVAL_DTYPE_H
#define REPEVAL_DTYPE_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum re_dtype {
  RE_DTYPE_F16 = 0,
  RE_DTYPE_BF16,
  RE_DTYPE_F32,
  RE_DTYPE_F64,
  RE_DTYPE_I8,
  RE_DTYPE_I16,
  RE_DTYPE_I32,
  RE_DTYPE_I64,
  RE_DTYPE_U8,
  RE_DTYPE_U16,
  RE_DTYPE_U32,
  RE_DTYPE_U64,
  RE_DTYPE_BOOL,
  RE_DTYPE_COUNT
} re_dtype;

/* Bytes per element. */
int64_t re_dtype_size(re_dtype dt);
/* NumPy-style name ("float32", "bfloat16", "bool"). */
const char *re_dtype_name(re_dtype dt);

/* IEEE binary16 -> float. */
float re_f16_to_f32(uint16_t h);
/* bfloat16 -> float. */
float re_bf16_to_f32(uint16_t h);
/* float -> IEEE binary16, round to nearest even. */
uint16_t re_f32_to_f16(float f);

/* Convert `count` elements stored as `dt` at `src` (byte-swapped first if `swap`)
 * to double at `dst`. `src` need not be aligned. */
void re_dtype_to_f64(re_dtype dt, int swap, const void *src, int64_t count, double *dst);
/* Same, to float. */
void re_dtype_to_f32(re_dtype dt, int swap, const void *src, int64_t count, float *dst);

#ifdef __cplusplus
}
#endif
#endif
