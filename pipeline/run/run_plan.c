/* repeval run, plan: models and checkpoints, nets and taps, pair selections and
 * the accumulators of every analysis on a dataset. */
#include <fnmatch.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/analysis.h"
#include "run/job.h"
#include "run/unc.h"

/* Pairs of local indices for a pair mode (NULL/0 for all). */
static re_status make_pairs(const runner *r, const job_analysis *a, const int *taps, int P, int32_t **out, int *n) {
  *out = NULL;
  *n = 0;
  if (a->pairs == PAIRS_ALL)
    return RE_OK;
  int64_t cap = (int64_t)P * (P + 1) / 2 + 1;
  RE_TRY(re_malloc(cap, 2 * sizeof(int32_t), out));
  for (int p = 0; p < P; p++) {
    const tapinfo *tp = &r->plan.taps[taps[p]];
    if (a->pairs == PAIRS_REFERENCE) {
      int ref = -1;
      for (int q = 0; q < P && ref < 0; q++) {
        const tapinfo *tq = &r->plan.taps[taps[q]];
        if (tq->model == tp->model && tq->layer == tp->layer &&
            fnmatch(a->reference, run_tap_ckpt(r, taps[q]), 0) == 0)
          ref = q;
      }
      if (ref >= 0 && ref != p)
        (*out)[2 * *n] = p, (*out)[2 * *n + 1] = ref, (*n)++;
      continue;
    }
    int prev_next = -1;
    for (int q = p + 1; q < P; q++) {
      const tapinfo *tq = &r->plan.taps[taps[q]];
      int want = 0;
      switch (a->pairs) {
      case PAIRS_SAME_LAYER: want = tq->model == tp->model && tq->layer == tp->layer; break;
      case PAIRS_WITHIN: want = tq->model == tp->model && tq->ckpt == tp->ckpt; break;
      case PAIRS_CONSECUTIVE:
        want = prev_next < 0 && tq->model == tp->model && tq->layer == tp->layer && tq->ckpt > tp->ckpt;
        if (want)
          prev_next = q;
        break;
      default: break;
      }
      if (want)
        (*out)[2 * *n] = p, (*out)[2 * *n + 1] = q, (*n)++;
    }
  }
  if (*n == 0)
    return re_cfg_error(a->src, RE_EINVAL, "analysis '%s' selects no pair of taps", a->name);
  return RE_OK;
}


void run_pass_free(runner *r, pass *p) {
  for (int k = 0; k < p->nan; k++) {
    free(p->an[k].taps);
    free(p->an[k].pairs);
    pair_share_free(&p->an[k].share);
    re_hsic_destroy(&p->an[k].h);
    unc_moments_destroy(&p->an[k].ux);
  }
  free(p->an);
  re_moments_destroy(&p->mom);
  free(p->mom_of);
  free(p->mom_taps);
  free(p->mpairs);
  free(p->stage);
  free(p->stage_off);
  re_dataset_close(&p->ds);
  run_act_free(p);
  for (int m = 0; r->plan.nets && m < r->plan.j->nmodels; m++) {
    for (int c = 0; r->plan.nets[m] && c < r->plan.j->models[m].nckpts; c++)
      re_net_destroy(&r->plan.nets[m][c]);
  }
  tree_free(&p->tree);
  free(p->probe_tap);
  free(p->labels);
  free(p->tap_used);
  free(p->x);
  free(p->ids);
  free(p->mask);
  for (int l = 0; l < p->nscratch; l++) {
    free(p->scratch[l]);
    for (int k = 0; k < p->nmemo; k++)
      free(p->memo[k].tap[l]);
  }
  for (int k = 0; k < p->nmemo; k++)
    free(p->memo[k].tap);
  free(p->memo);
  free(p->scratch);
  free(p->want);
  /* r->plan.taps stays: the probes after the last pass need it */
}

