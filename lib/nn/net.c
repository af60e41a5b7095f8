/* The bound network: creation (build, bind, buffers), the forward entry points for
 * features and for token ids, and listings of modules and aliases. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

/* Make the pool fit this net: buffers of bmax x max_numel floats and its workspace. */
static re_status pool_fit(pool *p, int64_t buf_floats, int64_t work_floats) {
  if (buf_floats > p->buf_floats) {
    for (int k = 0; k < p->nbufs; k++)
      free(p->bufs[k]);
    p->nbufs = 0;
    p->buf_floats = buf_floats;
  }
  if (work_floats > p->work_floats) {
    free(p->work);
    p->work = NULL;
    p->work_floats = 0;
    RE_TRY(re_malloc(work_floats, sizeof(float), &p->work));
    p->work_floats = work_floats;
  }
  return RE_OK;
}

re_status re_net_pool_work(re_net *n, int64_t floats) {
  if (floats > n->max_work)
    n->max_work = floats;
  return pool_fit(n->pool, n->pool->buf_floats, floats > 0 ? floats : 1);
}

static void pool_unref(pool **pp) {
  pool *p = *pp;
  if (!p || --p->refs > 0) {
    *pp = NULL;
    return;
  }
  for (int k = 0; k < p->nbufs; k++)
    free(p->bufs[k]);
  free(p->work);
  free(p);
  *pp = NULL;
}

re_status re_net_share_pool(re_net *n, re_net *owner) {
  if (n->pool == owner->pool)
    return RE_OK;
  RE_TRY(pool_fit(owner->pool, n->bmax * n->max_numel, n->max_work > 0 ? n->max_work : 1));
  pool_unref(&n->pool);
  n->pool = owner->pool;
  n->pool->refs++;
  return RE_OK;
}

static re_status collect(re_net *n, re_mod *m) {
  if (m->name[0]) {
    RE_TRY(re_realloc(&n->order, n->norder + 1, sizeof(re_mod *)));
    m->idx = (int)n->norder;
    n->order[n->norder++] = m;
  }
  for (int k = 0; k < m->n; k++)
    RE_TRY(collect(n, m->child[k]));
  return RE_OK;
}

re_status re_net_create(const re_model *model, const re_ckpt *ck, int input_rank, const int64_t *input,
                        int64_t max_batch, re_net **out) {
  re_status st = RE_OK;
  re_net *n = NULL;
  *out = NULL;
  if (max_batch < 1)
    return re_err(RE_EINVAL, "forward: max_batch must be positive");
  RE_CHECK(re_calloc(1, sizeof *n, &n));
  n->bmax = max_batch;
  if (re_model_takes_tokens(model)) {
    if (input_rank != 1 || input[0] < 1) {
      st = re_err(RE_EINVAL, "forward: a token model needs the number of tokens per sample");
      goto done;
    }
    n->tokens = 1;
    n->T = input[0];
    n->input = (re_shape){1, {input[0], 0, 0}};
  } else if (input_rank > 0) {
    if (input_rank != 1 && input_rank != 3) {
      st = re_err(RE_EINVAL, "forward: input must be (features) or (channels, height, width)");
      goto done;
    }
    if ((st = re_model_check_input(model, input_rank, input)) != RE_OK)
      goto done;
    n->input.rank = input_rank;
    for (int k = 0; k < input_rank; k++)
      n->input.d[k] = input[k];
    if (input_rank == 1 && re_model_input(model, n->input.d) == 3) /* flat data, read as (C, H, W) */
      n->input.rank = 3;
  } else {
    n->input.rank = re_model_input(model, n->input.d);
  }
  RE_CHECK(re_model_build(model, ck, &n->root, &n->input));
  if (n->input.rank == 0) { /* an MLP whose first layer tells its width */
    re_mod *first = n->root->n ? n->root->child[0] : NULL;
    int64_t idx;
    char key[1200];
    if (first && first->type == RE_MOD_LINEAR) {
      snprintf(key, sizeof key, "%s.weight", first->name);
      if (re_ckpt_find(ck, key, &idx) == RE_OK && re_ckpt_info(ck, idx)->ndim == 2) {
        n->input.rank = 1;
        n->input.d[0] = re_ckpt_info(ck, idx)->shape[1];
      }
    }
    if (n->input.rank == 0) {
      st = re_err(RE_EINVAL, "forward: the input size is unknown; give it in the model description ('input:') "
                             "or through the dataset");
      goto done;
    }
  }
  RE_CHECK(re_mod_bind(n->root, n->input, ck, max_batch, &n->max_numel, &n->max_work));
  RE_CHECK(re_calloc(1, sizeof(pool), &n->pool));
  n->pool->refs = 1;
  RE_CHECK(pool_fit(n->pool, n->bmax * n->max_numel, n->max_work > 0 ? n->max_work : 1));
  RE_CHECK(collect(n, n->root));
  if (n->tokens) {
    n->vocab = n->root->vocab;
    RE_CHECK(re_malloc(n->bmax * n->T, sizeof(int64_t), &n->ids));
    RE_CHECK(re_malloc(n->bmax * n->T, sizeof(uint8_t), &n->mask));
    RE_CHECK(re_malloc(n->bmax * n->T, sizeof(int32_t), &n->pos));
    if (n->root->type_vocab > 0)
      RE_CHECK(re_calloc(n->bmax * n->T, sizeof(int32_t), &n->types));
  }
  *out = n;
  n = NULL;
done:
  re_net_destroy(&n);
  return st;
}

