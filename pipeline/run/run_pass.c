/* repeval run, streaming: each rank takes its contiguous range of statistics batches
 * (cut by global sample index) and feeds every tap of every checkpoint into the
 * accumulators; then the fixed-order reduction to rank 0.
 *
 * Three sizes, each named in the job (docs/job-spec.md):
 *   sb     the statistics batch: the leaves of the reduction tree, the batches of
 *          the minibatch estimators (an analysis' `batch`);
 *   chunk  the cache granularity: tap outputs are computed and cached by chunks of
 *          samples [g chunk, (g + 1) chunk) of the pass (`cache: {chunk:}`), so a
 *          cache made with one set of analyses serves any other;
 *   fwd    the forward batch: a chunk runs through a network in pieces of fwd
 *          samples (`forward_batch`).
 * A tap's value for a sample therefore depends only on its chunk, not on the batch
 * or the rank that needed it: cached and computed values are the same bits. Each
 * checkpoint keeps its last chunk (a statistics batch may span two chunks, and the
 * next batch of the rank usually starts in the same chunk), and a batch takes a
 * checkpoint's taps chunk after chunk for all its layers at once
 * (run_pass_ckpt_rows), so that each chunk runs through the net once. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "out/progress.h"
#include "run/run.h"
#include "run/unc.h"

/* ---- chunks ------------------------------------------------------------------------ */

/* Samples [lo, hi) of chunk g of the pass (pass-relative). */
static void chunk_range(const pass *p, int64_t g, int64_t *lo, int64_t *hi) {
  *lo = g * p->chunk;
  *hi = *lo + p->chunk < p->n ? *lo + p->chunk : p->n;
}

/* Read samples [s0, s0 + b) of the pass into the input buffers (images or tokens). */
static re_status read_inputs(pass *p, int64_t s0, int64_t b, int32_t *labels) {
  if (p->tokens)
    return re_dataset_read_tokens(p->ds, p->offset + s0, p->offset + s0 + b, p->ids, p->mask, labels);
  return re_dataset_read(p->ds, p->offset + s0, p->offset + s0 + b, p->x, labels);
}

/* Chunk g through checkpoint (m, c) in pieces of the forward batch, its taps' outputs
 * into the memo's buffers. */
static re_status chunk_forward(runner *r, pass *p, int m, int c, int64_t g, chunk_memo *mo) {
  const job_model *jm = &r->plan.j->models[m];
  re_net *net = NULL;
  RE_TRY(run_net_get(r, p, m, c, &net));
  int64_t lo, hi;
  chunk_range(p, g, &lo, &hi);
  int t0 = run_tap_first(r, m, c);
  r->rep.fwd_chunks++;
  for (int64_t s = lo; s < hi; s += p->fwd) {
    int64_t b = hi - s < p->fwd ? hi - s : p->fwd;
    RE_TRY(read_inputs(p, s, b, NULL));
    re_status st = p->tokens ? re_net_forward_tokens(net, p->ids, p->mask, b, p->seq_len) : re_net_forward(net, p->x, b);
    if (st != RE_OK)
      return re_err_context(st, "model '%s', checkpoint %s, samples %lld..%lld: ", jm->name, jm->ckpts[c].path,
                            (long long)s, (long long)(s + b));
    for (int l = 0; l < jm->nlayers; l++) {
      const tapinfo *tp = &r->plan.taps[t0 + l];
      int64_t row = tp->rps * tp->dim;
      memcpy(mo->tap[l] + (s - lo) * row, re_net_tap_data(net, tp->net_tap), sizeof(float) * (size_t)(b * row));
    }
  }
  return RE_OK;
}

/* Checkpoint (m, c)'s memo holds chunk g: kept, from the cache, or computed (and then
 * cached: every tap with the job's cache, the probes' taps in the probe cache). */