/* The pass's dataset: opened, normalised, its first sample, count and geometry. */
static re_status open_pass_dataset(runner *r, pass *p) {
  const job_dataset *jd = &r->plan.j->datasets[p->d];
  RE_TRY(job_dataset_open(jd, &p->ds));
  if (jd->nnorm)
    RE_TRY(re_dataset_set_normalize(p->ds, jd->mean, jd->std, jd->nnorm));
  const re_dataset_info *info = re_dataset_get_info(p->ds);
  if (jd->offset >= info->count)
    return re_cfg_error(jd->src, RE_EINVAL, "dataset '%s': offset %lld leaves no sample of %lld", jd->name,
                        (long long)jd->offset, (long long)info->count);
  p->offset = jd->offset;
  p->n = info->count - jd->offset;
  if (jd->limit > 0 && jd->limit < p->n)
    p->n = jd->limit;
  p->tokens = info->tokens;
  p->seq_len = info->seq_len;
  if (info->height > 1 || info->width > 1 || info->channels > 1) {
    p->in_rank = 3;
    p->in_dims[0] = info->channels, p->in_dims[1] = info->height, p->in_dims[2] = info->width;
  } else {
    p->in_rank = 1;
    p->in_dims[0] = info->sample_dim;
  }
  return RE_OK;
}

/* The pass's sizes: the statistics batch its analyses need (they must agree; else the
 * forward batch, or a chunk when only probes read the pass: no statistics, and no chunk
 * made by two ranks), the cache granularity (chunk) and the forward batch. */
static re_status pass_batch(runner *r, pass *p) {
  job *j = r->plan.j;
  const char *ds = j->datasets[p->d].name;
  p->fwd = j->forward_batch;
  /* a whole number of forward batches, so that the forward calls cut the samples at
   * multiples of the forward batch, as repeval embed --batch does: the same values */
  p->chunk = (j->cache_chunk + p->fwd - 1) / p->fwd * p->fwd;
  p->sb = j->forward_batch;
  const job_analysis *first = NULL;
  int stats = 0;
  for (int k = 0; k < j->nanalyses; k++)
    stats |= !j->analyses[k].kind->after_passes && an_uses_dataset(&j->analyses[k], ds);
  if (!stats)
    p->sb = p->chunk;
  for (int k = 0; k < j->nanalyses; k++) {
    const job_analysis *a = &j->analyses[k];
    int64_t b = a->kind->stats_batch && an_uses_dataset(a, ds) ? a->kind->stats_batch(a) : 0;
    if (!b)
      continue;
    if (first && b != p->sb)
      return re_cfg_error(a->src, RE_EINVAL, "analyses '%s' and '%s' on dataset '%s' need different batches (%lld "
                                             "and %lld): all minibatch analyses of a dataset must use the same batch",
                          first->name, a->name, ds, (long long)p->sb, (long long)b);
    p->sb = b;
    first = a;
  }
  return RE_OK;
}

int run_ckpt_index(const runner *r, int m, int c) {
  int k = 0;
  for (int q = 0; q < m; q++)
    k += r->plan.j->models[q].nckpts;
  return k + c;
}

int run_tap_first(const runner *r, int m, int c) {
  int t = 0;
  for (int q = 0; q < m; q++)
    t += r->plan.j->models[q].nckpts * r->plan.j->models[q].nlayers;
  return t + c * r->plan.j->models[m].nlayers;
}

/* Bind checkpoint (m, c) to the pass's inputs (images, or token sequences). */
static re_status bind_one(runner *r, pass *p, int m, int c, re_net **out) {
  const job_model *jm = &r->plan.j->models[m];
  const re_model *model = r->plan.models[m];
  re_status st;
  if (re_model_takes_tokens(model) != p->tokens)
    return re_cfg_error(jm->src, RE_EINVAL, "model '%s' takes %s, but dataset '%s' holds %s", jm->name,
                        re_model_takes_tokens(model) ? "token ids" : "images or arrays",
                        r->plan.j->datasets[p->d].name, p->tokens ? "token sequences" : "images or arrays");
  if (p->tokens)
    st = re_net_create(model, r->plan.ckpts[m][c], 1, &p->seq_len, p->fwd, out);
  else
    st = re_net_create(model, r->plan.ckpts[m][c], p->in_rank, p->in_dims, p->fwd, out);
  if (st != RE_OK)
    return re_err_context(st, "model '%s', checkpoint %s: ", jm->name, jm->ckpts[c].path);
  return RE_OK;
}

