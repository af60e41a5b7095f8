/* repeval run, the streaming stage's work layout: which rank runs which checkpoints
 * on which statistics batches.
 *
 * The ranks form teams of G (rank = team * G + member); the teams split the batches
 * into contiguous ranges, and each member owns a contiguous sub-range of its team's
 * range, so that the owners' ranges are contiguous in rank order, as the reduction
 * tree wants. With G = 1 every rank runs every checkpoint on its own batches. With
 * G > 1 the forward checkpoints are dealt round-robin to G groups, member j running
 * group j: at step s every member owning a batch (its s-th) receives the taps of the
 * other groups for it from the other members and accumulates it; every member runs
 * its own group on each of those batches. A tap's rows are the same bits whichever
 * rank computes them (they depend only on their chunk), so the statistics are
 * bitwise those of G = 1. G > 1 pays when ranks outnumber batches (ranks beyond the
 * batches would idle) or when the batches do not split evenly over the ranks.
 *
 * G is chosen to minimise a step's forward work (checkpoints x batches per member),
 * or set by REPEVAL_CKPT_GROUPS (`repeval run --checkpoint-groups`). */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"
#include "run/run.h"

/* Batches [*k0, *k1) (relative to the pass's first) of the rank (team, member). */
static void member_range(int64_t nb, int teams, int groups, int team, int member, int64_t *k0, int64_t *k1) {
  int64_t t0, t1, a, b;
  tree_rank_range(nb, team, teams, &t0, &t1);
  tree_rank_range(t1 - t0, member, groups, &a, &b);
  *k0 = t0 + a;
  *k1 = t0 + b;
}

/* Forward work of the busiest member with G groups over the pass's batches [base,
 * base + nb) and C forward checkpoints: its group's checkpoints times its team's
 * samples. */
static double layout_cost(const pass *p, int64_t base, int64_t nb, int R, int G, int C) {
  int teams = R / G;
  int64_t most = 0;
  for (int t = 0; t < teams; t++) {
    int64_t t0, t1;
    tree_rank_range(nb, t, teams, &t0, &t1);
    int64_t s0 = (base + t0) * p->sb, s1 = (base + t1) * p->sb < p->n ? (base + t1) * p->sb : p->n;
    most = s1 - s0 > most ? s1 - s0 : most;
  }
  return (double)((C + G - 1) / G) * (double)most;
}

/* Floats per sample of the taps of forward checkpoints that the pass reads. */
static int64_t fwd_width(const runner *r, const pass *p) {
  int64_t w = 0;
  for (int t = 0; t < r->plan.ntaps; t++) {
    const tapinfo *tp = &r->plan.taps[t];
    if (p->tap_used[t] && !r->plan.j->models[tp->model].activations)
      w += tp->rps * tp->dim;
  }
  return w;
}

/* The number of groups: REPEVAL_CKPT_GROUPS when set (it must divide the ranks), else
 * the divisor of the ranks with the least forward work per member, when it saves at
 * least 10 % over G = 1 and the exchanged taps fit an eighth of the statistics budget
 * (a pass without statistics exchanges nothing). */