re_status run_pass_chunk(runner *r, pass *p, int m, int c, int64_t g) {
  const job *j = r->plan.j;
  const job_model *jm = &j->models[m];
  int ci = run_ckpt_index(r, m, c);
  chunk_memo *mo = &p->memo[run_work_memo_slot(p, ci)];
  if (mo->ckpt == ci && mo->g == g)
    return RE_OK;
  mo->ckpt = -1;
  mo->g = -1;
  int64_t lo, hi;
  chunk_range(p, g, &lo, &hi);
  int t0 = run_tap_first(r, m, c);
  if (jm->activations) { /* computed elsewhere: read in place, never cached but for the probes */
    RE_TRY(run_act_chunk(r, p, m, c, lo, hi, mo->tap));
    for (int l = 0; l < jm->nlayers; l++) {
      const tapinfo *tp = &r->plan.taps[t0 + l];
      int64_t rows = (hi - lo) * tp->rps;
      run_cache_round(r, mo->tap[l], rows * tp->dim);
      if (!j->cache_dir) /* the probes' taps, in the run's own cache */
        RE_TRY(run_probe_feed(r, p, t0 + l, mo->tap[l], lo, hi - lo));
      else if (p->probe_tap && p->probe_tap[t0 + l]) /* probes read the job's cache */
        run_cache_store(r, p, m, c, l, lo, hi, rows, tp->dim, mo->tap[l]);
    }
    mo->ckpt = ci;
    mo->g = g;
    return RE_OK;
  }
  const char *cache = run_cache_dir(r, p);
  int hit = cache != NULL;
  for (int l = 0; l < jm->nlayers && hit; l++) {
    const tapinfo *tp = &r->plan.taps[t0 + l];
    hit = run_cache_load(r, p, m, c, l, lo, hi, (hi - lo) * tp->rps, tp->dim, mo->tap[l]);
  }
  if (!hit) {
    RE_TRY(chunk_forward(r, p, m, c, g, mo));
    for (int l = 0; l < jm->nlayers; l++) {
      const tapinfo *tp = &r->plan.taps[t0 + l];
      int64_t rows = (hi - lo) * tp->rps;
      run_cache_round(r, mo->tap[l], rows * tp->dim); /* float16 caches: the values a rerun reads */
      if (cache) /* the job's cache, or the run's own when checkpoints are streamed */
        run_cache_store(r, p, m, c, l, lo, hi, rows, tp->dim, mo->tap[l]);
      else /* the probes' taps only, in the run's own cache */
        RE_TRY(run_probe_feed(r, p, t0 + l, mo->tap[l], lo, hi - lo));
    }
  }
  mo->ckpt = ci;
  mo->g = g;
  return RE_OK;
}

re_status run_pass_embed(runner *r, pass *p, int64_t s0, int64_t s1) {
  if (!p->streamed || s1 <= s0)
    return RE_OK;
  const job *j = r->plan.j;
  for (int m = 0; m < j->nmodels; m++)
    for (int c = 0; c < j->models[m].nckpts && !j->models[m].activations; c++) { /* exports need no embedding */
      int t0 = run_tap_first(r, m, c), used = -1;
      for (int l = 0; l < j->models[m].nlayers && used < 0; l++)
        if (p->tap_used[t0 + l])
          used = t0 + l;
      if (used < 0)
        continue;
      for (int64_t g = s0 / p->chunk; g * p->chunk < s1; g++) /* computed and cached, one checkpoint at a time */
        RE_TRY(run_pass_chunk(r, p, m, c, g));
    }
  return RE_OK;
}

/* Global tap t's rows of samples [s0, s1) that chunk g (in its checkpoint's memo)
 * holds, into out (rows [s0, s1)). */
static void copy_piece(const runner *r, const pass *p, int t, int64_t g, int64_t s0, int64_t s1, float *out) {
  const tapinfo *tp = &r->plan.taps[t];
  int64_t row = tp->rps * tp->dim, lo, hi;
  chunk_range(p, g, &lo, &hi);
  int64_t a = s0 > lo ? s0 : lo, b = s1 < hi ? s1 : hi;
  memcpy(out + (a - s0) * row,
         p->memo[run_work_memo_slot(p, run_ckpt_index(r, tp->model, tp->ckpt))].tap[tp->layer] + (a - lo) * row,
         sizeof(float) * (size_t)((b - a) * row));
}

