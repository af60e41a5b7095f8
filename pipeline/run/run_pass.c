/* repeval run, streaming: each rank reads its contiguous range of batches (cut by
 * global sample index), runs every net and feeds the accumulators; then the fixed-
 * order reduction to rank 0. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "out/progress.h"
#include "run/run.h"

/* Feed global tap t's output for the current batch (rows x dim) to every analysis. */
static re_status feed_tap(runner *r, pass *p, int t, const float *data, int hsic_ok, const double **mx, int64_t *mld,
                          int64_t s0, int64_t b) {
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
  return run_probe_feed(r, p, t, data, s0, b);
}

/* One batch k (samples [k fb, k fb + b)) through every net into the accumulators.
 * With the embedding cache, a checkpoint whose taps are all cached for this batch
 * is not run at all. */
static re_status do_batch(runner *r, pass *p, int64_t k, float *x, const double **mx, int64_t *mld, int64_t *nb_out) {
  job *j = r->plan.j;
  int64_t s0 = k * p->fb, b = p->n - s0 < p->fb ? p->n - s0 : p->fb;
  *nb_out = 0;
  RE_TRY(re_dataset_read(p->ds, p->offset + s0, p->offset + s0 + b, x, p->labels));
  RE_TRY(run_probe_labels(r, p, p->labels, s0, b));
  int hsic_ok = b >= 4;
  for (int a = 0; a < p->nan; a++)
    if (p->an[a].h && hsic_ok)
      RE_TRY(re_hsic_begin_batch(p->an[a].h, b));
  int t = 0;
  for (int m = 0; m < j->nmodels; m++) {
    const job_model *jm = &j->models[m];
    for (int c = 0; c < jm->nckpts; c++, t += jm->nlayers) {
      re_net *net = r->plan.nets[m][c];
      int hit = 0;
      if (j->cache_dir) {
        hit = 1;
        for (int l = 0; l < jm->nlayers && hit; l++) {
          const tapinfo *tp = &r->plan.taps[t + l];
          hit = run_cache_load(r, p, m, c, l, s0, s0 + b, b * tp->rps, tp->dim, p->scratch[l]);
        }
      }
      if (!hit) {
        re_status st = re_net_forward(net, x, b);
        if (st != RE_OK)
          return re_err_context(st, "model '%s', checkpoint %s, samples %lld..%lld: ", jm->name, jm->ckpts[c].path,
                                (long long)s0, (long long)(s0 + b));
      }
      for (int l = 0; l < jm->nlayers; l++) {
        const tapinfo *tp = &r->plan.taps[t + l];
        const float *data = hit ? p->scratch[l] : re_net_tap_data(net, tp->net_tap);
        if (!hit && j->cache_dir) {
          int64_t cnt = b * tp->rps * tp->dim;
          memcpy(p->scratch[l], data, sizeof(float) * (size_t)cnt);
          run_cache_round(r, p->scratch[l], cnt);
          data = p->scratch[l];
          run_cache_store(r, p, m, c, l, s0, s0 + b, b * tp->rps, tp->dim, data);
        }
        RE_TRY(feed_tap(r, p, t + l, data, hsic_ok, mx, mld, s0, b));
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
  }
  *nb_out = b;
  return RE_OK;
}

/* Batches of rank rr of R when nb batches are split into contiguous ranges. */
static void rank_batches(int64_t nb, int rr, int R, int64_t *k0, int64_t *k1) {
  *k0 = nb * rr / R;
  *k1 = nb * (rr + 1) / R;
}

/* Stream this rank's batches through every net into the accumulators. Every rank
 * takes the same number of steps (idle when its range is done); after each step
 * one small allreduce tells every rank whether to save a snapshot (periodically,
 * rank 0's clock) or to stop (a signal reached some rank) or whether some rank
 * failed, so that all ranks stop together and nobody waits in a collective. */
re_status run_pass_stream(runner *r, pass *p) {
  job *j = r->plan.j;
  const re_dataset_info *info = re_dataset_get_info(p->ds);
  /* --part I/N takes the I-th contiguous range of the batches, then ranks split it */
  int64_t nball = (p->n + p->fb - 1) / p->fb, base, end, k0, k1, steps = 0;
  rank_batches(nball, r->plan.nparts > 1 ? r->plan.part : 0, r->plan.nparts > 1 ? r->plan.nparts : 1, &base, &end);
  int64_t nb = end - base;
  rank_batches(nb, r->comm.rank, r->comm.size, &k0, &k1);
  k0 += base, k1 += base;
  for (int rr = 0; rr < r->comm.size; rr++) {
    int64_t a, b;
    rank_batches(nb, rr, r->comm.size, &a, &b);
    steps = b - a > steps ? b - a : steps;
  }
  float *x = NULL;
  const double **mx = NULL;
  int64_t *mld = NULL;
  re_status st = re_malloc(p->fb, info->sample_dim * (int64_t)sizeof(float), &x);
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
  progress pr;
  char what[128];
  snprintf(what, sizeof what, "dataset %s", j->datasets[p->d].name);
  progress_start(&pr, what, nb, r->comm.rank == 0 && !r->plan.quiet);
  double last_save = progress_now();
  for (int64_t step = step0; st == RE_OK && step < steps; step++) {
    int64_t k = k0 + step, b = 0;
    re_status local = RE_OK;
    if (k < k1) { /* batch k alone, then into the tree as leaf k */
      run_pass_reset(p);
      local = do_batch(r, p, k, x, mx, mld, &b);
      if (local == RE_OK)
        local = tree_push_leaf(&p->tree, k);
    }
    samples += b;
    int flag = (local != RE_OK ? 4 : 0) | (run_stop_signal ? 1 : 0), all = 0;
    if (r->comm.rank == 0 && r->plan.checkpoint_every > 0 && progress_now() - last_save >= r->plan.checkpoint_every)
      flag |= 2;
    MPI_Allreduce(&flag, &all, 1, MPI_INT, MPI_BOR, r->comm.comm);
    if (all & 4) {
      st = re_mpi_agree(r->comm.comm, local);
      break;
    }
    if (all & 3) {
      st = re_mpi_agree(r->comm.comm, run_state_save_rank(r, p, &p->tree, step + 1, samples));
      last_save = progress_now();
      if (st == RE_OK && r->comm.rank == 0) {
        int64_t done = 0;
        for (int rr = 0; rr < r->comm.size; rr++) {
          int64_t a, c;
          rank_batches(nb, rr, r->comm.size, &a, &c);
          done += c - a < step + 1 ? c - a : step + 1;
        }
        run_state_note_progress(r, p, done, nb, (all & 1) ? "interrupted" : "snapshot");
      }
      if (st == RE_OK && (all & 1))
        st = re_err(RE_EINTERRUPTED, "interrupted by a signal after batch step %lld of %lld; state saved in %s",
                    (long long)(step + 1), (long long)steps, r->plan.state_dir);
    }
    if (r->comm.rank == 0) {
      int64_t done = 0; /* global batches finished: every rank is at the same step */
      for (int rr = 0; rr < r->comm.size; rr++) {
        int64_t a, c;
        rank_batches(nb, rr, r->comm.size, &a, &c);
        done += c - a < step + 1 ? c - a : step + 1;
      }
      progress_update(&pr, done, done * p->fb);
    }
  }
  if (st == RE_OK)
    progress_finish(&pr, (end * p->fb < p->n ? end * p->fb : p->n) - base * p->fb);
  r->rep.samples_seen += samples;
  free(x);
  free(mx);
  free(mld);
  return st;
}

re_status run_pass_reduce(runner *r, pass *p, tree *part) {
  re_status st = tree_reduce(r->comm.comm, &p->tree);
  if (st == RE_OK && r->comm.rank == 0) {
    if (part) { /* an array part: the node list is its result */
      *part = p->tree;
      tree_init(&p->tree, &p->acc);
    } else {
      st = tree_root(&p->tree, p->nbatches);
    }
  }
  tree_free(&p->tree);
  return re_mpi_agree(r->comm.comm, st);
}
