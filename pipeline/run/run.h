/* Internals of `repeval run`, shared by its files: the plan (taps, nets, analyses
 * per dataset pass), the streaming pass, the reduction, resume state and the
 * finalize stage. Not part of the library API. */
#ifndef REPEVAL_RUN_H
#define REPEVAL_RUN_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpi/comm.h"
#include "mpi/counter.h"
#include "mpi/tree.h"
#include "repeval/atomic.h"
#include "repeval/dataset.h"
#include "repeval/hsic.h"
#include "repeval/moments.h"
#include "repeval/nn.h"
#include "run/job_types.h"
#include "run/pair_share.h"

#define RUN_DEFAULT_BUDGET_MB 8192
#define RUN_MAX_WARNINGS 64

typedef struct tapinfo {
  int model, ckpt, layer;
  int net_tap;
  int64_t dim, rps;
} tapinfo;

typedef struct an_run {
  job_analysis *a;
  int *taps; /* global tap indices, in tap order */
  int P;
  int32_t *pairs; /* local index pairs; NULL with npairs 0 means all */
  int npairs;
  re_hsic *h;    /* minibatch estimators' own accumulator (NULL: none) */
  struct unc_moments *ux; /* exact estimators' replicate accumulators (run/unc.h; NULL: none) */
  int uses_mom;  /* it asked for blocks of the pass's co-moments (run_pass_use_moments) */
  pair_share share; /* its wanted pairs and each rank's share of them (kinds with pairs) */
} an_run;

/* What a run does, fixed once it is set up (job, models, taps, mode, paths). */
typedef struct run_plan {
  job *j;
  int quiet;
  re_model **models;
  re_ckpt ***ckpts;
  re_net ***nets;
  tapinfo *taps;
  int ntaps;
  char partial[4096];      /* the output being written: <out>.partial-<pid> */
  int threads;             /* BLAS threads per rank (part of the fingerprint) */
  char state_dir[4200];    /* <out>.state */
  uint64_t fingerprint;    /* job file, model files, input sizes and mtimes */
  double checkpoint_every; /* seconds between periodic snapshots; 0: only on signals */
  int mode;                /* RUN_MODE_* */
  uint64_t *ckpt_key;      /* per checkpoint (models in order): content + model description */
  char probe_cache_dir[4400]; /* shards for probes when the job has no cache */
  int64_t *ds_n, *ds_chunk; /* per dataset: samples and cache granularity of its pass */
  uint64_t *ds_key;        /* per dataset: cache data key */
  int cache_disabled;
  int part, nparts;        /* --part I/N: this run streams part I of N of the batches */
  char *act_sha;           /* activations models: SHA-256 (hex, 65 bytes each) of every dataset file */
} run_plan;

/* What a run has found and will report: metrics rows, warnings, timings, counters. */
typedef struct run_report {
  FILE *metrics;
  char *metrics_buf;
  size_t metrics_len;
  char warnings[RUN_MAX_WARNINGS][512]; /* the first ones, for the manifest */
  int nwarnings, nundefined;
  int nlocal; /* ranks > 0: local warnings in warnings[], for run_gather_warnings */
  FILE *task_warn; /* set: run_warn writes here, one line each, on any rank (a probe task's) */
  double t_load, t_embed, t_reduce, t_final, t_probe;
  double t_wait; /* of t_embed: this rank waiting for the others (the per-step agreement) */
  double wait_max, wait_mean, wait_min; /* t_wait over the ranks (rank 0, after gather_counts) */
  int64_t samples_seen;
  int resumed;           /* some state was loaded */
  int resumes;           /* passes resumed in this run */
  int64_t pass_samples;  /* samples accumulated by the current pass (all ranks after reduce) */
  int64_t total_samples; /* over all passes, for the manifest */
  int64_t cache_hits, cache_writes, cache_bad;
  int64_t fwd_chunks;    /* chunks of a checkpoint run through its net (all ranks after gather_counts) */
  int ckpt_groups;       /* the most checkpoint groups of a pass's streaming (run_work.c) */
  double share_mb, state_mb; /* finalize: the most co-moment MB a rank received; the whole state's MB */
  double eig_mb;             /* finalize: the most MB of eigendecompositions a rank received */
} run_report;