/* The i-th of the chunks holding samples [s0, s1): in order, or backwards on a rank
 * that takes its batches from the back (the chunk it shares with its previous batch,
 * the one kept, then comes first). */
static int64_t nth_chunk(const pass *p, int64_t s0, int64_t s1, int64_t i) {
  return p->work.claim_back ? (s1 - 1) / p->chunk - i : s0 / p->chunk + i;
}

re_status run_pass_tap_rows(runner *r, pass *p, int t, int64_t s0, int64_t s1, float *out) {
  const tapinfo *tp = &r->plan.taps[t];
  for (int64_t i = 0, n = (s1 - 1) / p->chunk - s0 / p->chunk + 1; i < n; i++) {
    int64_t g = nth_chunk(p, s0, s1, i);
    RE_TRY(run_pass_chunk(r, p, tp->model, tp->ckpt, g));
    copy_piece(r, p, t, g, s0, s1, out);
  }
  return RE_OK;
}

re_status run_pass_ckpt_rows(runner *r, pass *p, int m, int c, int64_t s0, int64_t s1, float *const *out) {
  int t0 = run_tap_first(r, m, c), nl = r->plan.j->models[m].nlayers;
  for (int64_t i = 0, n = (s1 - 1) / p->chunk - s0 / p->chunk + 1; i < n; i++) {
    int64_t g = nth_chunk(p, s0, s1, i);
    RE_TRY(run_pass_chunk(r, p, m, c, g));
    for (int l = 0; l < nl; l++)
      if (out[l])
        copy_piece(r, p, t0 + l, g, s0, s1, out[l]);
  }
  return RE_OK;
}

/* ---- statistics batches ----------------------------------------------------------------- */

/* Feed global tap t's rows of the current batch (rows x dim) to every analysis. */
static re_status feed_tap(runner *r, pass *p, int t, const float *data, int hsic_ok, const double **mx, int64_t *mld,
                          int64_t b) {
  const tapinfo *tp = &r->plan.taps[t];
  for (int a = 0; a < p->nan; a++) {
    an_run *ar = &p->an[a];
    if (!ar->h || !hsic_ok)
      continue;
    for (int q = 0; q < ar->P; q++) /* taps are in global order: a short scan */
      if (ar->taps[q] == t) {
        re_status st = re_hsic_add_tap_f32(ar->h, q, data, tp->dim, tp->dim);
        if (st != RE_OK)
          return re_err_context(st, "%s/%s/%s: ", run_tap_model(r, t), run_tap_ckpt(r, t), run_tap_layer(r, t));
        break;
      }
  }
  if (p->mom && p->mom_of[t] >= 0) {
    int li = p->mom_of[t];
    double *dst = p->stage + p->stage_off[li];
    int64_t cnt = b * tp->rps * tp->dim;
    for (int64_t e = 0; e < cnt; e++)
      dst[e] = data[e];
    mx[li] = dst;
    mld[li] = tp->dim;
  }
  return RE_OK;
}

/* The labels of the chunks overlapping samples [s0, s1), into the probe shards. */
static re_status keep_labels(runner *r, pass *p, int64_t s0, int64_t s1) {
  if (!p->probe_labels)
    return RE_OK;
  for (int64_t g = s0 / p->chunk; g * p->chunk < s1; g++) {
    if (g == p->labelled)
      continue;
    int64_t lo, hi;
    chunk_range(p, g, &lo, &hi);
    for (int64_t s = lo; s < hi; s += p->fwd) { /* pieces of the forward batch: the input buffers' size */
      int64_t b = hi - s < p->fwd ? hi - s : p->fwd;
      RE_TRY(read_inputs(p, s, b, p->labels + (s - lo)));
    }
    RE_TRY(run_probe_labels(r, p, p->labels, lo, hi - lo));
    p->labelled = g;
  }
  return RE_OK;
}

