/* repeval run: the accumulators of a pass as one flat buffer, the state the
 * canonical reduction tree (mpi/tree.c) combines. */
#include <stdlib.h>

#include "run/run.h"
#include "run/unc.h"

/* ---- the pass's accumulators as one flat buffer ------------------------------ */

int64_t run_pass_serial_len(const pass *p) {
  int64_t n = 0;
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h)
      n += re_hsic_serial_len(p->an[a].h);
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].ux)
      n += unc_moments_serial_len(p->an[a].ux);
  if (p->mom)
    n += re_moments_serial_len(p->mom);
  return n;
}

/* The small accumulators (minibatch HSIC, uncertainty) at the head of the flat buffer;
 * the co-moments follow. */
static int64_t small_len(const pass *p) { return run_pass_serial_len(p) - (p->mom ? re_moments_serial_len(p->mom) : 0); }

static void serialize_small(const pass *p, double *buf) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h) {
      re_hsic_serialize(p->an[a].h, buf);
      buf += re_hsic_serial_len(p->an[a].h);
    }
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].ux) {
      unc_moments_serialize(p->an[a].ux, buf);
      buf += unc_moments_serial_len(p->an[a].ux);
    }
}

void run_pass_serialize(const pass *p, double *buf) {
  serialize_small(p, buf);
  if (p->mom)
    re_moments_serialize(p->mom, buf + small_len(p));
}

/* The accumulators from a flat buffer: replaced by it, or (merge) merged with it; with
 * small_only, only the small ones. */
static re_status read_serial(pass *p, const double *buf, int merge, int small_only) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h) {
      int64_t len = re_hsic_serial_len(p->an[a].h);
      RE_TRY(merge ? re_hsic_merge_serial(p->an[a].h, buf, len) : re_hsic_deserialize(p->an[a].h, buf, len));
      buf += len;
    }
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].ux) {
      RE_TRY(merge ? unc_moments_merge_serial(p->an[a].ux, buf) : unc_moments_deserialize(p->an[a].ux, buf));
      buf += unc_moments_serial_len(p->an[a].ux);
    }
  if (p->mom && !small_only) {
    int64_t len = re_moments_serial_len(p->mom);
    RE_TRY(merge ? re_moments_merge_serial(p->mom, buf, len) : re_moments_deserialize(p->mom, buf, len));
  }
  return RE_OK;
}

re_status run_pass_deserialize(pass *p, const double *buf) { return read_serial(p, buf, 0, 0); }

/* accumulators <- accumulators (+) buf (buf holds later samples) */
re_status run_pass_merge_serial(pass *p, const double *buf) { return read_serial(p, buf, 1, 0); }

static re_status run_pass_merge_serial_small(pass *p, const double *buf) { return read_serial(p, buf, 1, 1); }

/* The small accumulators of x <- x (+) y (flat buffers) through their state. */
static re_status merge_small_into(pass *p, double *x, const double *y) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h) {
      int64_t len = re_hsic_serial_len(p->an[a].h);
      RE_TRY(re_hsic_deserialize(p->an[a].h, x, len));
      RE_TRY(re_hsic_merge_serial(p->an[a].h, y, len));
      re_hsic_serialize(p->an[a].h, x);
      x += len;
      y += len;
    }
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].ux) {
      RE_TRY(unc_moments_deserialize(p->an[a].ux, x));
      RE_TRY(unc_moments_merge_serial(p->an[a].ux, y));
      unc_moments_serialize(p->an[a].ux, x);
      x += unc_moments_serial_len(p->an[a].ux);
      y += unc_moments_serial_len(p->an[a].ux);
    }
  return RE_OK;
}

/* x <- x (+) y, flat buffers (y used up): the small accumulators through their state,
 * the co-moments (nearly all of it) in place, neither copied. */
static re_status merge_into(pass *p, double *x, double *y) {
  RE_TRY(merge_small_into(p, x, y));
  int64_t s = small_len(p);
  return p->mom ? re_moments_merge_serial_into(p->mom, x + s, y + s, re_moments_serial_len(p->mom)) : RE_OK;
}

/* x <- x (+) the accumulators (later samples), which are used up: the co-moments in
 * place, the small ones through a copy of their state. */
static re_status merge_state_into(pass *p, double *x) {
  int64_t s = small_len(p);
  double *ys = NULL; /* the small accumulators' state, before x is touched */
  if (s > 0) {
    RE_TRY(re_malloc(s, sizeof(double), &ys));
    serialize_small(p, ys);
  }
  re_status st = p->mom ? re_moments_merge_state_into(p->mom, x + s, re_moments_serial_len(p->mom)) : RE_OK;
  if (st == RE_OK && s > 0)
    st = merge_small_into(p, x, ys);
  free(ys);
  return st;
}

/* accumulators <- accumulators (+) y (later samples), y used up (the co-moments merge
 * in it instead of a scratch copy). */
static re_status merge_consume(pass *p, double *y) {
  int64_t s = small_len(p);
  RE_TRY(run_pass_merge_serial_small(p, y));
  return p->mom ? re_moments_merge_serial_consume(p->mom, y + s, re_moments_serial_len(p->mom)) : RE_OK;
}

void run_pass_reset(pass *p) {
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h)
      re_hsic_reset(p->an[a].h);
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].ux)
      unc_moments_reset(p->an[a].ux);
  if (p->mom)
    re_moments_reset(p->mom);
}


static void acc_serialize(void *ctx, double *buf) { run_pass_serialize(ctx, buf); }
static re_status acc_deserialize(void *ctx, const double *buf) { return run_pass_deserialize(ctx, buf); }
static re_status acc_merge(void *ctx, const double *buf) { return run_pass_merge_serial(ctx, buf); }
static void acc_reset(void *ctx) { run_pass_reset(ctx); }
static re_status acc_into(void *ctx, double *x, double *y) { return merge_into(ctx, x, y); }
static re_status acc_state_into(void *ctx, double *x) { return merge_state_into(ctx, x); }
static re_status acc_consume(void *ctx, double *y) { return merge_consume(ctx, y); }

void run_pass_acc_init(pass *p) {
  p->acc = (tree_acc){p,        run_pass_serial_len(p), acc_serialize,  acc_deserialize, acc_merge,
                      acc_reset, acc_into,              acc_state_into, acc_consume};
}