/* A run: its plan, its communicator (a duplicate of MPI_COMM_WORLD) and its report. */
typedef struct runner {
  run_plan plan;
  comm comm;
  run_report rep;
} runner;

enum { RUN_MODE_RUN = 0, RUN_MODE_PART = 1, RUN_MODE_MERGE = 2, RUN_MODE_FINALIZE = 3 };

/* Set by SIGTERM / SIGUSR1 / SIGINT: stop after the current batch, save, exit 75. */
extern volatile sig_atomic_t run_stop_signal;

/* One checkpoint's tap outputs for one chunk of samples (run_pass.c). */
typedef struct chunk_memo {
  int ckpt;     /* global checkpoint index whose chunk this is, -1: none */
  int64_t g;    /* the chunk, -1: none */
  float **tap;  /* per layer index: chunk x rps x dim */
} chunk_memo;

/* The streaming stage's work layout (run_work.c): teams of `groups` ranks, member j of a
 * team running checkpoint group j on the team's batches. */
typedef struct work_layout {
  int groups;          /* G; 1: every rank runs every checkpoint on its own batches */
  int teams, team, member;
  int64_t base, nb;    /* the batches laid out: [base, base + nb) */
  int *group_of;       /* per global checkpoint: its group; -1: exports, read by the owner */
  int *slot;           /* per global checkpoint: its first memo slot (G > 1: one per member served) */
  int stream;          /* the member whose batch the chunks being computed serve */
  int rows_only;       /* no statistics on the pass (rows kept for later: probes, k-NN, RSA): with
                        * G > 1 each member computes its group's chunks, which store their rows,
                        * and nothing is exchanged */
  int64_t *off;        /* per global tap: floats per sample before its rows in its group's message */
  int64_t *width;      /* per group: floats per sample of its message */
  float **send, **recv; /* per member: this rank's group for member i's batch; group i's for this rank's batch */
  MPI_Request *req;    /* 2 G: sends, then receives */
  int *got;            /* per group: its message for this step's batch has arrived */
  /* claimed batches (G = 1, run_work_claims_begin): ranks 2i and 2i + 1 share their
   * ranges [lo, hi), one taking batches from the front, the other from the back */
  mpi_counter claim;   /* on the pair's first rank: its batches claimed so far; no window: the
                        * rank's fixed range [k0, k1) */
  int claim_host;      /* the pair's first rank */
  int claim_back;      /* this rank takes batches from the back (hi down) */
  int claim_out;       /* the pair's batches are all claimed */
  int64_t claim_lo, claim_hi, claim_done; /* the pair's range; batches this rank took */
} work_layout;

