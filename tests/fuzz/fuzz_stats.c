/* Fuzz target: statistics files of `repeval run` (pipeline/run/run_state.c): the reduced
 * statistics that `repeval finalize` reads from <out>/stats/ (kind 2) and the node
 * lists of array parts that `repeval merge` combines (kind 3). The readers work on a
 * path, so each input is written to a private temporary file, then read as both
 * kinds into a pass with one minibatch HSIC accumulator (2 taps) and one co-moment
 * accumulator (widths 3 and 2, debiased), then into a second pass whose minibatch
 * accumulator also keeps bootstrap, jackknife and permutation-null replicates; what
 * loads is reduced as merge does (collapse, then the root over samples / 4 batches,
 * or 8) and turned into CKA values and their uncertainty.
 *
 * With REPEVAL_FUZZ_SEED_DIR set, the first call also writes valid files of both
 * kinds there with the writers of run_state.c (seeds; see make_run_corpora.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"

#include "repeval/cka.h"
#include "run/run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static runner r;
static pass p, p2;     /* p2: the same accumulators, the minibatch one with replicates */
static an_run an, an2;
static char dir[256], path[300];

static void cleanup(void) {
  unlink(path);
  rmdir(dir);
}

/* Batch k of 4 samples through both accumulators of pass q (deterministic values). */
static void add_batch_to(pass *q, int k) {
  double x0[4 * 3], x1[4 * 2];
  float f0[4 * 3], f1[4 * 2];
  for (int e = 0; e < 12; e++)
    f0[e] = (float)(x0[e] = (double)((e * 7 + k * 3) % 11) / 4.0);
  for (int e = 0; e < 8; e++)
    f1[e] = (float)(x1[e] = (double)((e * 5 + k) % 7) / 3.0 + x0[e]);
  const double *X[2] = {x0, x1};
  int64_t ld[2] = {3, 2};
  re_moments_add_batch(q->mom, 4, X, ld);
  re_hsic *h = q->an[0].h;
  re_hsic_begin_batch_at(h, 4, k);
  re_hsic_add_tap_f32(h, 0, f0, 3, 3);
  re_hsic_add_tap_f32(h, 1, f1, 2, 2);
  re_hsic_end_batch(h);
}

static void write_seeds_of(pass *q, const char *seeds, const char *suffix) {
  char name[600];
  run_pass_reset(q);
  for (int k = 0; k < 8; k++)
    add_batch_to(q, k);
  r.rep.pass_samples = 32;
  snprintf(name, sizeof name, "%s/reduced%s.stats", seeds, suffix);
  run_state_write_reduced_to(&r, q, name);
  for (int nb = 5; nb <= 8; nb += 3) { /* 5 batches: nodes of heights 2 and 0; 8: one node */
    tree t;
    tree_init(&t, &q->acc);
    for (int k = 0; k < nb; k++) {
      run_pass_reset(q);
      add_batch_to(q, k);
      tree_push_leaf(&t, k);
    }
    r.rep.pass_samples = 4 * nb;
    snprintf(name, sizeof name, "%s/part%d%s.stats", seeds, nb, suffix);
    run_state_write_tree_to(&r, q, &t, name);
    tree_free(&t);
  }
}

static void write_seeds(const char *seeds) {
  write_seeds_of(&p, seeds, "");
  write_seeds_of(&p2, seeds, "_replicates");
}

static void setup(void) {
  re_log_set_level(RE_LOG_ERROR); /* damaged inputs are the point: no warning per input */
  r.comm.rank = 1;
  r.comm.size = 1;
  int64_t dims[2] = {3, 2};
  int32_t pairs[2] = {0, 1};
  re_hsic_config cfg = {2, RE_KERNEL_LINEAR, NULL, 8, 0, NULL};
  re_resampling rs = {3, 2, 2, 7};
  if (re_moments_create(2, dims, 1, pairs, RE_MOMENTS_DEBIASED, &p.mom) != RE_OK ||
      re_hsic_create(&cfg, &an.h) != RE_OK || re_moments_create(2, dims, 1, pairs, RE_MOMENTS_DEBIASED, &p2.mom) != RE_OK ||
      re_hsic_create(&cfg, &an2.h) != RE_OK || re_hsic_set_resampling(an2.h, &rs, 0) != RE_OK)
    abort();
  p.an = &an;
  p.nan = 1;
  run_pass_acc_init(&p);
  p2.an = &an2;
  p2.nan = 1;
  run_pass_acc_init(&p2);
  fuzz_make_dir(dir, sizeof dir, "stats");
  snprintf(path, sizeof path, "%s/x.stats", dir);
  atexit(cleanup);
  const char *seeds = getenv("REPEVAL_FUZZ_SEED_DIR");
  if (seeds)
    write_seeds(seeds);
}

static void use_state(pass *q) {
  re_cka_result res;
  re_hsic *h = q->an[0].h;
  (void)re_cka_linear_from_moments(q->mom, 0, 1, 0, &res);
  (void)re_cka_linear_from_moments(q->mom, 0, 1, 1, &res);
  (void)re_hsic_cka(h, 0, 1, 1, &res);
  (void)re_hsic_cka(h, 0, 1, 0, &res);
  if (q == &p2) {
    re_uncertainty u;
    (void)re_hsic_cka_uncertainty(h, 0, 1, RE_REP_BOOTSTRAP, RE_INTERVAL_PERCENTILE, 0.95, &u);
    (void)re_hsic_cka_uncertainty(h, 0, 1, RE_REP_JACKKNIFE, RE_INTERVAL_NORMAL, 0.9, &u);
  }
}

/* The input as reduced statistics and as an array part of pass q. */
static void read_as(pass *q, const char *what) {
  int verbose = getenv("REPEVAL_FUZZ_VERBOSE") != NULL; /* triage: what each reader said */
  re_status st = run_state_load_stats(&r, q, path);
  if (st == RE_OK)
    use_state(q);
  if (verbose)
    fprintf(stderr, "fuzz_stats: %s as reduced statistics: %s\n", what, st == RE_OK ? "loaded" : re_errmsg());
  tree t;
  int64_t samples = 0;
  st = run_state_read_tree_from(&r, q, path, &t, &samples);
  if (st == RE_OK)
    st = tree_collapse(&t);
  int64_t nb = samples / 4; /* the seeds hold batches of 4 samples */
  if (nb < 1 || nb > 64)
    nb = 8;
  if (st == RE_OK)
    st = tree_root(&t, nb);
  if (st == RE_OK)
    use_state(q);
  if (verbose)
    fprintf(stderr, "fuzz_stats: %s as an array part over %lld batches: %s\n", what, (long long)nb,
            st == RE_OK ? "loaded" : re_errmsg());
  tree_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0])
    setup();
  if (!fuzz_write_input(path, data, size))
    return 0;
  r.rep.nwarnings = 0;
  read_as(&p, "plain");
  read_as(&p2, "with replicates");
  return 0;
}