/* Statistics batch k (samples [k sb, k sb + b)): every tap of every checkpoint into the
 * accumulators. */
static re_status do_batch(runner *r, pass *p, int64_t k, const double **mx, int64_t *mld, int64_t *nb_out) {
  job *j = r->plan.j;
  int64_t s0 = k * p->sb, b = p->n - s0 < p->sb ? p->n - s0 : p->sb;
  *nb_out = 0;
  RE_TRY(keep_labels(r, p, s0, s0 + b));
  int hsic_ok = b >= 4;
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h && hsic_ok)
      RE_TRY(re_hsic_begin_batch_at(p->an[a].h, b, k));
  int t = 0;
  for (int m = 0; m < j->nmodels; m++) {
    const job_model *jm = &j->models[m];
    for (int c = 0; c < jm->nckpts; c++, t += jm->nlayers) {
      int here = 0; /* the checkpoint's taps not computed by another member of the team */
      for (int l = 0; l < jm->nlayers; l++) {
        const float *rows = NULL;
        int used = p->tap_used[t + l] && !run_work_elsewhere(r, p, t + l);
        if (used)
          RE_TRY(run_work_rows(r, p, t + l, b, &rows));
        p->want[l] = used && !rows ? p->scratch[l] : NULL;
        here |= p->want[l] != NULL;
      }
      if (here)
        RE_TRY(run_pass_ckpt_rows(r, p, m, c, s0, s0 + b, p->want));
      for (int l = 0; l < jm->nlayers; l++) {
        if (!p->tap_used[t + l] || run_work_elsewhere(r, p, t + l))
          continue;
        const float *rows;
        RE_TRY(run_work_rows(r, p, t + l, b, &rows));
        RE_TRY(feed_tap(r, p, t + l, rows ? rows : p->scratch[l], hsic_ok, mx, mld, b));
      }
    }
  }
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h && hsic_ok)
      RE_TRY(re_hsic_end_batch(p->an[a].h));
  if (p->mom) {
    re_status st = re_moments_add_batch(p->mom, b * p->mom_rps, mx, mld);
    if (st != RE_OK)
      return re_err_context(st, "samples %lld..%lld: ", (long long)s0, (long long)(s0 + b));
    for (int a = 0; a < p->nan; a++)
      if (p->an[a].ux) {
        st = unc_moments_add(p->an[a].ux, p, &p->an[a], k, s0, b, mx);
        if (st != RE_OK)
          return re_err_context(st, "analysis '%s', samples %lld..%lld: ", p->an[a].a->name, (long long)s0,
                                (long long)(s0 + b));
      }
  }
  *nb_out = b;
  return RE_OK;
}

/* Step `step` of this rank: its part of the team's exchange, then its own batch k (if
 * any: k >= 0) alone into the tree as a leaf; *b its samples. */
static re_status do_step(runner *r, pass *p, int64_t step, int64_t k, const double **mx, int64_t *mld,
                         int64_t *b) {
  re_status st = run_work_exchange(r, p, step, run_pass_ckpt_rows);
  *b = 0;
  if (st == RE_OK && k >= 0) {
    run_pass_reset(p);
    st = do_batch(r, p, k, mx, mld, b);
    if (st == RE_OK)
      st = tree_push_leaf(&p->tree, k);
  }
  re_status fin = run_work_finish(p);
  return st != RE_OK ? st : fin;
}

/* What the ranks agreed after step `step` (all: the OR of their flags; steps done:
 * step + 1): stop on a failure, save a snapshot, or stop on a signal after saving.
 * Every rank takes the same decision at the same point of its loop. */
