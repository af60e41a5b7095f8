/* Analyses as units. Each kind (cka, cca, spectrum, probe, ...) lives in one file,
 * run/an_<kind>.c, with its job keys, its plan on a dataset pass, its metrics and
 * its manifest entry, and is listed in the table of run/analysis.c: adding a kind
 * is that file, its line in the table and its name in pipeline/CMakeLists.txt (a
 * kind giving the total variance of each tap from the pass's co-moments takes 24
 * lines: keys, a setup asking for the diagonal blocks, a finalize writing rows).
 *
 * The run calls the hooks in this order: parse (job file), setup (each pass over a
 * dataset the analysis uses: accumulators, co-moment blocks, taps to keep), the
 * streaming and the reduction (the pass feeds the accumulators it was given),
 * finalize (collective, after the pass is reduced), after_passes (collective, once
 * every pass is done), manifest. A hook left NULL does nothing. */
#ifndef REPEVAL_RUN_ANALYSIS_H
#define REPEVAL_RUN_ANALYSIS_H

#include <stdio.h>

#include "out/json.h"
#include "repeval/cca.h"
#include "run/run.h"

/* Which 'pairs' values a kind accepts. */
enum { AN_NO_PAIRS = 0, AN_PAIRS = 1, AN_PAIRS_REFERENCE = 2 };

struct an_kind {
  const char *type;          /* the job's type: (and default from the analysis' name) */
  const char *const *keys;   /* the keys it reads besides the common ones (NULL-terminated) */
  int pairs;                 /* AN_NO_PAIRS, AN_PAIRS or AN_PAIRS_REFERENCE */
  job_pairs default_pairs;
  size_t opts_size;          /* its settings (job_analysis.opts, zeroed before parse) */
  int own_dataset;           /* parse reads the datasets itself; else the common key 'dataset'
                              * (required) is read before parse */
  /* its own keys, defaults first; the common ones (dataset, checkpoints, layers, pairs) are read */
  re_status (*parse)(job *j, job_analysis *a, const re_cfg *c);
  void (*free_opts)(void *opts); /* what parse allocated inside opts (opts itself is freed) */
  /* the datasets it streams besides a->dataset (probes: test and validation sets), or NULL */
  int (*other_dataset)(const job_analysis *a, int k, const char **name);
  /* the statistics batch it needs on its dataset (minibatch estimators), 0: any */
  int64_t (*stats_batch)(const job_analysis *a);
  /* on a pass over a dataset it uses: its accumulators (ar's), blocks of the pass's
   * co-moments (run_pass_use_moments), taps to keep (probes) */
  re_status (*setup)(runner *r, pass *p, an_run *ar);
  /* collective, after the pass is reduced to rank 0: rows and files */
  re_status (*finalize)(runner *r, pass *p, an_run *ar, re_eig **eigs);
  /* the blocks of the pass's co-moments this rank's finalize reads (an_need_blocks);
   * only they reach it from rank 0. NULL, for a kind that asked for co-moments: every block */
  void (*moment_blocks)(const runner *r, const pass *p, const an_run *ar, uint8_t *need);
  /* the co-moment layers whose eigendecomposition (an_eig) this rank's finalize reads:
   * need[layer] = 1; each is then made once, by one of the ranks reading it, and sent
   * to the others before the finalize hooks run. NULL: none declared (made where read) */
  void (*eig_layers)(const runner *r, const pass *p, const an_run *ar, uint8_t *need);
  /* collective, once after every pass, for all the job's analyses of this kind (probes fit then) */
  re_status (*after_passes)(runner *r);
  /* after_passes reads the checkpoints, not cached rows: it runs in finalize without a cache */
  int after_passes_reads_checkpoints;
  /* its settings in manifest.json, after "name" and "type": ", \"key\": value" ... */
  void (*manifest)(FILE *f, const job_analysis *a);
  /* its pairs' cost grows with the taps' widths (eigendecompositions and cross blocks):
   * the shares of the ranks are cut by d_i d_l (d_i + d_l), else by the number of pairs */
  int pair_cost_width;
  /* its setup keeps tap rows for later (an_keep_rows): set up before the kinds that
   * compute chunks in their setup, as the kinds with after_passes are */
  int keeps_rows;
};

/* Parse analysis `name` of the job (job.c, for each entry of 'analyses'): the shared
 * keys, then its kind's. */
re_status an_parse(job *j, job_analysis *a, const char *name, const re_cfg *c);
/* Free what an_parse made (the struct itself is the caller's). */
void an_free(job_analysis *a);
/* The kind called `type`, or NULL. */
const an_kind *an_find(const char *type);
/* "cka, cca, spectrum, probe": the kinds, for messages. */
const char *an_kind_names(void);
/* Does analysis a stream dataset `name` (as its own, or as another it uses)? */
int an_uses_dataset(const job_analysis *a, const char *name);
/* The kinds (for tests and listings). */
int an_kind_count(void);
const an_kind *an_kind_at(int k);

/* ---- helpers the kinds share (run/analysis.c) ---- */
/* A dataset key of the analysis' map: a dataset of the job, with labels if asked. */
re_status an_parse_dataset(job *j, const job_analysis *a, const re_cfg *c, const char *key, int required,
                           int need_labels, char **out);