typedef struct pass {
  int d;
  re_dataset *ds;
  int64_t n;      /* samples */
  int64_t sb;     /* statistics batch: the tree's leaves, the minibatch estimators' batches */
  int64_t chunk;  /* cache granularity: taps are computed and cached by chunks of samples */
  int64_t fwd;    /* forward batch: samples per forward call */
  int64_t offset; /* dataset index of sample 0 of the pass (the dataset's `offset`) */
  int in_rank;
  int64_t in_dims[3];
  int tokens;     /* a token dataset: ids and masks of seq_len positions */
  int64_t seq_len;
  float *x;       /* fwd x sample_dim inputs (images) */
  int64_t *ids;   /* fwd x seq_len token ids */
  uint8_t *mask;  /* fwd x seq_len attention mask */
  int streamed;   /* checkpoints are bound one at a time (their weights do not all fit) */
  int reduced_kept; /* rank 0: OUT.state holds this pass's reduced accumulators (saved or loaded by this run) */
  int bound;      /* streamed: the global checkpoint index bound now, -1: none */
  chunk_memo *memo; /* nmemo slots; checkpoint i uses slot i % nmemo */
  int nmemo;
  unsigned char *tap_used; /* per global tap: an analysis of the pass reads it */
  an_run *an;
  int nan;
  re_moments *mom;
  int *mom_of; /* global tap -> moments layer or -1 */
  int *mom_taps;
  int32_t *mpairs;        /* co-moment blocks the analyses asked for (layer pairs), while set up */
  int nmpairs;
  int nmom;
  int64_t mom_rps;
  double *stage;
  int64_t *stage_off;
  uint64_t data_key;      /* cache key of this dataset's inputs */
  unsigned char *probe_tap; /* per global tap: a probe needs it (NULL: none) */
  int probe_labels;       /* a probe uses this dataset: keep its labels */
  int32_t *labels;        /* fwd labels */
  int64_t labelled;       /* the last chunk whose labels are kept, -1: none */
  float **scratch;        /* per layer index: one checkpoint's tap rows of a statistics batch */
  float **want;           /* per layer index: where run_pass_ckpt_rows puts a layer's rows (NULL: not wanted) */
  int nscratch;
  tree_acc acc;           /* the accumulators as the reduction tree sees them (run_pass_acc_init) */
  tree tree;              /* this rank's complete nodes of the reduction tree */
  int64_t nbatches;       /* batches of the whole pass (all parts) */
  int64_t k0, k1;         /* this rank's batches [k0, k1) */
  work_layout work;       /* who runs which checkpoints on which batches (run_work.c) */
  struct run_act *act;    /* activations models' exports (run_act.c); NULL: none */
} pass;

/* ---- report (report.c) ---- */
/* Record a warning (logged on rank 0, kept for the manifest); while rep.task_warn is
 * set, written there as one line instead, on whichever rank (see run_warn_replay). */
