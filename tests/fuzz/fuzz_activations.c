/* Fuzz target: activation exports (lib/io/activations.c). The reader works on a
 * folder, so each input is written as the manifest (activations.json) of a private
 * export folder that also holds valid files for it to name: sample_ids.npy (ids 0..7),
 * .npy shards (8 x 3, and two halves 4 x 3), a safetensors file (tensors "h:flatten"
 * float32 8 x 3 and "g" float16 8 x 6) and an .rpc shard (8 x 3). Whatever opens is
 * read back in full, in two reads per tap. Seeds: tests/fuzz/corpus/activations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"

#include "repeval/activations.h"
#include "repeval/atomic.h"
#include "repeval/npy.h"
#include "repeval/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], manifest[400];

static const char *const FILES[] = {"sample_ids.npy", "h.flatten/0.npy", "h.flatten/a.npy", "h.flatten/b.npy",
                                    "s.safetensors", "h.flatten/0.rpc", RE_ACT_MANIFEST};

static void cleanup(void) {
  char p[600];
  for (size_t k = 0; k < sizeof FILES / sizeof FILES[0]; k++) {
    snprintf(p, sizeof p, "%s/%s", dir, FILES[k]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/h.flatten", dir);
  rmdir(p);
  rmdir(dir);
}

/* A safetensors file with "g" (F16, 8 x 6) and "h:flatten" (F32, 8 x 3). */
static void write_safetensors(const char *path, const float *v) {
  const char *hdr = "{\"g\":{\"dtype\":\"F16\",\"shape\":[8,6],\"data_offsets\":[0,96]},"
                    "\"h:flatten\":{\"dtype\":\"F32\",\"shape\":[8,3],\"data_offsets\":[96,192]}}";
  size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8;
  uint64_t n = hl + pad;
  FILE *f = fopen(path, "wb");
  if (!f)
    abort();
  fwrite(&n, 8, 1, f);
  fwrite(hdr, 1, hl, f);
  for (size_t k = 0; k < pad; k++)
    fputc(' ', f);
  for (int k = 0; k < 48; k++) {
    uint16_t h = re_f32_to_f16(v[k % 24]);
    fwrite(&h, 2, 1, f);
  }
  fwrite(v, sizeof(float), 24, f);
  fclose(f);
}

static void setup(void) {
  re_log_set_level(RE_LOG_ERROR);
  fuzz_make_dir(dir, sizeof dir, "activations");
  char p[600];
  snprintf(p, sizeof p, "%s/h.flatten", dir);
  if (re_mkdir_p(p) != RE_OK)
    abort();
  int64_t ids[8];
  float v[24];
  for (int k = 0; k < 8; k++)
    ids[k] = k;
  for (int k = 0; k < 24; k++)
    v[k] = (float)(k % 7) * 0.25f - 0.75f;
  int64_t s1 = 8, s83[2] = {8, 3}, s43[2] = {4, 3};
  snprintf(p, sizeof p, "%s/sample_ids.npy", dir);
  re_status st = re_npy_write(p, RE_DTYPE_I64, 1, &s1, ids);
  snprintf(p, sizeof p, "%s/h.flatten/0.npy", dir);
  if (st == RE_OK)
    st = re_npy_write(p, RE_DTYPE_F32, 2, s83, v);
  snprintf(p, sizeof p, "%s/h.flatten/a.npy", dir);
  if (st == RE_OK)
    st = re_npy_write(p, RE_DTYPE_F32, 2, s43, v);
  snprintf(p, sizeof p, "%s/h.flatten/b.npy", dir);
  if (st == RE_OK)
    st = re_npy_write(p, RE_DTYPE_F32, 2, s43, v + 12);
  snprintf(p, sizeof p, "%s/h.flatten/0.rpc", dir);
  if (st == RE_OK)
    st = re_rpc_write(p, 0, 8, 3, 0, v);
  if (st != RE_OK)
    abort();
  snprintf(p, sizeof p, "%s/s.safetensors", dir);
  write_safetensors(p, v);
  snprintf(manifest, sizeof manifest, "%s/%s", dir, RE_ACT_MANIFEST);
  atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0])
    setup();
  if (!fuzz_write_input(manifest, data, size))
    return 0;
  re_act *a = NULL;
  re_status st = re_act_open(dir, 1, &a);
  if (getenv("REPEVAL_FUZZ_VERBOSE")) /* triage */
    fprintf(stderr, "fuzz_activations: %s\n", st == RE_OK ? "opens" : re_errmsg());
  if (st != RE_OK)
    return 0;
  int64_t n = re_act_count(a);
  for (int t = 0; t < re_act_ntaps(a); t++) {
    const re_act_tap *tp = re_act_tap_at(a, t);
    int64_t row = tp->rows_per_sample * tp->dim;
    if (row > (1 << 16) || n * row > (1 << 20))
      continue;
    float *out = malloc(sizeof(float) * (size_t)(n * row));
    if (!out)
      break;
    int64_t half = n / 2;
    if (re_act_read(a, t, 0, half, out) == RE_OK)
      (void)re_act_read(a, t, half, n - half, out + half * row);
    (void)re_act_shard_at(a, t, n - 1);
    free(out);
  }
  for (int64_t k = 0; k < n; k++)
    (void)re_act_id(a, k);
  re_act_close(&a);
  return 0;
}