/* ", \"dataset\": <its dataset>" and ", \"pairs\": <its pairs>" of a manifest entry. */
void an_manifest_dataset(FILE *f, const job_analysis *a);
void an_manifest_pairs(FILE *f, const job_analysis *a);

/* For moment_blocks hooks: mark the co-moment blocks (a, a), (b, b) and (a, b) of the
 * pass's taps t and u (u < 0: only (a, a)). */
void an_need_blocks(const pass *p, int t, int u, uint8_t *need);

/* Collective helpers of the finalize hooks. */
/* This rank's contiguous block [lo, hi) of n units, in rank order. */
void an_block(const runner *r, int64_t n, int64_t *lo, int64_t *hi);
/* Split the analysis' wanted pairs over the ranks (ar->share, run/pair_share.h): shares
 * that read few taps, of about equal cost (the kind's pair_cost_width); for a kind
 * without shares (CKA) only its list in order. Setup, not collective. */
re_status an_plan_pairs(const runner *r, an_run *ar);
/* The wanted pairs (i < l) of an analysis' taps in row-major order: every one
 * (an_pairs_all) or this rank's share (an_pairs_share). it.u: the pair's index among all
 * wanted pairs, it.k: among those iterated, it.n: how many those are.
 * for (an_pairs_share(r, ar, &it); an_pairs_next(ar, &it);) ...; a copy of an
 * iterator not yet stepped goes over the same pairs again. */
typedef struct an_pair_it {
  int i, l;
  int64_t u, k, n;
  uint64_t klo, khi; /* the share's Morton keys, [klo, khi) */
} an_pair_it;
void an_pairs_all(const an_run *ar, an_pair_it *it);
void an_pairs_share(const runner *r, const an_run *ar, an_pair_it *it);
/* Step to the next pair (it->i, it->l, it->u, it->k); 0 when there is none. */
int an_pairs_next(const an_run *ar, an_pair_it *it);
/* Is local tap q in some wanted pair? */
int an_tap_paired(const an_run *ar, int q);
/* <type>_<name>_taps.csv: the table of the analysis' taps (rank 0). */
re_status an_write_taps(runner *r, const an_run *ar);
/* Rows written between rows_begin and rows_end by every rank reach rank 0's metrics in
 * rank order; with rows_begin_pairs, each pair's rows (an_rows_pair before them) in
 * row-major pair order, whichever rank's share holds it. */
typedef struct rows_sink {
  FILE *keep, *f;
  char *buf;
  size_t len;
  int nund0;
  const an_run *ar;     /* rows per pair of ar (an_rows_begin_pairs), or NULL */
  int64_t *mark;        /* per pair: its index u and the offset of its first row */
  int64_t nmark, cap;
} rows_sink;
re_status an_rows_begin(runner *r, rows_sink *k);
re_status an_rows_begin_pairs(runner *r, rows_sink *k, const an_run *ar);
/* The rows written next are pair it's (a pair of this rank's share, in iterator order). */
re_status an_rows_pair(rows_sink *k, const an_pair_it *it);
/* The rows gathered; returns `body` (the status of what wrote them) when it failed, else its own. */
re_status an_rows_end(runner *r, rows_sink *k, re_status body);
/* Rank 0's co-moments to every rank (chunks of 2^26 doubles). */
re_status an_share_moments(runner *r, re_moments *m);
/* The eigendecomposition of layer li of co-moments m, made once and kept in cache[li]. */
re_status an_eig_of(const re_moments *m, re_eig **cache, int li);
/* The same for the pass's co-moments (once per pass). */
re_status an_eig(pass *p, re_eig **cache, int li);
/* Those of the co-moment layers *la, *lb of the analysis' taps i and l (set first). */
re_status an_eig_pair(pass *p, re_eig **cache, const an_run *ar, int i, int l, int *la, int *lb);
/* Write a float64 matrix into the output as <prefix>_<name>.npy (rank 0). */
re_status an_write_matrix(runner *r, const char *prefix, const char *name, const double *M, int64_t rows,
                          int64_t cols);

/* ---- helpers of the kinds that read tap rows after the pass (run/an_rows.c) ---- */
/* For a setup: the rows of the analysis' taps (one row per sample; spatial taps are
 * refused) and, with `labels`, the dataset's labels go to the cache shards of the pass
 * (the job's cache, or the run's own), to be read by an_stored_rows. */
re_status an_keep_rows(runner *r, pass *p, an_run *ar, int labels);
/* Rows [row0, row1) of global tap t of dataset d from the shards (rows x dim float32);
 * t < 0: the labels into y. Local (no MPI). */
re_status an_stored_rows(runner *r, int d, int t, int64_t row0, int64_t row1, float *X, int32_t *y);
/* Whether the stored rows exist in this mode: not in finalize without the job's cache
 * (then a warning says the analysis' rows are missing). */
int an_rows_available(runner *r, const job_analysis *a);
/* Write an array into the output as `file` (rank 0). */
re_status an_write_npy(runner *r, const char *file, re_dtype dt, int ndim, const int64_t *shape, const void *data);
/* "flatten", "mean", ... of global tap t. */
const char *an_tap_mode(const runner *r, int t);

#endif
