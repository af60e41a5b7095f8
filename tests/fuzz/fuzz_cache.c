/* Fuzz target: embedding-cache shards (.rpc, pipeline/run/run_cache.c). The shard reader
 * works on a path, so each input is written where run_cache_get looks for the shard of
 * (checkpoint key, data key, layer, samples 0..4) in a private temporary folder. The
 * expected rows and dim are those of the input's header when they are small (else
 * 4 x 8), so mutations of the header are checked against matching expectations.
 *
 * With REPEVAL_FUZZ_SEED_DIR set, the first call also writes valid float32 and float16
 * shards there with run_cache_put (seeds for the corpus; see make_run_corpora.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"

#include "repeval/atomic.h"
#include "run/run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CK 0x1234abcd5678ef90ULL
#define DK 0x0fedcba987654321ULL
#define LAYER "fc1.flatten"

static runner r; /* zeroed; rank 1: warnings are kept, not printed */
static char dir[256], path[600];

static void cleanup(void) {
  unlink(path);
  char p[512];
  snprintf(p, sizeof p, "%s/%016llx/%016llx/%s", dir, (unsigned long long)CK, (unsigned long long)DK, LAYER);
  rmdir(p);
  snprintf(p, sizeof p, "%s/%016llx/%016llx", dir, (unsigned long long)CK, (unsigned long long)DK);
  rmdir(p);
  snprintf(p, sizeof p, "%s/%016llx", dir, (unsigned long long)CK);
  rmdir(p);
  rmdir(dir);
}

static void write_seeds(const char *seeds) {
  float v[4 * 8];
  for (int k = 0; k < 32; k++)
    v[k] = (float)(k % 9) * 0.375f - 1.0f;
  for (int f16 = 0; f16 < 2; f16++) {
    r.plan.cache_disabled = 0;
    run_cache_put(&r, seeds, CK, DK, LAYER, 0, 4, 4, 8, f16, v);
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/%016llx/%016llx/%s/0-4.rpc", seeds, (unsigned long long)CK,
             (unsigned long long)DK, LAYER);
    snprintf(to, sizeof to, "%s/shard_%s", seeds, f16 ? "f16" : "f32");
    if (rename(from, to) != 0)
      fprintf(stderr, "fuzz_cache: no seed written: %s\n", re_errmsg());
  }
}

static void setup(void) {
  re_log_set_level(RE_LOG_ERROR); /* damaged inputs are the point: no warning per input */
  r.comm.rank = 1;
  r.comm.size = 2;
  fuzz_make_dir(dir, sizeof dir, "cache");
  char folder[512];
  snprintf(folder, sizeof folder, "%s/%016llx/%016llx/%s", dir, (unsigned long long)CK, (unsigned long long)DK,
           LAYER);
  if (re_mkdir_p(folder) != RE_OK)
    abort();
  snprintf(path, sizeof path, "%s/0-4.rpc", folder);
  atexit(cleanup);
  const char *seeds = getenv("REPEVAL_FUZZ_SEED_DIR");
  if (seeds)
    write_seeds(seeds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0])
    setup();
  if (!fuzz_write_input(path, data, size))
    return 0;
  int64_t rows = 4, dim = 8;
  int f16 = 0;
  if (size >= 64) {
    int64_t hr, hd;
    uint32_t dt;
    memcpy(&dt, data + 8, 4);
    memcpy(&hr, data + 16, 8);
    memcpy(&hd, data + 24, 8);
    if (hr >= 1 && hd >= 1 && hr <= 4096 && hd <= 4096 && hr * hd <= (1 << 16))
      rows = hr, dim = hd;
    f16 = dt == 1;
  }
  float *out = malloc(sizeof(float) * (size_t)(rows * dim));
  if (!out)
    return 0;
  r.rep.nwarnings = 0;
  int hit = run_cache_get(&r, dir, CK, DK, LAYER, 0, 4, rows, dim, f16, out);
  if (getenv("REPEVAL_FUZZ_VERBOSE")) /* triage */
    fprintf(stderr, "fuzz_cache: %lld x %lld %s: %s\n", (long long)rows, (long long)dim, f16 ? "float16" : "float32",
            hit ? "hit" : r.rep.nwarnings ? r.rep.warnings[0] : "miss");
  free(out);
  return 0;
}