re_status run_net_get(runner *r, pass *p, int m, int c, re_net **net) {
  int ci = run_ckpt_index(r, m, c);
  if (p->streamed && p->bound != ci) {
    if (p->bound >= 0) { /* one checkpoint's weights at a time */
      int bm = 0, bc = p->bound;
      while (bc >= r->plan.j->models[bm].nckpts)
        bc -= r->plan.j->models[bm++].nckpts;
      re_net_destroy(&r->plan.nets[bm][bc]);
      p->bound = -1;
    }
    RE_TRY(bind_one(r, p, m, c, &r->plan.nets[m][c]));
    const job_model *jm = &r->plan.j->models[m];
    int t0 = run_tap_first(r, m, c);
    for (int l = 0; l < jm->nlayers; l++)
      RE_TRY(re_net_add_tap(r->plan.nets[m][c], jm->layers[l].name, jm->layers[l].mode, &r->plan.taps[t0 + l].net_tap));
    p->bound = ci;
  }
  *net = r->plan.nets[m][c];
  return RE_OK;
}

/* Weights a rank may hold for all checkpoints at once (REPEVAL_MAX_WEIGHTS_MB, default
 * 4096) unless the job says (forward: {checkpoints_in_memory: all | one}); beyond it a
 * pass binds the checkpoints one at a time (streamed). */
static int streamed(const runner *r) {
  const job *j = r->plan.j;
  if (j->in_memory != JOB_IN_MEMORY_AUTO)
    return j->in_memory == JOB_IN_MEMORY_ONE;
  const char *e = getenv("REPEVAL_MAX_WEIGHTS_MB");
  double budget = (e && *e ? atof(e) : 4096.0) * 1048576.0, total = 0;
  for (int m = 0; m < j->nmodels; m++)
    for (int c = 0; c < j->models[m].nckpts && !j->models[m].activations; c++) {
      const re_ckpt *ck = r->plan.ckpts[m][c];
      for (int64_t t = 0; t < re_ckpt_count(ck); t++)
        total += 4.0 * (double)re_ckpt_info(ck, t)->numel; /* float32 once bound */
    }
  return total > budget;
}

/* Every checkpoint of every model bound to the dataset's geometry (resident: one
 * shared buffer pool; streamed: bound, measured and released again), and every tap. */
static re_status bind_nets(runner *r, pass *p) {
  job *j = r->plan.j;
  re_net *owner = NULL;
  int ntaps = 0;
  for (int m = 0; m < j->nmodels; m++)
    ntaps += j->models[m].nckpts * j->models[m].nlayers;
  free(r->plan.taps);
  r->plan.taps = NULL;
  r->plan.ntaps = 0;
  RE_TRY(re_calloc(ntaps, sizeof(tapinfo), &r->plan.taps));
  p->streamed = streamed(r);
  p->bound = -1;
  for (int m = 0; m < j->nmodels; m++) {
    job_model *jm = &j->models[m];
    for (int c = 0; c < jm->nckpts; c++) {
      if (jm->activations) { /* no net: the shapes are the exports' */
        for (int l = 0; l < jm->nlayers; l++) {
          tapinfo *t = &r->plan.taps[r->plan.ntaps++];
          t->model = m, t->ckpt = c, t->layer = l, t->net_tap = -1;
          if (jm->layers[l].mode == RE_TAP_TOKENS)
            return re_cfg_error(jm->src, RE_EUNSUPPORTED, "model '%s', layer '%s': mode tokens gives a varying "
                                                          "number of rows per sample, which repeval run does not use",
                                jm->name, jm->layers[l].name);
          run_act_tap_shape(r, p, m, c, l, &t->dim, &t->rps);
        }
        continue;
      }
      re_net **net = &r->plan.nets[m][c];
      RE_TRY(bind_one(r, p, m, c, net));
      if (owner)
        RE_TRY(re_net_share_pool(*net, owner));
      else if (!p->streamed)
        owner = *net;
      for (int l = 0; l < jm->nlayers; l++) {
        tapinfo *t = &r->plan.taps[r->plan.ntaps++];
        t->model = m, t->ckpt = c, t->layer = l;
        re_status st = re_net_add_tap(*net, jm->layers[l].name, jm->layers[l].mode, &t->net_tap);
        if (st == RE_OK && jm->layers[l].mode == RE_TAP_TOKENS)
          st = re_err(RE_EUNSUPPORTED, "layer '%s': mode tokens gives a varying number of rows per sample, which "
                                       "repeval run does not use yet (repeval embed writes them)",
                      jm->layers[l].name);
        if (st != RE_OK)
          return re_cfg_error(jm->src, st, "model '%s': %s", jm->name, re_errmsg());
        re_net_tap_shape(*net, t->net_tap, &t->dim, &t->rps);
      }
      if (p->streamed)
        re_net_destroy(net);
    }
  }
  return RE_OK;
}