static re_status agreed(runner *r, pass *p, int all, re_status local, int64_t step, int64_t steps, int64_t samples,
                        int64_t nb, double *last_save) {
  if (all & 4)
    return re_mpi_agree(r->comm.comm, local);
  if (!(all & 3))
    return RE_OK;
  /* two phases: every rank writes its snapshot whole under a temporary name, then,
   * once all have, each puts its own in place; a rank that dies or fails before that
   * (or failed a step the others have not heard of yet) leaves every rank's previous
   * snapshot as it was, all of one step */
  re_atomic pending;
  memset(&pending, 0, sizeof pending);
  re_status st = re_mpi_agree(r->comm.comm, local != RE_OK
                                                ? local
                                                : run_state_save_rank(r, p, &p->tree, step + 1, samples, &pending));
  if (st == RE_OK)
    st = re_atomic_commit(&pending);
  else
    re_atomic_abort(&pending);
  st = re_mpi_agree(r->comm.comm, st);
  *last_save = progress_now();
  if (st == RE_OK && r->comm.rank == 0)
    run_state_note_progress(r, p, run_work_done(p, r->comm.size, step), nb, (all & 1) ? "interrupted" : "snapshot");
  if (st == RE_OK && (all & 1))
    st = re_err(RE_EINTERRUPTED, "interrupted by a signal after batch step %lld of %lld; state saved in %s",
                (long long)(step + 1), (long long)steps, r->plan.state_dir);
  return st;
}

/* Stream this rank's batches through every net into the accumulators. Every rank
 * takes the same number of steps (idle when its range is done); after each step
 * one small allreduce tells every rank whether to save a snapshot (periodically,
 * rank 0's clock) or to stop (a signal reached some rank) or whether some rank
 * failed, so that all ranks stop together and nobody waits in a collective.
 * Without a team exchange (one checkpoint group) the allreduce of step s is
 * nonblocking and completes after step s + 1: a rank may run one step ahead of the
 * slowest, so steps of unequal work (a chunk made every other batch, a merge of the
 * reduction tree) do not make the ranks wait for each other in turn; the decision
 * is then taken by every rank after step s + 1. A rank that failed takes no more
 * steps but still agrees. */
