/* repeval run, plan: models and checkpoints, nets and taps, pair selections and
 * the accumulators of every analysis on a dataset. */
#include <fnmatch.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/run.h"

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
    re_hsic_destroy(&p->an[k].h);
  }
  free(p->an);
  re_moments_destroy(&p->mom);
  free(p->mom_of);
  free(p->mom_taps);
  free(p->stage);
  free(p->stage_off);
  re_dataset_close(&p->ds);
  for (int m = 0; r->plan.nets && m < r->plan.j->nmodels; m++) {
    for (int c = 0; r->plan.nets[m] && c < r->plan.j->models[m].nckpts; c++)
      re_net_destroy(&r->plan.nets[m][c]);
  }
  tree_free(&p->tree);
  free(p->probe_tap);
  free(p->labels);
  for (int l = 0; l < p->nscratch; l++)
    free(p->scratch[l]);
  free(p->scratch);
  /* r->plan.taps stays: the probes after the last pass need it */
}

static re_status open_dataset(const job_dataset *d, re_dataset **out) {
  if (!strcmp(d->format, "idx"))
    return re_dataset_open_idx(d->files[0], d->has_labels ? d->files[1] : NULL, out);
  if (!strcmp(d->format, "npy"))
    return re_dataset_open_npy(d->files[0], d->has_labels ? d->files[1] : NULL, out);
  if (!strcmp(d->format, "cifar") || !strcmp(d->format, "cifar100"))
    return re_dataset_open_cifar((const char *const *)d->files, d->nfiles, strcmp(d->format, "cifar") ? 2 : 1, 1,
                                 out);
  return re_dataset_open_wds((const char *const *)d->files, d->nfiles, "auto", "cls", out);
}

