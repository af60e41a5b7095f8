/* Fuzz target: a whole torch.save archive from memory (zip directory, libarchive,
 * unpickler, state_dict selection), then every tensor read as float32 and hashed. */
#include <stdlib.h>

#include "../../lib/io/ckpt/torch_ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  re_ckpt *c = NULL;
  re_ckpt_options opt = {NULL, (int)(size & 1)};
  if (re_ckpt_alloc("fuzz.pt", RE_CKPT_TORCH, &c) != RE_OK)
    return 0;
  if (re_torch_parse(c, data, (int64_t)size, &opt) == RE_OK) {
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
    }
  }
  re_ckpt_close(&c);
  return 0;
}
