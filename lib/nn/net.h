/* Private: the bound network, its buffer pool and taps, shared by the executor
 * (forward.c), the transformer runners (forward_transformer.c) and the taps (taps.c). */
#ifndef REPEVAL_NN_NET_H
#define REPEVAL_NN_NET_H

#include "bind.h"

#define MAX_POOL 64

typedef struct tap {
  re_mod *m;
  char *name;    /* as requested (a module name or an alias) */
  re_tap_mode mode;
  int64_t dim, rows_per_sample; /* rows_per_sample: the most rows a sample can give */
  float *data;   /* bmax * rows_per_sample * dim */
  int64_t rows;  /* rows written by the last forward */
  int64_t *sample, *position; /* per row: sample in the batch, token (or spatial) position */
  double *acc;   /* dim: sums of the mean mode */
} tap;

/* Activation buffers and kernel workspace; several nets that run one after the
 * other can share one pool (re_net_share_pool), so memory does not grow with
 * the number of loaded checkpoints. */
typedef struct pool {
  float *bufs[MAX_POOL];
  unsigned char busy[MAX_POOL];
  int nbufs;
  int64_t buf_floats; /* capacity of every buffer */
  float *work;
  int64_t work_floats;
  int refs;
} pool;

struct re_net {
  re_mod *root;
  re_shape input;
  int64_t bmax, max_numel, max_work;
  pool *pool;
  tap *taps;
  int ntaps;
  re_mod **order;
  int64_t norder;
  int64_t B;
  /* token models */
  int tokens;          /* the input is token ids (input.d[0] = T per sample) */
  int64_t T, vocab;
  re_positions positions;
  int64_t *ids;        /* bmax x T: the batch's ids (padding entries outside the vocabulary read as 0) */
  uint8_t *mask;       /* bmax x T: 1 token, 0 padding */
  int32_t *pos;        /* bmax x T: position ids */
  int32_t *types;      /* bmax x T: token type ids (models with a token type embedding) */
  int has_mask;        /* the batch has padding */
  /* fast path (plan.c) */
  int planned;         /* the plan was made (before the first forward pass) */
  re_status plan_status;
  int fast;            /* the fast kernels run (blocked images, packed weights) */
  int threads;         /* threads of the fast kernels, fixed by the plan */
  const float *res;    /* a residual waiting for the epilogue of module res_mod */
  const re_mod *res_mod;
  /* profile (re_net_set_profile): per module in execution order */
  int profile;
  double *prof_s;      /* wall seconds inside the module, its children included */
  double *prof_cpu;    /* CPU seconds of the process, likewise */
  int64_t *prof_calls;
  double prof_total, prof_total_cpu; /* seconds of whole forward passes */
  int64_t prof_samples, prof_batches;
};

typedef struct act {
  float *p;
  int own; /* p is a pool buffer now owned by the holder */
  int blk; /* an image in the blocked layout (B, ceil(C / 8), H, W, 8) of the fast path */
} act;

/* The same activation, not owned. */
static inline act re_borrow(act a) { return (act){a.p, 0, a.blk}; }

/* A pool buffer (bmax x max_numel floats). */
re_status re_net_acquire(re_net *n, float **out);
/* Return a buffer held by `a` to the pool (no-op unless owned). */
void re_net_release(re_net *n, act a);
/* An output buffer for an elementwise op on x: x itself when owned, else a new one. */
re_status re_net_out_for(re_net *n, act x, act *y);
/* A fresh output buffer. */
re_status re_net_fresh(re_net *n, act *y);
/* Run module m on x (consumed when owned) into *y, filling its taps. */
re_status re_net_run(re_net *n, re_mod *m, act x, act *y);

/* Transformer parts (forward_transformer.c); m is one of them. */
re_status re_net_run_transformer(re_net *n, re_mod *m, act x, act *y);

/* Monotonic clock and CPU time of the process in seconds (profile). */
double re_net_now(void);
double re_net_cpu_now(void);

/* Multiply-adds x 2 of one sample through module m alone (its children not counted), by
 * the direct algorithm; 0 for modules without products (profile.c). */
double re_mod_flops(const re_mod *m);

/* Make the fast path's plan (plan.c): pack weights, fold modules, size the workspace. */
re_status re_net_plan(re_net *n);
/* Grow the pool's kernel workspace to at least `floats`. */
re_status re_net_pool_work(re_net *n, int64_t floats);
/* x in the plain layout (converted into a fresh buffer when blocked; x released). */
re_status re_net_to_plain(re_net *n, act *x, const re_shape *s);
/* x in the blocked layout (likewise). */
re_status re_net_to_blocked(re_net *n, act *x, const re_shape *s);

/* Copy (or pool) module m's output y (blocked when blk) into the taps that watch it (taps.c). */
void re_net_capture(re_net *n, re_mod *m, const float *y, int blk);
/* Free the taps' buffers. */
void re_net_free_taps(re_net *n);

#endif
