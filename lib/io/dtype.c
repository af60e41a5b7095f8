/* Element types and conversion of stored elements to float/double. */
#include "repeval/dtype.h"

#include <math.h>
#include <string.h>

int64_t re_dtype_size(re_dtype dt) {
  static const int64_t sizes[RE_DTYPE_COUNT] = {2, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1};
  return (dt >= 0 && dt < RE_DTYPE_COUNT) ? sizes[dt] : 0;
}

const char *re_dtype_name(re_dtype dt) {
  static const char *names[RE_DTYPE_COUNT] = {
      "float16", "bfloat16", "float32", "float64", "int8",   "int16", "int32",
      "int64",   "uint8",    "uint16",  "uint32",  "uint64", "bool"};
  return (dt >= 0 && dt < RE_DTYPE_COUNT) ? names[dt] : "invalid";
}

float re_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: value = man * 2^-24 */
      float f = (float)man * 0x1p-24f;
      return sign ? -f : f;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

float re_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t re_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) /* Inf or NaN */
    return sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0);
  if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
    return sign | 0x7c00u;
  if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
    float a;
    memcpy(&a, &absx, 4);
    /* value in units of 2^-24, rounded to nearest even by the FPU */
    float scaled = a * 0x1p24f;
    uint32_t m = (uint32_t)lrintf(scaled);
    return sign | (uint16_t)m;
  }
  uint32_t exp = ((absx >> 23) - 112u) << 10;
  uint32_t man = (absx >> 13) & 0x3ffu;
  uint32_t rest = absx & 0x1fffu;
  uint32_t h = exp | man;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    h += 1u; /* may carry into the exponent, which is the right answer */
  return sign | (uint16_t)h;
}

static void swap_bytes(uint8_t *p, int64_t size) {
  for (int64_t i = 0; i < size / 2; i++) {
    uint8_t t = p[i];
    p[i] = p[size - 1 - i];
    p[size - 1 - i] = t;
  }
}

/* Load one element as double. */
static double load_one(re_dtype dt, int swap, const uint8_t *p) {
  uint8_t b[8];
  int64_t sz = re_dtype_size(dt);
  memcpy(b, p, (size_t)sz);
  if (swap)
    swap_bytes(b, sz);
  switch (dt) {
  case RE_DTYPE_F16: { uint16_t v; memcpy(&v, b, 2); return re_f16_to_f32(v); }
  case RE_DTYPE_BF16: { uint16_t v; memcpy(&v, b, 2); return re_bf16_to_f32(v); }
  case RE_DTYPE_F32: { float v; memcpy(&v, b, 4); return v; }
  case RE_DTYPE_F64: { double v; memcpy(&v, b, 8); return v; }
  case RE_DTYPE_I8: { int8_t v; memcpy(&v, b, 1); return v; }
  case RE_DTYPE_I16: { int16_t v; memcpy(&v, b, 2); return v; }
  case RE_DTYPE_I32: { int32_t v; memcpy(&v, b, 4); return v; }
  case RE_DTYPE_I64: { int64_t v; memcpy(&v, b, 8); return (double)v; }
  case RE_DTYPE_U8: return b[0];
  case RE_DTYPE_U16: { uint16_t v; memcpy(&v, b, 2); return v; }
  case RE_DTYPE_U32: { uint32_t v; memcpy(&v, b, 4); return v; }
  case RE_DTYPE_U64: { uint64_t v; memcpy(&v, b, 8); return (double)v; }
  case RE_DTYPE_BOOL: return b[0] ? 1.0 : 0.0;
  case RE_DTYPE_COUNT: break;
  }
  return NAN;
}

void re_dtype_to_f64(re_dtype dt, int swap, const void *src, int64_t count, double *dst) {
  const uint8_t *p = (const uint8_t *)src;
  if (!swap && dt == RE_DTYPE_F64) {
    memcpy(dst, p, (size_t)count * 8);
    return;
  }
  if (!swap && dt == RE_DTYPE_F32) {
    for (int64_t i = 0; i < count; i++) {
      float v;
      memcpy(&v, p + 4 * i, 4);
      dst[i] = v;
    }
    return;
  }
  int64_t sz = re_dtype_size(dt);
  for (int64_t i = 0; i < count; i++)
    dst[i] = load_one(dt, swap, p + sz * i);
}

void re_dtype_to_f32(re_dtype dt, int swap, const void *src, int64_t count, float *dst) {
  const uint8_t *p = (const uint8_t *)src;
  if (!swap && dt == RE_DTYPE_F32) {
    memcpy(dst, p, (size_t)count * 4);
    return;
  }
  int64_t sz = re_dtype_size(dt);
  for (int64_t i = 0; i < count; i++)
    dst[i] = (float)load_one(dt, swap, p + sz * i);
}