void re_net_destroy(re_net **pn) {
  re_net *n = *pn;
  if (!n)
    return;
  if (n->pool) { /* what the forward pass held: the benchmarks compare it with the peak memory */
    int64_t tap_bytes = 0;
    for (int k = 0; k < n->ntaps; k++)
      tap_bytes += n->bmax * n->taps[k].rows_per_sample * (n->taps[k].dim * 4 + 16);
    re_log(RE_LOG_DEBUG, "forward memory: %d activation buffers of %lld floats, workspace %lld floats, taps %lld bytes",
           n->pool->nbufs, (long long)n->pool->buf_floats, (long long)n->pool->work_floats, (long long)tap_bytes);
  }
  re_mod_free(n->root);
  pool_unref(&n->pool);
  re_net_free_taps(n);
  free(n->order);
  free(n->ids);
  free(n->mask);
  free(n->pos);
  free(n->types);
  free(n->prof_s);
  free(n->prof_cpu);
  free(n->prof_calls);
  free(n);
  *pn = NULL;
}

static re_status run_batch(re_net *n, const float *x, int64_t B) {
  n->B = B;
  act y;
  RE_TRY(re_net_plan(n));
  double t0 = n->profile ? re_net_now() : 0, c0 = n->profile ? re_net_cpu_now() : 0;
  /* the plan may give a small network fewer threads than OpenBLAS has: its sgemm calls too */
  int blas_threads = openblas_get_num_threads(), fewer = n->fast && n->threads < blas_threads;
  if (fewer)
    openblas_set_num_threads(n->threads);
  re_status st = re_net_run(n, n->root, (act){(float *)x, 0, 0}, &y);
  if (fewer)
    openblas_set_num_threads(blas_threads);
  if (n->profile) {
    n->prof_total += re_net_now() - t0;
    n->prof_total_cpu += re_net_cpu_now() - c0;
    n->prof_samples += B;
    n->prof_batches++;
  }
  if (st == RE_OK)
    re_net_release(n, y);
  for (int k = 0; k < n->pool->nbufs; k++)
    n->pool->busy[k] = 0;
  return st;
}

re_status re_net_forward(re_net *n, const float *x, int64_t B) {
  if (n->tokens)
    return re_err(RE_EINVAL, "forward: this model takes token ids (re_net_forward_tokens)");
  if (B < 1 || B > n->bmax)
    return re_err(RE_EINVAL, "forward: batch of %lld (allowed 1..%lld)", (long long)B, (long long)n->bmax);
  return run_batch(n, x, B);
}

re_status re_net_check_tokens(const re_net *n, const int64_t *ids, const uint8_t *mask, int64_t B, int64_t T,
                              int64_t sample0) {
  if (!n->tokens)
    return re_err(RE_EINVAL, "forward: this model does not take token ids");
  if (T != n->T)
    return re_err(RE_ESHAPE, "forward: %lld tokens per sample, but the model was bound for %lld", (long long)T,
                  (long long)n->T);
  for (int64_t b = 0; b < B; b++) {
    int64_t count = 0;
    for (int64_t t = 0; t < T; t++) {
      uint8_t m = mask ? mask[b * T + t] : 1;
      if (m > 1)
        return re_err(RE_EINVAL, "attention mask: sample %lld, position %lld is %u (expected 0 or 1)",
                      (long long)(sample0 + b), (long long)t, (unsigned)m);
      count += m;
      int64_t id = ids[b * T + t];
      if (m && (id < 0 || id >= n->vocab))
        return re_err(RE_EINVAL, "token ids: sample %lld, position %lld: id %lld is outside the vocabulary "
                                 "[0, %lld) %s",
                      (long long)(sample0 + b), (long long)t, (long long)id, (long long)n->vocab,
                      n->root->why ? n->root->why : "");
    }
    if (count == 0)
      return re_err(RE_EINVAL, "attention mask: sample %lld has no token (every position is padding)",
                    (long long)(sample0 + b));
  }
  return RE_OK;
}