static re_status choose_groups(const runner *r, const pass *p, int64_t base, int64_t nb, int C, int *out) {
  int R = r->comm.size;
  const char *e = getenv("REPEVAL_CKPT_GROUPS");
  double floats = (double)p->sb * (double)fwd_width(r, p); /* one batch's taps */
  *out = 1;
  if (e && *e && strcmp(e, "auto")) {
    char *end;
    long g = strtol(e, &end, 10);
    if (*end || g < 1 || g > R || R % g)
      return re_err(RE_EINVAL, "checkpoint groups (REPEVAL_CKPT_GROUPS, --checkpoint-groups) is '%s': expected "
                               "'auto' or a divisor of the %d ranks",
                    e, R);
    if (g > 1 && (p->streamed || C < g))
      return re_err(RE_EINVAL, "%ld checkpoint groups: the pass has %d forward checkpoints%s", g, C,
                    p->streamed ? ", bound one at a time (they do not all fit in memory)" : "");
    if (g > 1 && floats > INT_MAX && !p->work.rows_only)
      return re_err(RE_EINVAL, "%ld checkpoint groups: a batch's taps (%.0f floats) exceed one MPI message", g,
                    floats);
    *out = (int)g;
    return RE_OK;
  }
  if (p->streamed || C < 2 ||
      (!p->work.rows_only && (2 * 4 * floats > run_stats_budget() / 8 || floats > INT_MAX))) /* sent + received */
    return RE_OK;
  double best = layout_cost(p, base, nb, R, 1, C);
  for (int g = 2; g <= R && g <= C; g++)
    if (R % g == 0 && layout_cost(p, base, nb, R, g, C) < 0.9 * best) {
      best = layout_cost(p, base, nb, R, g, C);
      *out = g;
    }
  return RE_OK;
}

/* Groups, memo slots and message offsets of the taps; the buffers of one step. */
static re_status layout_groups(runner *r, pass *p, int G) {
  work_layout *w = &p->work;
  int nck = 0;
  for (int m = 0; m < r->plan.j->nmodels; m++)
    nck += r->plan.j->models[m].nckpts;
  RE_TRY(re_malloc(nck > 0 ? nck : 1, sizeof(int), &w->group_of));
  RE_TRY(re_malloc(nck > 0 ? nck : 1, sizeof(int), &w->slot));
  RE_TRY(re_calloc(r->plan.ntaps > 0 ? r->plan.ntaps : 1, sizeof(int64_t), &w->off));
  RE_TRY(re_calloc(G, sizeof(int64_t), &w->width));
  int f = 0;
  for (int m = 0, ci = 0; m < r->plan.j->nmodels; m++)
    for (int c = 0; c < r->plan.j->models[m].nckpts; c++, ci++) {
      int fwd = !r->plan.j->models[m].activations;
      w->group_of[ci] = fwd ? f % G : -1;
      w->slot[ci] = fwd ? (f / G) * G : ci; /* + the stream: a memo per checkpoint and member served */
      f += fwd;
    }
  for (int t = 0; t < r->plan.ntaps; t++) {
    const tapinfo *tp = &r->plan.taps[t];
    int g = w->group_of[run_ckpt_index(r, tp->model, tp->ckpt)];
    if (g >= 0 && p->tap_used[t]) {
      w->off[t] = w->width[g];
      w->width[g] += tp->rps * tp->dim;
    }
  }
  if (G == 1 || w->rows_only)
    return RE_OK;
  RE_TRY(re_calloc(G, sizeof(float *), &w->send));
  RE_TRY(re_calloc(G, sizeof(float *), &w->recv));
  RE_TRY(re_malloc(2 * G, sizeof(MPI_Request), &w->req));
  RE_TRY(re_calloc(G, sizeof(int), &w->got));
  for (int i = 0; i < G; i++) {
    w->req[i] = w->req[G + i] = MPI_REQUEST_NULL;
    if (i == w->member)
      continue;
    RE_TRY(re_malloc(p->sb * w->width[w->member] + 1, sizeof(float), &w->send[i]));
    RE_TRY(re_malloc(p->sb * w->width[i] + 1, sizeof(float), &w->recv[i]));
  }
  return RE_OK;
}