/* The input buffers (one forward batch), the chunk memos and the statistics batch's
 * rows, sized once for the pass. */
static re_status alloc_buffers(runner *r, pass *p) {
  job *j = r->plan.j;
  const re_dataset_info *info = re_dataset_get_info(p->ds);
  if (p->tokens) {
    RE_TRY(re_malloc(p->fwd, p->seq_len * (int64_t)sizeof(int64_t), &p->ids));
    RE_TRY(re_malloc(p->fwd, p->seq_len, &p->mask));
  } else {
    RE_TRY(re_malloc(p->fwd, info->sample_dim * (int64_t)sizeof(float), &p->x));
  }
  RE_TRY(re_calloc(p->chunk, sizeof(int32_t), &p->labels));
  p->labelled = -1;
  /* memos: one per checkpoint when they fit REPEVAL_MEMO_MB (default 512), else fewer, shared */
  int nck = 0, nlay = 0;
  int64_t maxper = 0; /* floats of one checkpoint's taps for one chunk */
  for (int m = 0; m < j->nmodels; m++) {
    int64_t per = 0;
    for (int l = 0; l < j->models[m].nlayers; l++) {
      const tapinfo *tp = &r->plan.taps[run_tap_first(r, m, 0) + l];
      per += p->chunk * tp->rps * tp->dim;
    }
    maxper = per > maxper ? per : maxper;
    nck += j->models[m].nckpts;
    nlay = j->models[m].nlayers > nlay ? j->models[m].nlayers : nlay;
  }
  const char *e = getenv("REPEVAL_MEMO_MB");
  double budget = (e && *e ? atof(e) : 512.0) * 1048576.0, fit = maxper > 0 ? budget / (4.0 * (double)maxper) : nck;
  p->nmemo = fit < nck ? (int)fit : nck;
  p->nmemo = p->nmemo < 1 ? 1 : p->nmemo;
  RE_TRY(re_calloc(p->nmemo, sizeof(chunk_memo), &p->memo));
  for (int k = 0; k < p->nmemo; k++) {
    p->memo[k].ckpt = -1;
    p->memo[k].g = -1;
    RE_TRY(re_calloc(nlay, sizeof(float *), &p->memo[k].tap));
  }
  p->nscratch = nlay;
  RE_TRY(re_calloc(p->nscratch > 0 ? p->nscratch : 1, sizeof(float *), &p->scratch));
  RE_TRY(re_calloc(p->nscratch > 0 ? p->nscratch : 1, sizeof(float *), &p->want));
  for (int l = 0; l < nlay; l++) {
    int64_t mx = 1;
    for (int t = 0; t < r->plan.ntaps; t++)
      if (r->plan.taps[t].layer == l && r->plan.taps[t].rps * r->plan.taps[t].dim > mx)
        mx = r->plan.taps[t].rps * r->plan.taps[t].dim;
    RE_TRY(re_malloc(p->sb * mx, sizeof(float), &p->scratch[l]));
    for (int k = 0; k < p->nmemo; k++)
      RE_TRY(re_malloc(p->chunk * mx, sizeof(float), &p->memo[k].tap[l]));
  }
  return re_calloc(r->plan.ntaps > 0 ? r->plan.ntaps : 1, 1, &p->tap_used);
}

/* An analysis' taps: the checkpoints and layers it selects, and its pairs. */
static re_status select_taps(runner *r, an_run *ar) {
  const job_analysis *a = ar->a;
  RE_TRY(re_calloc(r->plan.ntaps, sizeof(int), &ar->taps));
  for (int t = 0; t < r->plan.ntaps; t++)
    if (run_label_selected(a, run_tap_ckpt(r, t)) && run_layer_selected(a, run_tap_layer(r, t)))
      ar->taps[ar->P++] = t;
  if (ar->P == 0 && !a->nlayer_filter)
    return re_cfg_error(a->src, RE_EINVAL, "%s '%s': its 'checkpoints' patterns match no checkpoint",
                        a->kind->after_passes ? a->kind->type : "analysis", a->name);
  if (ar->P == 0)
    return re_cfg_error(a->src, RE_EINVAL, "%s '%s': its 'checkpoints' and 'layers' select no tap",
                        a->kind->after_passes ? a->kind->type : "analysis", a->name);
  if (a->kind->pairs == AN_NO_PAIRS)
    return RE_OK;
  RE_TRY(make_pairs(r, a, ar->taps, ar->P, &ar->pairs, &ar->npairs));
  return an_plan_pairs(r, ar); /* the shares, and the list in order for run_pair_wanted */
}