re_status run_pass_stream(runner *r, pass *p) {
  job *j = r->plan.j;
  /* --part I/N takes the I-th contiguous range of the batches, then ranks split it */
  int64_t nball = (p->n + p->sb - 1) / p->sb, base, end;
  tree_rank_range(nball, r->plan.nparts > 1 ? r->plan.part : 0, r->plan.nparts > 1 ? r->plan.nparts : 1, &base, &end);
  int64_t nb = end - base;
  const double **mx = NULL;
  int64_t *mld = NULL;
  re_status st = re_mpi_agree(r->comm.comm, run_work_plan(r, p, base, nb));
  int64_t k0 = p->k0, k1 = p->k1, steps = st == RE_OK ? run_work_steps(p, r->comm.size) : 0;
  if (st == RE_OK && p->nmom) {
    st = re_calloc(p->nmom, sizeof(double *), &mx);
    if (st == RE_OK)
      st = re_calloc(p->nmom, sizeof(int64_t), &mld);
  }
  st = re_mpi_agree(r->comm.comm, st);
  int64_t step0 = 0, samples = 0;
  p->nbatches = nball;
  tree_init(&p->tree, &p->acc);
  if (st == RE_OK)
    st = run_state_load_rank(r, p, &p->tree, &step0, &samples);
  if (st == RE_OK && k0 + step0 < k1)
    st = re_mpi_agree(r->comm.comm, run_pass_embed(r, p, (k0 + step0) * p->sb, k1 * p->sb < p->n ? k1 * p->sb : p->n));
  else if (st == RE_OK)
    st = re_mpi_agree(r->comm.comm, run_pass_embed(r, p, 0, 0));
  progress pr;
  char what[128];
  snprintf(what, sizeof what, "dataset %s", j->datasets[p->d].name);
  progress_start(&pr, what, nb, r->comm.rank == 0 && !r->plan.quiet);
  double last_save = progress_now();
  /* claimed batches (run_work.c) where every rank runs every checkpoint and the
   * checkpoints are not streamed through the cache (that embeds a fixed range first);
   * the agreement then lags two steps, so that the faster rank of a pair can take up
   * to two batches more before it waits */
  int dyn = p->work.groups <= 1 && !p->streamed && r->comm.size > 1 && st == RE_OK;
  if (st == RE_OK)
    st = run_work_claims_begin(r, p, &p->tree, dyn);
  int64_t told = steps; /* the steps named in messages: those of the fixed ranges */
  if (dyn) /* at most the part's batches, then one step that finds none left */
    steps = step0 + nb + 1;
  int lag = p->work.groups > 1 ? 0 : dyn ? 2 : 1, ring = lag + 1, flag[3] = {0, 0, 0}, all[3] = {0, 0, 0};
  MPI_Request req[3] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  re_status local = RE_OK;
  for (int64_t step = step0, over = 0; st == RE_OK && !over && step < steps + lag; step++) {
    int cur = (int)(step % ring);
    if (step < steps) {
      int64_t b = 0, k = -1;
      int took = 0;
      if (local == RE_OK) {
        if (dyn)
          took = !run_stop_signal && run_work_claim(p, &k); /* a signal: no new batch */
        else if (p->k0 + step < p->k1)
          k = p->k0 + step;
        local = do_step(r, p, step, k, mx, mld, &b);
      }
      samples += b;
      flag[cur] = (local != RE_OK ? 4 : 0) | (run_stop_signal ? 1 : 0) | (took ? 8 : 0);
      if (r->comm.rank == 0 && r->plan.checkpoint_every > 0 && progress_now() - last_save >= r->plan.checkpoint_every)
        flag[cur] |= 2;
      MPI_Iallreduce(&flag[cur], &all[cur], 1, MPI_INT, MPI_BOR, r->comm.comm, &req[cur]);
    }
    int64_t at = step - lag; /* the step whose agreement completes now */
    if (at < step0)
      continue;
    double tw = progress_now(); /* the slowest rank's step sets the pace: time waited for it */
    MPI_Wait(&req[at % ring], MPI_STATUS_IGNORE);
    int flags = all[at % ring] & 7;
    over = dyn && !(all[at % ring] & 8); /* no rank took a batch: all are taken */
    if (flags)
      /* before acting (failure, snapshot, stop), the agreements of the steps every rank
       * has taken since: a rank that died during one (kill -9) stops the others here, as
       * it did at once without the lag, instead of leaving them to save a snapshot of
       * a step it never finished (a mix of steps, which a resume must discard) */
      for (int64_t s = at + 1; s <= step && s < steps; s++) {
        MPI_Wait(&req[s % ring], MPI_STATUS_IGNORE);
        flags |= all[s % ring] & 7;
        all[s % ring] &= ~7; /* acted on now, not again later */
      }
    r->rep.t_wait += progress_now() - tw;
    int64_t done_step = step < steps ? step : steps - 1; /* the steps this rank has taken */
    st = agreed(r, p, flags, local, done_step, told, samples, nb, &last_save);
    if (r->comm.rank == 0 && st == RE_OK) {
      int64_t done = run_work_done(p, r->comm.size, done_step); /* every rank is at the same step */
      progress_update(&pr, done, done * p->sb);
    }
  }
  for (int k = 0; k < ring; k++) /* after a stop: the agreements posted last */
    MPI_Wait(&req[k], MPI_STATUS_IGNORE);
  run_work_claims_end(p);
  if (st == RE_OK)
    progress_finish(&pr, (end * p->sb < p->n ? end * p->sb : p->n) - base * p->sb);
  r->rep.samples_seen += samples;
  free(mx);
  free(mld);
  run_work_free(p);
  return st;
}

re_status run_pass_reduce(runner *r, pass *p, tree *part) {
  if (!part) /* the root, in O(log ranks) states per rank */
    return tree_reduce_root(r->comm.comm, &p->tree, p->k0, p->k1, p->nbatches);
  re_status st = tree_reduce(r->comm.comm, &p->tree);
  if (st == RE_OK && r->comm.rank == 0) { /* an array part: the node list is its result */
    *part = p->tree;
    tree_init(&p->tree, &p->acc);
  }
  tree_free(&p->tree);
  return re_mpi_agree(r->comm.comm, st);
}