re_status run_pass_setup(runner *r, pass *p) {
  job *j = r->plan.j;
  const job_dataset *jd = &j->datasets[p->d];
  RE_TRY(open_dataset(jd, &p->ds));
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
  if (info->height > 1 || info->width > 1 || info->channels > 1) {
    p->in_rank = 3;
    p->in_dims[0] = info->channels, p->in_dims[1] = info->height, p->in_dims[2] = info->width;
  } else {
    p->in_rank = 1;
    p->in_dims[0] = info->sample_dim;
  }
  /* forward batch: the CKA batch when there is a minibatch CKA analysis */
  p->fb = j->forward_batch;
  int have = 0;
  for (int k = 0; k < j->nanalyses; k++) {
    job_analysis *a = &j->analyses[k];
    if (strcmp(a->dataset, jd->name) || a->type != AN_CKA || a->exact)
      continue;
    if (have && a->batch != p->fb)
      return re_cfg_error(a->src, RE_EINVAL, "all minibatch cka analyses on dataset '%s' must use the same batch "
                                             "(%lld here, %lld before)", jd->name, (long long)a->batch, (long long)p->fb);
    p->fb = a->batch;
    have = 1;
  }
  /* nets: every checkpoint, sharing one buffer pool */
  re_net *owner = NULL;
  int ntaps = 0;
  for (int m = 0; m < j->nmodels; m++)
    ntaps += j->models[m].nckpts * j->models[m].nlayers;
  free(r->plan.taps);
  r->plan.taps = NULL;
  r->plan.ntaps = 0;
  RE_TRY(re_calloc(ntaps, sizeof(tapinfo), &r->plan.taps));
  for (int m = 0; m < j->nmodels; m++) {
    job_model *jm = &j->models[m];
    for (int c = 0; c < jm->nckpts; c++) {
      re_status st = re_net_create(r->plan.models[m], r->plan.ckpts[m][c], p->in_rank, p->in_dims, p->fb, &r->plan.nets[m][c]);
      if (st != RE_OK)
        return re_err_context(st, "model '%s', checkpoint %s: ", jm->name, jm->ckpts[c].path);
      if (owner)
        RE_TRY(re_net_share_pool(r->plan.nets[m][c], owner));
      else
        owner = r->plan.nets[m][c];
      for (int l = 0; l < jm->nlayers; l++) {
        tapinfo *t = &r->plan.taps[r->plan.ntaps++];
        t->model = m, t->ckpt = c, t->layer = l;
        st = re_net_add_tap(r->plan.nets[m][c], jm->layers[l].name, jm->layers[l].mode, &t->net_tap);
        if (st != RE_OK)
          return re_cfg_error(jm->src, st, "model '%s': %s", jm->name, re_errmsg());
        re_net_tap_shape(r->plan.nets[m][c], t->net_tap, &t->dim, &t->rps);
      }
    }
  }
  /* analyses on this dataset */
  RE_TRY(re_calloc(j->nanalyses, sizeof(an_run), &p->an));
  RE_TRY(re_calloc(r->plan.ntaps, sizeof(int), &p->mom_of));
  for (int t = 0; t < r->plan.ntaps; t++)
    p->mom_of[t] = -1;
  int32_t *mpairs = NULL;
  int nmp = 0;
  re_status st = RE_OK;
  for (int k = 0; k < j->nanalyses && st == RE_OK; k++) {
    job_analysis *a = &j->analyses[k];
    if (strcmp(a->dataset, jd->name) || a->type == AN_PROBE)
      continue;
    an_run *ar = &p->an[p->nan++];
    ar->a = a;
    st = re_calloc(r->plan.ntaps, sizeof(int), &ar->taps);
    for (int t = 0; st == RE_OK && t < r->plan.ntaps; t++)
      if (run_label_selected(a, run_tap_ckpt(r, t)))
        ar->taps[ar->P++] = t;
    if (st == RE_OK && ar->P == 0)
      st = re_cfg_error(a->src, RE_EINVAL, "analysis '%s': its 'checkpoints' patterns match no checkpoint", a->name);
    if (st == RE_OK && a->type != AN_SPECTRUM)
      st = make_pairs(r, a, ar->taps, ar->P, &ar->pairs, &ar->npairs);
    if (st != RE_OK)
      break;
    if (a->type == AN_CKA && !a->exact) {
      for (int q = 0; q < ar->P; q++)
        if (r->plan.taps[ar->taps[q]].rps != 1)
          return re_cfg_error(a->src, RE_EINVAL, "analysis '%s': minibatch CKA needs one row per sample; layer '%s' "
                                                 "is tapped with mode spatial",
                              a->name, run_tap_layer(r, ar->taps[q]));
      double *s2 = NULL;
      if (a->rbf) { /* bandwidths from the first sigma_sample samples, identical on every rank */
        int64_t ns = p->n < a->sigma_sample ? p->n : a->sigma_sample;
        st = re_calloc(ar->P, sizeof(double), &s2);
        float *x = NULL;
        if (st == RE_OK)
          st = re_malloc(ns, re_dataset_get_info(p->ds)->sample_dim * (int64_t)sizeof(float), &x);
        if (st == RE_OK)
          st = re_dataset_read(p->ds, p->offset, p->offset + ns, x, NULL);
        /* run the sample through each net once (in chunks of fb), then each tap's median */
        int64_t sd = re_dataset_get_info(p->ds)->sample_dim;
        for (int q0 = 0; st == RE_OK && q0 < ar->P;) {
          const tapinfo *t0 = &r->plan.taps[ar->taps[q0]];
          int q1 = q0;
          while (q1 < ar->P && r->plan.taps[ar->taps[q1]].model == t0->model && r->plan.taps[ar->taps[q1]].ckpt == t0->ckpt)
            q1++;
          re_net *net = r->plan.nets[t0->model][t0->ckpt];
          float **feat = NULL;
          st = re_calloc(q1 - q0, sizeof(float *), &feat);
          for (int q = q0; st == RE_OK && q < q1; q++)
            st = re_malloc(ns, r->plan.taps[ar->taps[q]].dim * (int64_t)sizeof(float), &feat[q - q0]);
          for (int64_t s0 = 0; st == RE_OK && s0 < ns; s0 += p->fb) {
            int64_t b = ns - s0 < p->fb ? ns - s0 : p->fb;
            st = re_net_forward(net, x + s0 * sd, b);
            for (int q = q0; st == RE_OK && q < q1; q++) {
              const tapinfo *tp = &r->plan.taps[ar->taps[q]];
              memcpy(feat[q - q0] + s0 * tp->dim, re_net_tap_data(net, tp->net_tap),
                     sizeof(float) * (size_t)(b * tp->dim));
            }
          }
          for (int q = q0; st == RE_OK && q < q1; q++) {
            const tapinfo *tp = &r->plan.taps[ar->taps[q]];
            st = re_rbf_sigma2_f32(feat[q - q0], ns, tp->dim, tp->dim, a->sigma, &s2[q]);
            if (st != RE_OK)
              re_err_context(st, "analysis '%s', tap %s/%s/%s: ", a->name, run_tap_model(r, ar->taps[q]),
                             run_tap_ckpt(r, ar->taps[q]), run_tap_layer(r, ar->taps[q]));
          }
          for (int q = q0; feat && q < q1; q++)
            free(feat[q - q0]);
          free(feat);
          q0 = q1;
        }
        free(x);
      }
      re_hsic_config cfg = {ar->P, a->rbf ? RE_KERNEL_RBF : RE_KERNEL_LINEAR, s2, p->fb, ar->npairs, ar->pairs};
      if (st == RE_OK)
        st = re_hsic_create(&cfg, &ar->h);
      free(s2);
      continue;
    }
    /* co-moment analyses: register layers and blocks */
    for (int q = 0; st == RE_OK && q < ar->P; q++) {
      int t = ar->taps[q];
      if (p->mom_of[t] < 0) {
        if (p->nmom == 0)
          p->mom_rps = r->plan.taps[t].rps;
        else if (r->plan.taps[t].rps != p->mom_rps)
          st = re_cfg_error(a->src, RE_EINVAL, "analysis '%s': co-moment analyses on one dataset cannot mix spatial "
                                               "and per-sample taps",
                            a->name);
        p->mom_of[t] = p->nmom++;
      }
    }
    int np = a->type == AN_SPECTRUM ? ar->P : (ar->npairs ? ar->npairs : ar->P * (ar->P - 1) / 2);
    if (st == RE_OK)
      st = re_realloc(&mpairs, nmp + np + 1, 2 * sizeof(int32_t));
    if (st != RE_OK)
      break;
    if (a->type == AN_SPECTRUM) {
      for (int q = 0; q < ar->P; q++)
        mpairs[2 * nmp] = mpairs[2 * nmp + 1] = p->mom_of[ar->taps[q]], nmp++;
    } else if (ar->npairs) {
      for (int k2 = 0; k2 < ar->npairs; k2++)
        mpairs[2 * nmp] = p->mom_of[ar->taps[ar->pairs[2 * k2]]],
        mpairs[2 * nmp + 1] = p->mom_of[ar->taps[ar->pairs[2 * k2 + 1]]], nmp++;
    } else {
      for (int a1 = 0; a1 < ar->P; a1++)
        for (int a2 = a1 + 1; a2 < ar->P; a2++)
          mpairs[2 * nmp] = p->mom_of[ar->taps[a1]], mpairs[2 * nmp + 1] = p->mom_of[ar->taps[a2]], nmp++;
    }
  }
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
    const char *env = getenv("REPEVAL_MAX_STATS_MB");
    double budget = (env ? atof(env) : RUN_DEFAULT_BUDGET_MB) * 1048576.0;
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
      total += p->fb * p->mom_rps * dims[k];
    }
    if (st == RE_OK)
      st = re_malloc(total > 0 ? total : 1, sizeof(double), &p->stage);
    free(dims);
  }
  free(mpairs);
  p->data_key = run_cache_data_key(r, p);
  if (st == RE_OK)
    st = run_probe_setup(r, p);
  if (st == RE_OK)
    st = re_calloc(p->fb, sizeof(int32_t), &p->labels);
  if (st == RE_OK && j->cache_dir) { /* one checkpoint's tap outputs, per layer index */
    for (int m = 0; m < j->nmodels; m++)
      p->nscratch = j->models[m].nlayers > p->nscratch ? j->models[m].nlayers : p->nscratch;
    st = re_calloc(p->nscratch, sizeof(float *), &p->scratch);
    for (int l = 0; st == RE_OK && l < p->nscratch; l++) {
      int64_t mx = 1;
      for (int t = 0; t < r->plan.ntaps; t++)
        if (r->plan.taps[t].layer == l && r->plan.taps[t].rps * r->plan.taps[t].dim > mx)
          mx = r->plan.taps[t].rps * r->plan.taps[t].dim;
      st = re_malloc(p->fb * mx, sizeof(float), &p->scratch[l]);
    }
  }
  run_pass_acc_init(p);
  return st;
}

re_status run_load_models(runner *r) {
  job *j = r->plan.j;
  RE_TRY(re_calloc(j->nmodels, sizeof(re_model *), &r->plan.models));
  RE_TRY(re_calloc(j->nmodels, sizeof(re_ckpt **), &r->plan.ckpts));
  RE_TRY(re_calloc(j->nmodels, sizeof(re_net **), &r->plan.nets));
  for (int m = 0; m < j->nmodels; m++) {
    job_model *jm = &j->models[m];
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