re_status run_work_plan(runner *r, pass *p, int64_t base, int64_t nb) {
  work_layout *w = &p->work;
  int C = 0, G;
  w->claim = (mpi_counter){MPI_WIN_NULL};
  w->claim_back = 0;
  for (int m = 0; m < r->plan.j->nmodels; m++)
    C += r->plan.j->models[m].activations ? 0 : r->plan.j->models[m].nckpts;
  int stats = p->mom != NULL;
  for (int a = 0; a < p->nan; a++)
    stats |= p->an[a].h != NULL || p->an[a].ux != NULL;
  w->rows_only = !stats;
  RE_TRY(choose_groups(r, p, base, nb, C, &G));
  w->groups = G;
  w->teams = r->comm.size / G;
  w->team = r->comm.rank / G;
  w->member = r->comm.rank % G;
  w->stream = w->member;
  w->base = base;
  w->nb = nb;
  int64_t k0, k1;
  member_range(nb, w->teams, G, w->team, w->member, &k0, &k1);
  p->k0 = base + k0;
  p->k1 = base + k1;
  if (G > r->rep.ckpt_groups)
    r->rep.ckpt_groups = G;
  return layout_groups(r, p, G);
}

/* Batches (relative) of rank `rank`. */
static void rank_range(const pass *p, int rank, int64_t *k0, int64_t *k1) {
  const work_layout *w = &p->work;
  member_range(w->nb, w->teams, w->groups, rank / w->groups, rank % w->groups, k0, k1);
}

int64_t run_work_steps(const pass *p, int size) {
  int64_t steps = 0;
  for (int rr = 0; rr < size; rr++) {
    int64_t a, b;
    rank_range(p, rr, &a, &b);
    steps = b - a > steps ? b - a : steps;
  }
  return steps;
}

int64_t run_work_done(const pass *p, int size, int64_t step) {
  int64_t done = 0;
  for (int rr = 0; rr < size; rr++) {
    int64_t a, b;
    rank_range(p, rr, &a, &b);
    done += b - a < step + 1 ? b - a : step + 1;
  }
  return done;
}

int run_work_memo_slot(const pass *p, int ci) {
  const work_layout *w = &p->work;
  if (w->groups <= 1 || w->group_of[ci] < 0)
    return ci % p->nmemo;
  return (w->slot[ci] + w->stream) % p->nmemo;
}

/* Samples [*s0, *s0 + *b) of member i's batch at step `step`; 0 when it has none. */
static int member_batch(const pass *p, int i, int64_t step, int64_t *s0, int64_t *b) {
  const work_layout *w = &p->work;
  int64_t k0, k1;
  member_range(w->nb, w->teams, w->groups, w->team, i, &k0, &k1);
  if (k0 + step >= k1)
    return 0;
  *s0 = (w->base + k0 + step) * p->sb;
  *b = p->n - *s0 < p->sb ? p->n - *s0 : p->sb;
  return 1;
}

/* This rank's group's taps of samples [s0, s0 + b) into buf (b x the group's width),
 * a checkpoint at a time through rows(); buf NULL: only made. */
static re_status group_rows(runner *r, pass *p, int64_t s0, int64_t b, run_rows_fn rows, float *buf) {
  const work_layout *w = &p->work;
  const job *j = r->plan.j;
  for (int m = 0, t = 0; m < j->nmodels; m++)
    for (int c = 0; c < j->models[m].nckpts; c++, t += j->models[m].nlayers) {
      if (w->group_of[run_ckpt_index(r, m, c)] != w->member)
        continue;
      int any = 0;
      for (int l = 0; l < j->models[m].nlayers; l++) {
        p->want[l] = p->tap_used[t + l] && buf ? buf + b * w->off[t + l] : NULL;
        any |= p->tap_used[t + l];
      }
      if (any)
        RE_TRY(rows(r, p, m, c, s0, s0 + b, p->want));
    }
  return RE_OK;
}

