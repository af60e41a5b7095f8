/* Fuzz target: YAML configuration parsing (job and model files start here). */
#include "repeval/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  re_cfg *c = NULL;
  if (re_cfg_parse_string((const char *)data, (int64_t)size, "fuzz.yaml", &c) == RE_OK) {
    int64_t v;
    (void)re_cfg_get_int(c, "batch", &v);
    (void)re_cfg_expect_map(c, "job", (const char *const[]){"name", "data", NULL});
  }
  re_cfg_free(&c);
  return 0;
}