int64_t re_net_token_types(const re_net *n) { return n->tokens ? n->root->type_vocab : 0; }

re_status re_net_check_token_types(const re_net *n, const int64_t *types, const uint8_t *mask, int64_t B, int64_t T,
                                   int64_t sample0) {
  if (!types)
    return RE_OK;
  if (!n->tokens || n->root->type_vocab < 1)
    return re_err(RE_EINVAL, "token type ids: this model has no token type embedding");
  if (T != n->T)
    return re_err(RE_ESHAPE, "forward: %lld tokens per sample, but the model was bound for %lld", (long long)T,
                  (long long)n->T);
  for (int64_t k = 0; k < B * T; k++)
    if ((!mask || mask[k]) && (types[k] < 0 || types[k] >= n->root->type_vocab))
      return re_err(RE_EINVAL, "token type ids: sample %lld, position %lld: %lld is outside [0, %lld) (type_vocab_size)",
                    (long long)(sample0 + k / T), (long long)(k % T), (long long)types[k],
                    (long long)n->root->type_vocab);
  return RE_OK;
}

re_status re_net_forward_tokens_typed(re_net *n, const int64_t *ids, const uint8_t *mask, const int64_t *types,
                                      int64_t B, int64_t T) {
  if (B < 1 || B > n->bmax)
    return re_err(RE_EINVAL, "forward: batch of %lld (allowed 1..%lld)", (long long)B, (long long)n->bmax);
  RE_TRY(re_net_check_tokens(n, ids, mask, B, T, 0));
  RE_TRY(re_net_check_token_types(n, types, mask, B, T, 0));
  const re_mod *r = n->root;
  n->has_mask = 0;
  for (int64_t b = 0; b < B; b++) {
    int32_t seen = 0;
    for (int64_t t = 0; t < T; t++) {
      int64_t k = b * T + t;
      uint8_t m = mask ? mask[k] : 1;
      n->mask[k] = m;
      n->has_mask |= !m;
      n->ids[k] = m ? ids[k] : (ids[k] >= 0 && ids[k] < n->vocab ? ids[k] : 0);
      if (n->types)
        n->types[k] = types && m ? (int32_t)types[k] : 0;
      if (r->pos_rule == RE_POS_PADDING_IDX) {
        /* RoBERTa: a token (id != pad_token_id, or a mask of 1 with --positions mask) gets
         * pad + 1 + the tokens before it, padding gets pad (create_position_ids_from_input_ids) */
        int tok = n->positions == RE_POSITIONS_FROM_MASK ? m : ids[k] != r->pad_id;
        seen += tok;
        n->pos[k] = (int32_t)(tok ? r->pad_id + seen : r->pad_id);
        continue;
      }
      if (n->positions == RE_POSITIONS_FROM_MASK)
        n->pos[k] = m ? seen : 0;
      else
        n->pos[k] = (int32_t)t;
      seen += m;
    }
  }
  return run_batch(n, NULL, B);
}

re_status re_net_forward_tokens(re_net *n, const int64_t *ids, const uint8_t *mask, int64_t B, int64_t T) {
  return re_net_forward_tokens_typed(n, ids, mask, NULL, B, T);
}

void re_net_set_positions(re_net *n, re_positions p) { n->positions = p; }

int64_t re_net_tokens(const re_net *n) { return n->tokens ? n->T : 0; }

int64_t re_net_module_count(const re_net *n) { return n->norder; }

void re_net_module(const re_net *n, int64_t i, const char **name, const char **type, int *rank, int64_t *dims) {
  const re_mod *m = n->order[i];
  *name = m->name;
  *type = m->type == RE_MOD_ACT ? "activation" : re_mod_type_name(m->type);
  *rank = m->out_shape.rank;
  for (int k = 0; k < m->out_shape.rank; k++)
    dims[k] = m->out_shape.d[k];
}

int64_t re_net_alias_count(const re_net *n) { return n->root->nalias; }

void re_net_alias(const re_net *n, int64_t i, const char **name, const char **module, int *rank, int64_t *dims) {
  const re_alias *a = &n->root->alias[i];
  *name = a->name;
  *module = a->target->name[0] ? a->target->name : re_mod_type_name(a->target->type);
  *rank = a->target->out_shape.rank;
  for (int k = 0; k < a->target->out_shape.rank; k++)
    dims[k] = a->target->out_shape.d[k];
}