re_status run_work_exchange(runner *r, pass *p, int64_t step, run_rows_fn rows) {
  work_layout *w = &p->work;
  int G = w->groups, me = w->member, base_rank = w->team * G;
  if (G == 1)
    return RE_OK;
  int64_t s0, b;
  if (w->rows_only) { /* the chunks store their rows: nobody needs them sent */
    re_status st = RE_OK;
    for (int i = 0; i < G && st == RE_OK; i++)
      if (i != me && member_batch(p, i, step, &s0, &b)) {
        w->stream = i;
        st = group_rows(r, p, s0, b, rows, NULL);
        w->stream = me;
      }
    return st;
  }
  if (member_batch(p, me, step, &s0, &b))
    for (int i = 0; i < G; i++) {
      w->got[i] = 0;
      if (i != me && w->width[i] > 0 &&
          MPI_Irecv(w->recv[i], (int)(b * w->width[i]), MPI_FLOAT, base_rank + i, TAG_WORK_TAPS, r->comm.comm,
                    &w->req[G + i]) != MPI_SUCCESS)
        return re_err(RE_EMPI, "MPI_Irecv of checkpoint group %d's taps failed", i);
    }
  re_status st = RE_OK;
  for (int i = 0; i < G; i++) {
    if (i == me || w->width[me] == 0 || !member_batch(p, i, step, &s0, &b))
      continue;
    w->stream = i;
    if (st == RE_OK)
      st = group_rows(r, p, s0, b, rows, w->send[i]);
    w->stream = me;
    /* after a failure the owners still get a message (empty: they fail too), so that
     * no rank waits for one that never comes before the step's agreement */
    int count = st == RE_OK ? (int)(b * w->width[me]) : 0;
    if (MPI_Isend(w->send[i], count, MPI_FLOAT, base_rank + i, TAG_WORK_TAPS, r->comm.comm, &w->req[i]) !=
        MPI_SUCCESS)
      return re_err(RE_EMPI, "MPI_Isend of checkpoint group %d's taps failed", me);
  }
  return st;
}

re_status run_work_rows(runner *r, pass *p, int t, int64_t b, const float **rows) {
  work_layout *w = &p->work;
  const tapinfo *tp = &r->plan.taps[t];
  int g = w->groups > 1 ? w->group_of[run_ckpt_index(r, tp->model, tp->ckpt)] : -1;
  *rows = NULL;
  if (g < 0 || g == w->member)
    return RE_OK;
  if (!w->got[g]) {
    MPI_Status stt;
    if (MPI_Wait(&w->req[w->groups + g], &stt) != MPI_SUCCESS)
      return re_err(RE_EMPI, "receiving checkpoint group %d's taps from rank %d failed", g, w->team * w->groups + g);
    int count = 0;
    MPI_Get_count(&stt, MPI_FLOAT, &count);
    if (count != b * w->width[g])
      return re_err(RE_EMPI, "rank %d sent %d floats of taps, expected %lld", w->team * w->groups + g, count,
                    (long long)(b * w->width[g]));
    w->got[g] = 1;
  }
  *rows = w->recv[g] + b * w->off[t];
  return RE_OK;
}

int run_work_elsewhere(const runner *r, const pass *p, int t) {
  const work_layout *w = &p->work;
  if (!w->rows_only || w->groups <= 1)
    return 0;
  int g = w->group_of[run_ckpt_index(r, r->plan.taps[t].model, r->plan.taps[t].ckpt)];
  return g >= 0 && g != w->member;
}

