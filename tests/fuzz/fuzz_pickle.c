/* Fuzz target: the restricted unpickler on raw bytes (torch's data.pkl). */
#include "../../lib/io/ckpt/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  re_pickle *p = NULL;
  if (re_pickle_load(data, (int64_t)size, "fuzz.pkl", &p) == RE_OK) {
    const re_pk_obj *r = re_pickle_root(p);
    /* one level of the result, as the checkpoint reader walks it */
    int64_t n = r->kind == RE_PK_DICT ? 2 * r->n : (r->kind == RE_PK_LIST || r->kind == RE_PK_TUPLE) ? r->n : 0;
    for (int64_t k = 0; k < n; k++) {
      const re_pk_obj *o = r->items[k];
      if (o->kind == RE_PK_TENSOR && o->t->storage->kind != RE_PK_STORAGE)
        __builtin_trap();
      (void)re_pk_kind_name(o->kind);
    }
  }
  re_pickle_free(&p);
  return 0;
}