re_status run_pass_use_moments(runner *r, pass *p, an_run *ar, int diag_only) {
  ar->uses_mom = 1;
  for (int q = 0; q < ar->P; q++) {
    int t = ar->taps[q];
    if (p->mom_of[t] >= 0)
      continue;
    if (p->nmom == 0)
      p->mom_rps = r->plan.taps[t].rps;
    else if (r->plan.taps[t].rps != p->mom_rps)
      return re_cfg_error(ar->a->src, RE_EINVAL, "analysis '%s': co-moment analyses on one dataset cannot mix "
                                                 "spatial and per-sample taps",
                          ar->a->name);
    p->mom_of[t] = p->nmom++;
  }
  int np = diag_only ? ar->P : (ar->npairs ? ar->npairs : ar->P * (ar->P - 1) / 2);
  RE_TRY(re_realloc(&p->mpairs, p->nmpairs + np + 1, 2 * sizeof(int32_t)));
  int32_t *mp = p->mpairs;
  int n = p->nmpairs;
  if (diag_only) {
    for (int q = 0; q < ar->P; q++)
      mp[2 * n] = mp[2 * n + 1] = p->mom_of[ar->taps[q]], n++;
  } else if (ar->npairs) {
    for (int k = 0; k < ar->npairs; k++)
      mp[2 * n] = p->mom_of[ar->taps[ar->pairs[2 * k]]], mp[2 * n + 1] = p->mom_of[ar->taps[ar->pairs[2 * k + 1]]],
          n++;
  } else {
    for (int a1 = 0; a1 < ar->P; a1++)
      for (int a2 = a1 + 1; a2 < ar->P; a2++)
        mp[2 * n] = p->mom_of[ar->taps[a1]], mp[2 * n + 1] = p->mom_of[ar->taps[a2]], n++;
  }
  p->nmpairs = n;
  return RE_OK;
}

/* The co-moments of the layers and blocks the analyses registered, within the
 * REPEVAL_MAX_STATS_MB budget, and their staging area for one batch. */
static re_status make_moments(runner *r, pass *p) {
  re_status st = RE_OK;
  int nmp = p->nmpairs;
  int32_t *mpairs = p->mpairs;
  if (st == RE_OK && p->nmom > 0) {
    int64_t *dims = NULL, len = 0;
    st = re_calloc(p->nmom, sizeof(int64_t), &dims);
    if (st == RE_OK)
      st = re_calloc(p->nmom, sizeof(int), &p->mom_taps);
    for (int t = 0; st == RE_OK && t < r->plan.ntaps; t++)
      if (p->mom_of[t] >= 0) {
        dims[p->mom_of[t]] = r->plan.taps[t].dim;
        p->mom_taps[p->mom_of[t]] = t;
      }
    unsigned flags = RE_MOMENTS_DEBIASED;
    if (st == RE_OK)
      st = re_moments_state_len(p->nmom, dims, nmp, mpairs, flags, &len);
    double budget = run_stats_budget();
    if (st == RE_OK && 2.0 * 8.0 * (double)len > budget)
      st = re_err(RE_ENOMEM,
                  "the co-moment statistics of this job need %.0f MB (2 x 8 bytes x %lld doubles: widths d_i, all "
                  "blocks d_i x d_j of the requested pairs), more than the %.0f MB budget (REPEVAL_MAX_STATS_MB). "
                  "Tap wide convolution layers with ':mean', restrict 'checkpoints' or 'pairs', or use the "
                  "minibatch CKA estimator",
                  16.0 * (double)len / 1048576.0, (long long)len, budget / 1048576.0);
    if (st == RE_OK)
      st = re_moments_create(p->nmom, dims, nmp, mpairs, flags, &p->mom);
    int64_t total = 0;
    if (st == RE_OK)
      st = re_calloc(p->nmom + 1, sizeof(int64_t), &p->stage_off);
    for (int k = 0; st == RE_OK && k < p->nmom; k++) {
      p->stage_off[k] = total;
      total += p->sb * p->mom_rps * dims[k];
    }
    if (st == RE_OK)
      st = re_malloc(total > 0 ? total : 1, sizeof(double), &p->stage);
    free(dims);
  }
  return st;
}