re_status run_work_finish(pass *p) {
  work_layout *w = &p->work;
  if (w->groups <= 1 || w->rows_only)
    return RE_OK;
  /* receives this rank did not use (it failed before reading them) are completed too */
  if (MPI_Waitall(2 * w->groups, w->req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
    return re_err(RE_EMPI, "sending taps to the other members of the team failed");
  return RE_OK;
}

void run_work_free(pass *p) {
  work_layout *w = &p->work;
  for (int i = 0; w->send && i < w->groups; i++) {
    free(w->send[i]);
    free(w->recv[i]);
  }
  free(w->send);
  free(w->recv);
  free(w->req);
  free(w->got);
  free(w->group_of);
  free(w->slot);
  free(w->off);
  free(w->width);
  memset(w, 0, sizeof *w);
}

/* ---- claimed batches --------------------------------------------------------------
 *
 * With fixed ranges every rank takes one batch per step and the per-step agreement
 * keeps the ranks within a step of each other, so a rank on a slower core (or with
 * the more expensive batches: a chunk computed at its boundary) makes the others wait
 * at every step. Claimed batches let the faster rank of a pair take more: ranks 2i and
 * 2i + 1 share the union of their fixed ranges, 2i taking batches from its front and
 * 2i + 1 from its back, each claim a MPI_Fetch_and_op on a counter of rank 2i
 * (passive target). Each rank's batches stay contiguous, so the reduction tree and
 * its bits are those of any other split; the ranges are known after the stream. */

/* Nodes t covers [first, end) without a gap (empty: [0, 0)); 0: they leave a gap. */
static int covered(const tree *t, int64_t *first, int64_t *end) {
  *first = *end = 0;
  for (int k = 0; k < t->n; k++) {
    int64_t s = t->nodes[k].start, e = s + ((int64_t)1 << t->nodes[k].height);
    if (k > 0 && s != *end)
      return 0;
    if (k == 0)
      *first = s;
    *end = e;
  }
  return 1;
}

re_status run_work_claims_begin(runner *r, pass *p, const tree *t, int dynamic) {
  work_layout *w = &p->work;
  w->claim = (mpi_counter){MPI_WIN_NULL};
  w->claim_back = w->claim_out = 0;
  w->claim_done = 0;
  int size = r->comm.size, me = r->comm.rank;
  if (!dynamic || w->groups != 1 || size < 2) /* the same on every rank */
    return RE_OK;
  int host = me & ~1;
  int64_t a0, a1, b0, b1;
  rank_range(p, host, &a0, &a1);
  if (host + 1 < size)
    rank_range(p, host + 1, &b0, &b1);
  else
    b1 = a1;
  w->claim_host = host;
  w->claim_back = me != host;
  w->claim_lo = w->base + a0;
  w->claim_hi = w->base + b1;
  /* a resumed rank's nodes: from the front of the pair's range, or up to its back */
  int64_t first, end;
  int fits = covered(t, &first, &end);
  if (fits && t->n > 0)
    fits = w->claim_back ? end == w->claim_hi : first == w->claim_lo;
  w->claim_done = t->n > 0 ? end - first : 0;
  int all = 0;
  MPI_Allreduce(&fits, &all, 1, MPI_INT, MPI_MIN, r->comm.comm);
  if (!all)
    return re_err(RE_EFORMAT, "dataset %s: the saved states do not cover the ranks' batches as this run takes "
                              "them (rerun with --fresh)",
                  r->plan.j->datasets[p->d].name);
  int64_t *done = NULL;
  re_status st = re_malloc(size, sizeof(int64_t), &done);
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK) {
    free(done);
    return st;
  }
  MPI_Allgather(&w->claim_done, 1, MPI_INT64_T, done, 1, MPI_INT64_T, r->comm.comm);
  int64_t before = done[host] + (host + 1 < size ? done[host + 1] : 0);
  free(done);
  st = mpi_counter_create(r->comm.comm, me == host, before, &w->claim);
  if (st != RE_OK)
    re_err_context(st, "the batch counters: ");
  return st;
}

int run_work_claim(pass *p, int64_t *k) {
  work_layout *w = &p->work;
  if (w->claim_out)
    return 0;
  if (mpi_counter_next(&w->claim, w->claim_host) >= w->claim_hi - w->claim_lo) {
    w->claim_out = 1;
    return 0;
  }
  *k = w->claim_back ? w->claim_hi - 1 - w->claim_done : w->claim_lo + w->claim_done;
  w->claim_done++;
  return 1;
}

void run_work_claims_end(pass *p) {
  work_layout *w = &p->work;
  if (w->claim.win == MPI_WIN_NULL)
    return;
  mpi_counter_free(&w->claim);
  p->k0 = w->claim_back ? w->claim_hi - w->claim_done : w->claim_lo;
  p->k1 = w->claim_back ? w->claim_hi : w->claim_lo + w->claim_done;
  w->claim_back = 0;
}
