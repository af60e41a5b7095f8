/* Fuzz target: safetensors parsing from memory, then every tensor read as float32
 * (and as a zero-copy view), which touches exactly the bytes the header claims. */
#include <stdlib.h>

#include "../../lib/io/ckpt/ckpt_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  re_ckpt *c = NULL;
  if (re_ckpt_alloc("fuzz.safetensors", RE_CKPT_SAFETENSORS, &c) != RE_OK)
    return 0;
  if (re_safetensors_parse(c, data, (int64_t)size) == RE_OK) {
    for (int64_t i = 0; i < re_ckpt_count(c); i++) {
      const re_tensor_info *ti = re_ckpt_info(c, i);
      if (ti->numel > (1 << 22))
        continue;
      float *v = malloc(sizeof(float) * (size_t)(ti->numel + 1));
      if (v)
        (void)re_ckpt_read_f32(c, i, v);
      free(v);
      re_tensor_stats ts; /* every element hashed and summed: the same bytes as the reads */
      (void)re_ckpt_tensor_stats(c, i, &ts);
      const float *view;
      (void)re_ckpt_view_f32(c, i, &view);
    }
    for (int64_t i = 0; i < re_ckpt_metadata_count(c); i++) {
      const char *k, *val;
      re_ckpt_metadata(c, i, &k, &val);
    }
  }
  re_ckpt_close(&c);
  return 0;
}