/* The taps some analysis of the pass reads (statistics or probes): only their
 * checkpoints run. */
static void mark_used(runner *r, pass *p) {
  for (int a = 0; a < p->nan; a++)
    for (int q = 0; p->an[a].h && q < p->an[a].P; q++)
      p->tap_used[p->an[a].taps[q]] = 1;
  for (int t = 0; t < r->plan.ntaps; t++)
    p->tap_used[t] |= p->mom_of[t] >= 0 || (p->probe_tap && p->probe_tap[t]);
}

re_status run_pass_setup(runner *r, pass *p) {
  job *j = r->plan.j;
  RE_TRY(open_pass_dataset(r, p));
  RE_TRY(pass_batch(r, p));
  RE_TRY(run_act_setup(r, p));
  RE_TRY(bind_nets(r, p));
  RE_TRY(alloc_buffers(r, p));
  RE_TRY(re_calloc(j->nanalyses, sizeof(an_run), &p->an));
  RE_TRY(re_calloc(r->plan.ntaps, sizeof(int), &p->mom_of));
  for (int t = 0; t < r->plan.ntaps; t++)
    p->mom_of[t] = -1;
  p->data_key = run_cache_data_key(r, p);
  for (int k = 0; k < j->nanalyses; k++) {
    job_analysis *a = &j->analyses[k];
    if (!an_uses_dataset(a, j->datasets[p->d].name))
      continue;
    an_run *ar = &p->an[p->nan++];
    ar->a = a;
    RE_TRY(select_taps(r, ar));
  }
  /* the kinds that keep rows for later (probes, k-NN, RSA) first: a setup that already
   * computes chunks (RBF bandwidths) then keeps their rows too */
  for (int later = 1; later >= 0; later--)
    for (int k = 0; k < p->nan; k++)
      if (p->an[k].a->kind->setup && !(p->an[k].a->kind->after_passes || p->an[k].a->kind->keeps_rows) == !later)
        RE_TRY(p->an[k].a->kind->setup(r, p, &p->an[k]));
  RE_TRY(make_moments(r, p));
  mark_used(r, p);
  run_pass_acc_init(p);
  return RE_OK;
}

re_status run_load_models(runner *r) {
  job *j = r->plan.j;
  RE_TRY(re_calloc(j->nmodels, sizeof(re_model *), &r->plan.models));
  RE_TRY(re_calloc(j->nmodels, sizeof(re_ckpt **), &r->plan.ckpts));
  RE_TRY(re_calloc(j->nmodels, sizeof(re_net **), &r->plan.nets));
  for (int m = 0; m < j->nmodels; m++) {
    job_model *jm = &j->models[m];
    if (jm->activations) /* computed elsewhere: no model, no checkpoint to open */
      continue;
    RE_TRY(re_model_load(jm->arch, &r->plan.models[m]));
    RE_TRY(re_calloc(jm->nckpts, sizeof(re_ckpt *), &r->plan.ckpts[m]));
    RE_TRY(re_calloc(jm->nckpts, sizeof(re_net *), &r->plan.nets[m]));
    re_ckpt_options opt = {jm->state_dict_key, 0};
    for (int c = 0; c < jm->nckpts; c++)
      RE_TRY(re_ckpt_open(jm->ckpts[c].path, &opt, &r->plan.ckpts[m][c]));
  }
  return RE_OK;
}

void run_free_models(runner *r) {
  job *j = r->plan.j;
  for (int m = 0; m < j->nmodels; m++) {
    for (int c = 0; r->plan.ckpts && r->plan.ckpts[m] && c < j->models[m].nckpts; c++) {
      if (r->plan.nets && r->plan.nets[m])
        re_net_destroy(&r->plan.nets[m][c]);
      re_ckpt_close(&r->plan.ckpts[m][c]);
    }
    if (r->plan.ckpts)
      free(r->plan.ckpts[m]);
    if (r->plan.nets)
      free(r->plan.nets[m]);
    if (r->plan.models)
      re_model_destroy(&r->plan.models[m]);
  }
  free(r->plan.ckpts);
  free(r->plan.nets);
  free(r->plan.models);
}