void run_warn(runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Rank 0: log and keep the warnings a task captured (lines of run_warn's task_warn, len bytes). */
void run_warn_replay(runner *r, const char *lines, size_t len);
/* Record a warning about something only this rank saw (a damaged cache shard or
 * snapshot): logged on every rank ("rank N: ..."), gathered for the manifest by
 * run_gather_warnings. */
void run_warn_local(runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Collective: append the other ranks' local warnings to rank 0's list. */
void run_gather_warnings(runner *r);
/* One metrics.csv row; b < 0 for per-tap metrics; why != NULL marks it undefined
 * (the uncertainty columns empty; run/unc.h writes them). */
void run_row(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
             const char *param, double value, const char *why);
/* The columns of a row up to status, without the uncertainty columns and line end. */
void run_row_open(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
                  const char *param, double value, const char *why);
/* Write a tap index CSV into the output (taps NULL: all taps). */
re_status run_write_taps_csv(const runner *r, const char *file, const int *taps, int P);
/* Open the output's file named by fmt for writing; its path (cap bytes) is for messages. */
re_status run_create_file(const runner *r, FILE **f, char *path, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Close a file run_create_file opened: an error names the path and the reason (a full disk). */
re_status run_close_file(FILE *f, const char *path);

/* ---- taps (taps.c) ---- */
/* Does the analysis' checkpoint filter select this checkpoint label? */
int run_label_selected(const job_analysis *a, const char *label);
/* Does the analysis' layer filter ('layers:') select this layer? */
int run_layer_selected(const job_analysis *a, const char *layer);
/* "flatten", "mean", "cls", "spatial", ... */
const char *run_mode_name(re_tap_mode m);
/* Model name, checkpoint label and layer name of global tap t. */
const char *run_tap_model(const runner *r, int t);
const char *run_tap_ckpt(const runner *r, int t);
const char *run_tap_layer(const runner *r, int t);
/* Is the pair of local tap indices (p, q) requested by the analysis? */
int run_pair_wanted(const an_run *ar, int p, int q);

/* ---- plan (run_plan.c) ---- */
/* Load every model description and open every checkpoint of the job. */
re_status run_load_models(runner *r);
/* Free what run_load_models created. */
void run_free_models(runner *r);
/* The statistics budget in bytes: REPEVAL_MAX_STATS_MB (default RUN_DEFAULT_BUDGET_MB). */
static inline double run_stats_budget(void) {
  const char *env = getenv("REPEVAL_MAX_STATS_MB");
  return (env && *env ? atof(env) : RUN_DEFAULT_BUDGET_MB) * 1048576.0;
}
/* For an analysis' setup: its taps become layers of the pass's co-moments, with the
 * blocks of its pairs (diag_only: each tap with itself, for spectra). */
re_status run_pass_use_moments(runner *r, pass *p, an_run *ar, int diag_only);
/* Bind nets, taps, accumulators of the analyses on dataset p->d. */
re_status run_pass_setup(runner *r, pass *p);
/* Checkpoint (m, c)'s network bound for the pass (streamed: binding it now, and
 * releasing the one bound before). */
re_status run_net_get(runner *r, pass *p, int m, int c, re_net **net);
/* Streamed passes: every checkpoint's chunks overlapping samples [s0, s1) computed into
 * the cache, one checkpoint at a time (collective only through errors); else nothing. */
re_status run_pass_embed(runner *r, pass *p, int64_t s0, int64_t s1);
/* Global index of checkpoint (m, c), and its first global tap. */
int run_ckpt_index(const runner *r, int m, int c);
int run_tap_first(const runner *r, int m, int c);
/* Free a pass (nets, taps, accumulators, dataset). */
void run_pass_free(runner *r, pass *p);

/* ---- activations models (run_act.c) ---- */
/* Does the job have a model whose taps come from activation exports? */
int run_act_any(const job *j);
/* Collective: the SHA-256 of every dataset file (rank 0 reads them, broadcast), when
 * the job has activations models. */
re_status run_act_init(runner *r);
/* Open and check the exports of every activations model for the pass's dataset. */
re_status run_act_setup(runner *r, pass *p);
/* Shape of job layer l of checkpoint (m, c) in its export. */
void run_act_tap_shape(const runner *r, const pass *p, int m, int c, int l, int64_t *dim, int64_t *rps);
/* Pass samples [lo, hi) of checkpoint (m, c): every layer's rows into out[l]. */
re_status run_act_chunk(runner *r, pass *p, int m, int c, int64_t lo, int64_t hi, float **out);
/* h mixed with the identity of checkpoint (m, c)'s exports (their manifests' bytes,
 * sizes and times), for fingerprints and cache keys. */
uint64_t run_act_identity(const runner *r, int m, int c, uint64_t h);
/* Close the pass's exports. */
void run_act_free(pass *p);

/* ---- streaming and reduction (run_pass.c) ---- */
/* Rows [s0, s1) of global tap t (rows x dim), from the checkpoint's chunks (kept,
 * cached or computed). */
re_status run_pass_tap_rows(runner *r, pass *p, int t, int64_t s0, int64_t s1, float *out);
/* Rows [s0, s1) of checkpoint (m, c)'s layers, layer l's (rows x dim) into out[l]
 * (NULL: not wanted), chunk after chunk: each chunk is made once for all layers (a
 * range that spans two chunks, tap after tap, would recompute both for every tap). */
re_status run_pass_ckpt_rows(runner *r, pass *p, int m, int c, int64_t s0, int64_t s1, float *const *out);
/* Stream this rank's batches through every net into the accumulators. */
re_status run_pass_stream(runner *r, pass *p);
/* Collective: reduce the pass's statistics to rank 0 along the canonical tree; in
 * part mode rank 0 keeps the node list in *part (else the root is loaded). */
re_status run_pass_reduce(runner *r, pass *p, tree *part);

/* ---- work layout (run_work.c) ---- */
/* Choose pass p's layout over batches [base, base + nb) (a function of the ranks, the
 * batches, the checkpoints and REPEVAL_CKPT_GROUPS) and set this rank's statistics
 * batches p->k0, p->k1. */
re_status run_work_plan(runner *r, pass *p, int64_t base, int64_t nb);
/* Steps every rank takes (the longest range), and the batches of all ranks done after
 * step `step`. */
int64_t run_work_steps(const pass *p, int size);
int64_t run_work_done(const pass *p, int size, int64_t step);
/* The memo slot of global checkpoint ci for the chunks being computed now. */
int run_work_memo_slot(const pass *p, int ci);
/* Rows [s0, s1) of checkpoint (m, c)'s layers into out[l]: run_pass_ckpt_rows. */
typedef re_status (*run_rows_fn)(runner *r, pass *p, int m, int c, int64_t s0, int64_t s1, float *const *out);
/* Step `step` with G > 1: receives posted for this rank's batch, this rank's group's
 * taps of the other members' batches made by rows() and sent (nonblocking); on a pass
 * without statistics only made (their chunks store the rows). */
re_status run_work_exchange(runner *r, pass *p, int64_t step, run_rows_fn rows);
/* Tap t's rows of this rank's batch of the step (b samples) when another member
 * computed them; *rows NULL: compute them here. */
re_status run_work_rows(runner *r, pass *p, int t, int64_t b, const float **rows);
/* Tap t is another member's on a pass without statistics (rows_only): not made here. */
int run_work_elsewhere(const runner *r, const pass *p, int t);
/* End of a step: wait for its messages (every step, also after a failure). */
re_status run_work_finish(pass *p);
/* Collective (after a resume's nodes are in t): with `dynamic` (and G = 1, two ranks or
 * more) the ranks take their batches by claims (run_work_claim) instead of the fixed
 * ranges; else nothing. */
re_status run_work_claims_begin(runner *r, pass *p, const tree *t, int dynamic);
/* The next batch of this rank's pair, k (absolute); 0: none left. */
int run_work_claim(pass *p, int64_t *k);
/* Collective: the claims are over; p->k0, p->k1 become the batches this rank took. */
void run_work_claims_end(pass *p);
/* Free the layout's tables and buffers (idempotent). */
void run_work_free(pass *p);

/* ---- the accumulators as one buffer (tree.c) ---- */
/* The accumulators of a pass as one flat buffer: length, write, read, merge, reset. */
int64_t run_pass_serial_len(const pass *p);
void run_pass_serialize(const pass *p, double *buf);
re_status run_pass_deserialize(pass *p, const double *buf);
re_status run_pass_merge_serial(pass *p, const double *buf);
void run_pass_reset(pass *p);
/* p->acc: the pass's accumulators for the reduction tree (after run_pass_setup). */
void run_pass_acc_init(pass *p);

/* ---- resume state (run_state.c) ---- */
/* Compute the job fingerprint and the state folder (<out>.state). */
re_status run_state_init(runner *r);
/* Save this rank's node list of pass p with the next step to process: written whole
 * under a temporary name, put in place by re_atomic_commit(pending) (or discarded by
 * re_atomic_abort) once every rank has written its own. */
re_status run_state_save_rank(runner *r, pass *p, const tree *t, int64_t next_step, int64_t samples,
                              re_atomic *pending);
/* Collective: resume pass p if every rank has a valid snapshot (else start afresh):
 * fills *t; *next_step / *samples are left unchanged when nothing was loaded. */
re_status run_state_load_rank(runner *r, pass *p, tree *t, int64_t *next_step, int64_t *samples);
/* Rank 0: write / read the node list of an array part (`path`). */
re_status run_state_write_tree_to(runner *r, pass *p, const tree *t, const char *path);
re_status run_state_read_tree_from(runner *r, pass *p, const char *path, tree *t, int64_t *samples);
/* Rank 0: save the reduced accumulators of a finished pass. */
re_status run_state_save_reduced(runner *r, pass *p);
/* Collective: load the reduced accumulators of a finished pass on rank 0; *found is
 * the same on every rank. */
re_status run_state_load_reduced(runner *r, pass *p, int *found);
/* Rank 0: load reduced statistics (a stats/ file of an earlier run: the layout must
 * match this job, the fingerprint need not) into the accumulators. */
re_status run_state_load_stats(runner *r, pass *p, const char *path);
/* Rank 0: write the reduced accumulators of pass p to `path` (atomically): a hard link
 * to the reduced state this run saved or loaded (the same bytes), else written. */
re_status run_state_write_reduced_to(runner *r, pass *p, const char *path);
/* Rank 0: write OUT.state/progress.json (what `repeval status` shows): the pass, its
 * batches done of total, the event ("snapshot", "interrupted", "resumed"), the
 * number of resumes so far. Best effort. */
void run_state_note_progress(runner *r, const pass *p, int64_t done, int64_t total, const char *event);
/* Rank 0: remove the state folder after a complete run (only what repeval wrote there). */
void run_state_clear(runner *r);

/* ---- embedding cache (run_cache.c) ---- */
/* The cache a pass reads and writes tap chunks in: the job's, or the run's own when its
 * checkpoints are streamed; NULL: none. */
const char *run_cache_dir(const runner *r, const pass *p);
/* Keys of every checkpoint (rank 0 reads them, broadcast; collective). */
re_status run_cache_init(runner *r);
/* Cache key of pass p's inputs (dataset files, normalisation, geometry). */
uint64_t run_cache_data_key(const runner *r, const pass *p);
/* Key of checkpoint c of model m. */
uint64_t run_cache_ckpt_key(const runner *r, int m, int c);
/* Folder name of layer l of model m ("<name>.<mode>"). */
void run_cache_layer_name(const runner *r, int m, int l, char *buf, size_t cap);
/* Chunk g of checkpoint (m, c) in its memo: kept, from the cache, or computed. */
re_status run_pass_chunk(runner *r, pass *p, int m, int c, int64_t g);
/* Read a shard into out (rows x dim); 0 when absent or failing a check. */
int run_cache_get(runner *r, const char *dir, uint64_t ck, uint64_t dk, const char *layer, int64_t s0, int64_t s1,
                  int64_t rows, int64_t dim, int f16, float *out);
/* Write a shard atomically; on failure the cache is disabled with a warning. */
void run_cache_put(runner *r, const char *dir, uint64_t ck, uint64_t dk, const char *layer, int64_t s0, int64_t s1,
                   int64_t rows, int64_t dim, int f16, const float *data);
/* The job cache's shard of tap (m, c, l) for samples [s0, s1). */
int run_cache_load(runner *r, const pass *p, int m, int c, int l, int64_t s0, int64_t s1, int64_t rows, int64_t dim,
                   float *out);
void run_cache_store(runner *r, const pass *p, int m, int c, int l, int64_t s0, int64_t s1, int64_t rows,
                     int64_t dim, const float *data);
/* Round values to float16 and back when the job cache stores float16. */
void run_cache_round(const runner *r, float *x, int64_t n);

/* ---- probes (an_probe.c) ---- */
/* Keep the labels of samples [s0, s0 + b) when a probe uses this dataset. */
re_status run_probe_labels(runner *r, pass *p, const int32_t *labels, int64_t s0, int64_t b);
/* Keep tap t's rows of the batch when a probe needs them. */
re_status run_probe_feed(runner *r, pass *p, int t, const float *data, int64_t s0, int64_t b);

/* ---- finalize (run_finalize.c) ---- */
/* Collective: metrics of every analysis of the pass from rank 0's reduced
 * accumulators (CCA family and spectra spread over the ranks; rows and files on rank 0). */
re_status run_pass_finalize(runner *r, pass *p);
/* manifest.json in the partial output folder. */
re_status run_write_manifest(runner *r, double t_total);

#endif
