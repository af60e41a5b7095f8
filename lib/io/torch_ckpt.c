/* PyTorch checkpoint reader (being written). */
#include "ckpt_internal.h"

re_status re_torch_load(re_ckpt *c, const re_ckpt_options *opt) {
  (void)opt;
  return re_err(RE_EUNSUPPORTED, "%s: PyTorch checkpoint reading is not built yet", c->path);
}
