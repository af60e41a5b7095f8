/* Analyses as units: the table of kinds, the keys every kind shares (dataset,
 * checkpoints, layers, pairs), and the collective helpers of their finalize hooks. */
#include "out/path.h"
#include "run/analysis.h"

#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/mpi_reduce.h"
#include "mpi/tags.h"
#include "repeval/npy.h"

extern const an_kind an_cka, an_cca, an_spectrum, an_probe;
extern const an_kind an_knn, an_rsa, an_shape, an_integrity, an_map, an_alignment;

/* The kinds, in the order of the docs. A new kind: its file, one line here and its name in CMakeLists.txt. */
static const an_kind *const kinds[] = {&an_cka, &an_cca,       &an_spectrum, &an_probe, &an_knn,      &an_rsa,
                                       &an_shape, &an_integrity, &an_map,    &an_alignment};

int an_kind_count(void) { return (int)(sizeof kinds / sizeof kinds[0]); }
const an_kind *an_kind_at(int k) { return kinds[k]; }

const an_kind *an_find(const char *type) {
  for (int k = 0; k < an_kind_count(); k++)
    if (!strcmp(kinds[k]->type, type))
      return kinds[k];
  return NULL;
}

const char *an_kind_names(void) {
  static char names[256];
  if (!names[0])
    for (int k = 0; k < an_kind_count(); k++)
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "", kinds[k]->type);
  return names;
}

int an_uses_dataset(const job_analysis *a, const char *name) {
  if (a->dataset && !strcmp(a->dataset, name))
    return 1;
  const char *other;
  for (int k = 0; a->kind->other_dataset && a->kind->other_dataset(a, k, &other); k++)
    if (other && !strcmp(other, name))
      return 1;
  return 0;
}

/* ---- the shared keys ------------------------------------------------------------ */

/* The keys every kind reads here; a kind's own keys come from its table entry. */
static const char *const common_keys[] = {"type", "dataset", "checkpoints", "layers", "pairs", "reference", NULL};

static re_status parse_string_list(const re_cfg *p, char ***out, int *n) {
  const re_cfg *one[1] = {p};
  const re_cfg *const *items = p->kind == RE_CFG_SEQ ? (const re_cfg *const *)p->items : one;
  int64_t count = p->kind == RE_CFG_SEQ ? p->n : 1;
  RE_TRY(re_calloc(count ? count : 1, sizeof(char *), out));
  for (int64_t k = 0; k < count; k++) {
    const char *s;
    RE_TRY(re_cfg_string(items[k], &s));
    RE_TRY(re_strdup(s, &(*out)[k]));
    *n = (int)k + 1;
  }
  return RE_OK;
}

static re_status parse_pairs(job_analysis *a, const re_cfg *c) {
  const re_cfg *p = re_cfg_get(c, "pairs");
  a->pairs = a->kind->default_pairs;
  if (!p)
    return RE_OK;
  if (a->kind->pairs == AN_NO_PAIRS)
    return re_cfg_error(p, RE_EINVAL, "analysis '%s' (%s) takes no 'pairs'", a->name, a->kind->type);
  int reference = a->kind->pairs == AN_PAIRS_REFERENCE;
  const char *s;
  RE_TRY(re_cfg_string(p, &s));
  int k = 0;
  while (k < JOB_NPAIRS && strcmp(s, job_pairs_name((job_pairs)k)))
    k++;
  if (k == JOB_NPAIRS || (k == PAIRS_REFERENCE && !reference))
    return re_cfg_error(p, RE_EINVAL, "pairs must be all, same-layer, consecutive, within%s",
                        reference ? " or reference" : "");
  a->pairs = (job_pairs)k;
  if (a->pairs == PAIRS_REFERENCE) {
    const char *r = NULL;
    RE_TRY(re_cfg_get_string(c, "reference", &r));
    if (!r)
      return re_cfg_error(p, RE_EINVAL, "pairs: reference needs 'reference: <checkpoint label pattern>'");
    RE_TRY(re_strdup(r, &a->reference));
  }
  return RE_OK;
}

/* The allowed keys of a kind: the common ones and its own, for re_cfg_expect_map. */
static re_status allowed_keys(const an_kind *k, const char ***out) {
  int n = 0, m = 0;
  while (common_keys[n])
    n++;
  while (k->keys && k->keys[m])
    m++;
  RE_TRY(re_calloc(n + m + 1, sizeof(char *), out));
  memcpy(*out, common_keys, sizeof(char *) * (size_t)n);
  if (m)
    memcpy(*out + n, k->keys, sizeof(char *) * (size_t)m);
  return RE_OK;
}

re_status an_parse_dataset(job *j, const job_analysis *a, const re_cfg *c, const char *key, int required,
                           int need_labels, char **out) {
  const char *noun = need_labels ? a->kind->type : "analysis"; /* "probe 'p': ...", "analysis 'cka': ..." */
  const re_cfg *v = re_cfg_get(c, key);
  if (!v) {
    if (required && j->ndatasets == 1 && !need_labels)
      return re_strdup(j->datasets[0].name, out);
    if (required && need_labels)
      return re_cfg_error(c, RE_EINVAL, "%s '%s' needs '%s': the name of a dataset with labels", noun, a->name, key);
    if (required)
      return re_cfg_error(c, RE_EINVAL, "%s '%s': give '%s' (the job has %d datasets)", noun, a->name, key,
                          j->ndatasets);
    return RE_OK;
  }
  const char *s;
  RE_TRY(re_cfg_string(v, &s));
  int d = job_dataset_index(j, s);
  if (d < 0)
    return re_cfg_error(v, RE_EINVAL, "%s '%s': no dataset named '%s'", noun, a->name, s);
  if (need_labels && !j->datasets[d].has_labels)
    return re_cfg_error(v, RE_EINVAL, "%s '%s': dataset '%s' has no labels", noun, a->name, s);
  return re_strdup(s, out);
}

re_status an_parse(job *j, job_analysis *a, const char *name, const re_cfg *c) {
  a->src = c;
  RE_TRY(re_strdup(name, &a->name));
  if (c->kind != RE_CFG_MAP)
    return re_cfg_error(c, RE_EINVAL, "analysis '%s' must be a map", name);
  const char *type = name;
  RE_TRY(re_cfg_get_string(c, "type", &type));
  a->kind = an_find(type);
  if (!a->kind)
    return re_cfg_error(c, RE_EINVAL, "analysis '%s': unknown type '%s' (%s; give 'type:' when the name is not the "
                                      "type)",
                        name, type, an_kind_names());
  const char **keys = NULL;
  RE_TRY(allowed_keys(a->kind, &keys));
  re_status st = re_cfg_expect_map(c, "an analysis", keys);
  free(keys);
  RE_TRY(st);
  const re_cfg *p = re_cfg_get(c, "checkpoints");
  if (p)
    RE_TRY(parse_string_list(p, &a->ckpt_patterns, &a->npatterns));
  const re_cfg *ly = re_cfg_get(c, "layers");
  if (ly) {
    if (ly->kind != RE_CFG_SEQ || ly->n == 0)
      return re_cfg_error(ly, RE_EINVAL, "layers must be a list of layer names of the models");
    RE_TRY(parse_string_list(ly, &a->layer_filter, &a->nlayer_filter));
  }
  RE_TRY(parse_pairs(a, c));
  if (a->kind->opts_size)
    RE_TRY(re_calloc(1, (int64_t)a->kind->opts_size, &a->opts));
  if (!a->kind->own_dataset)
    RE_TRY(an_parse_dataset(j, a, c, "dataset", 1, 0, &a->dataset));
  return a->kind->parse ? a->kind->parse(j, a, c) : RE_OK;
}

void an_free(job_analysis *a) {
  for (int p = 0; p < a->npatterns; p++)
    free(a->ckpt_patterns[p]);
  free(a->ckpt_patterns);
  for (int q = 0; q < a->nlayer_filter; q++)
    free(a->layer_filter[q]);
  free(a->layer_filter);
  if (a->opts && a->kind && a->kind->free_opts)
    a->kind->free_opts(a->opts);
  free(a->opts);
  free(a->name);
  free(a->dataset);
  free(a->reference);
}

void an_manifest_dataset(FILE *f, const job_analysis *a) {
  fprintf(f, ", \"dataset\": ");
  re_json_string(f, a->dataset);
}

void an_manifest_pairs(FILE *f, const job_analysis *a) { fprintf(f, ", \"pairs\": \"%s\"", job_pairs_name(a->pairs)); }

/* ---- finalize helpers ----------------------------------------------------------- */

void an_need_blocks(const pass *p, int t, int u, uint8_t *need) {
  int a = p->mom_of[t], b = u >= 0 ? p->mom_of[u] : a, ids[3] = {re_moments_block_id(p->mom, a, a),
                                                                   re_moments_block_id(p->mom, b, b),
                                                                   re_moments_block_id(p->mom, a, b)};
  for (int k = 0; k < 3; k++)
    if (ids[k] >= 0)
      need[ids[k]] = 1;
}

void an_block(const runner *r, int64_t n, int64_t *lo, int64_t *hi) {
  *lo = n * r->comm.rank / r->comm.size;
  *hi = n * (r->comm.rank + 1) / r->comm.size;
}

void an_pairs_all(const an_run *ar, an_pair_it *it) {
  *it = (an_pair_it){0, 0, -1, -1, ar->share.npairs, 0, UINT64_MAX};
}

void an_pairs_share(const runner *r, const an_run *ar, an_pair_it *it) {
  an_pairs_all(ar, it);
  if (!ar->share.key) /* not split (a kind without pairs) */
    return;
  int q = r->comm.rank < ar->share.R ? r->comm.rank : ar->share.R - 1;
  it->n = ar->share.count[q];
  it->klo = ar->share.key[q], it->khi = ar->share.key[q + 1];
}

int an_pairs_next(const an_run *ar, an_pair_it *it) {
  const pair_share *s = &ar->share;
  while (++it->u < s->npairs) {
    if (s->prow) {
      it->i = s->prow[2 * it->u], it->l = s->prow[2 * it->u + 1];
    } else if (++it->l >= ar->P) { /* the next row: l runs from i + 1 */
      it->i++;
      it->l = it->i + 1;
    }
    if (it->klo != 0 || it->khi != UINT64_MAX) {
      uint64_t key = pair_share_key(it->i, it->l);
      if (key < it->klo || key >= it->khi)
        continue;
    }
    it->k++;
    return 1;
  }
  return 0;
}

/* The estimated cost of a pair for the shares: the products of its whitening and its
 * cross block, d_i d_l (d_i + d_l), and a fixed part for its rows. */
typedef struct cost_ctx {
  const runner *r;
  const an_run *ar;
} cost_ctx;

static double width_cost(void *ctx, int i, int l) {
  const cost_ctx *c = ctx;
  const tapinfo *t = c->r->plan.taps;
  double a = (double)t[c->ar->taps[i]].dim, b = (double)t[c->ar->taps[l]].dim;
  return a * b * (a + b) + 1e4;
}

re_status an_plan_pairs(const runner *r, an_run *ar) {
  cost_ctx ctx = {r, ar};
  pair_share_free(&ar->share);
  int split = ar->a->kind->pairs == AN_PAIRS; /* the others (CKA) only look pairs up */
  if (!split && !ar->pairs)
    return RE_OK;
  re_status st = pair_share_make(ar->P, ar->pairs, ar->pairs ? ar->npairs : 0, split ? r->comm.size : 1,
                                 ar->a->kind->pair_cost_width ? width_cost : NULL, &ctx, &ar->share);
  if (st != RE_OK)
    re_err_context(st, "analysis '%s': ", ar->a->name);
  return st;
}

int an_tap_paired(const an_run *ar, int q) {
  for (int l = 0; l < ar->P; l++)
    if (l != q && run_pair_wanted(ar, q, l))
      return 1;
  return 0;
}

re_status an_write_taps(runner *r, const an_run *ar) {
  char file[300];
  RE_TRY(re_path_join(file, sizeof file, "%s_%s_taps.csv", ar->a->kind->type, ar->a->name));
  return run_write_taps_csv(r, file, ar->taps, ar->P);
}

re_status an_rows_begin(runner *r, rows_sink *k) {
  memset(k, 0, sizeof *k);
  k->keep = r->rep.metrics;
  k->nund0 = r->rep.nundefined;
  if (r->comm.size < 2)
    return RE_OK;
  k->f = open_memstream(&k->buf, &k->len);
  if (!k->f)
    return re_err(RE_ENOMEM, "finalize: no memory for the rows");
  r->rep.metrics = k->f;
  return RE_OK;
}

re_status an_rows_begin_pairs(runner *r, rows_sink *k, const an_run *ar) {
  RE_TRY(an_rows_begin(r, k));
  k->ar = ar;
  return RE_OK;
}

re_status an_rows_pair(rows_sink *k, const an_pair_it *it) {
  if (!k->f) /* one rank: its rows are every pair's, in order */
    return RE_OK;
  if (k->nmark == k->cap) {
    int64_t cap = k->cap ? 2 * k->cap : 64;
    RE_TRY(re_realloc(&k->mark, cap, 2 * sizeof(int64_t)));
    k->cap = cap;
  }
  long at = ftell(k->f);
  if (at < 0)
    return re_err(RE_EIO, "finalize: the rows' buffer has no position");
  k->mark[2 * k->nmark] = it->u, k->mark[2 * k->nmark + 1] = at, k->nmark++;
  return RE_OK;
}

/* n bytes to or from rank `peer`, in messages of 1 MiB: received into NULL, they are
 * dropped (rank 0 without memory for them still takes every message). */
#define ROWS_PIECE (1 << 20)
static void send_bytes(const runner *r, const void *buf, int64_t n, int peer, int tag) {
  for (int64_t off = 0; off < n; off += ROWS_PIECE)
    MPI_Send((const char *)buf + off, (int)(n - off < ROWS_PIECE ? n - off : ROWS_PIECE), MPI_CHAR, peer, tag,
             r->comm.comm);
}

static void recv_bytes(const runner *r, void *buf, int64_t n, int peer, int tag) {
  static char drain[ROWS_PIECE];
  for (int64_t off = 0; off < n; off += ROWS_PIECE)
    MPI_Recv(buf ? (char *)buf + off : drain, (int)(n - off < ROWS_PIECE ? n - off : ROWS_PIECE), MPI_CHAR, peer,
             tag, r->comm.comm, MPI_STATUS_IGNORE);
}

/* One rank's rows on rank 0: the text and the marks of its pairs (an_rows_pair). */
typedef struct rank_rows {
  char *buf;
  int64_t len, nmark, next;
  int64_t *mark;
} rank_rows;

/* Rank 0: every rank's rows into metrics, those of pairs in row-major pair order (the
 * text before a rank's first mark first, in rank order). */
static re_status write_pair_rows(runner *r, const an_run *ar, rank_rows *rr) {
  int R = r->comm.size;
  for (int q = 0; q < R; q++) {
    int64_t head = ar && rr[q].nmark ? rr[q].mark[1] : rr[q].len;
    if (head > 0)
      fwrite(rr[q].buf, 1, (size_t)head, r->rep.metrics);
  }
  if (!ar)
    return RE_OK;
  an_pair_it it;
  for (an_pairs_all(ar, &it); an_pairs_next(ar, &it);) {
    rank_rows *o = &rr[pair_share_owner(&ar->share, it.i, it.l)];
    if (o->next >= o->nmark || o->mark[2 * o->next] != it.u)
      continue; /* the pair has no rows */
    int64_t from = o->mark[2 * o->next + 1], to = ++o->next < o->nmark ? o->mark[2 * o->next + 1] : o->len;
    if (from < 0 || to < from || to > o->len)
      return re_err(RE_EINVAL, "finalize: the rows of pair %lld lie outside their rank's %lld bytes", (long long)it.u,
                    (long long)o->len);
    fwrite(o->buf + from, 1, (size_t)(to - from), r->rep.metrics);
  }
  for (int q = 0; q < R; q++)
    if (rr[q].next != rr[q].nmark)
      return re_err(RE_EINVAL, "finalize: rank %d's rows of %lld pairs are not in the order of its share (%lld placed)",
                    q, (long long)rr[q].nmark, (long long)rr[q].next);
  return RE_OK;
}

re_status an_rows_end(runner *r, rows_sink *k, re_status body) {
  if (r->comm.size < 2)
    return body;
  if (k->f)
    fclose(k->f);
  r->rep.metrics = k->keep;
  re_status st = RE_OK;
  int R = r->comm.size;
  long long hdr[3] = {(long long)k->len, r->rep.nundefined - k->nund0, k->nmark};
  if (r->comm.rank != 0) {
    r->rep.nundefined = k->nund0;
    MPI_Send(hdr, 3, MPI_LONG_LONG, 0, TAG_ROWS_HEADER, r->comm.comm);
    send_bytes(r, k->buf, (int64_t)k->len, 0, TAG_ROWS_DATA);
    send_bytes(r, k->mark, 16 * k->nmark, 0, TAG_ROWS_DATA);
  } else {
    rank_rows *rr = calloc((size_t)R, sizeof *rr);
    if (!rr)
      st = re_err(RE_ENOMEM, "finalize: no memory for the ranks' rows");
    for (int src = 0; src < R; src++) {
      rank_rows me = {k->buf, (int64_t)k->len, k->nmark, 0, k->mark}, got = {0};
      if (src > 0) {
        MPI_Recv(hdr, 3, MPI_LONG_LONG, src, TAG_ROWS_HEADER, r->comm.comm, MPI_STATUS_IGNORE);
        r->rep.nundefined += (int)hdr[1];
        got.len = hdr[0], got.nmark = hdr[2];
        got.buf = malloc(got.len > 0 ? (size_t)got.len : 1);
        got.mark = malloc(got.nmark > 0 ? 16 * (size_t)got.nmark : 1);
        if ((!got.buf || !got.mark) && st == RE_OK)
          st = re_err(RE_ENOMEM, "finalize: no memory for rank %d's rows", src);
        if (!got.buf || !got.mark)
          free(got.buf), free(got.mark), got.buf = NULL, got.mark = NULL, got.len = got.nmark = 0;
        recv_bytes(r, got.buf, hdr[0], src, TAG_ROWS_DATA);
        recv_bytes(r, got.mark, 16 * hdr[2], src, TAG_ROWS_DATA);
      }
      if (rr)
        rr[src] = src ? got : me;
      else if (src)
        free(got.buf), free(got.mark);
    }
    if (st == RE_OK)
      st = write_pair_rows(r, k->ar, rr);
    for (int q = 1; rr && q < R; q++)
      free(rr[q].buf), free(rr[q].mark);
    free(rr);
  }
  free(k->buf);
  free(k->mark);
  k->buf = NULL, k->mark = NULL;
  return body != RE_OK ? body : st;
}

re_status an_eig_of(const re_moments *m, re_eig **cache, int li) {
  if (cache[li])
    return RE_OK;
  return re_eig_create(re_moments_block(m, li, li, NULL), re_moments_dim(m, li), re_moments_n(m), &cache[li]);
}

re_status an_eig(pass *p, re_eig **cache, int li) { return an_eig_of(p->mom, cache, li); }

re_status an_eig_pair(pass *p, re_eig **cache, const an_run *ar, int i, int l, int *la, int *lb) {
  *la = p->mom_of[ar->taps[i]];
  *lb = p->mom_of[ar->taps[l]];
  RE_TRY(an_eig(p, cache, *la));
  return an_eig(p, cache, *lb);
}

re_status an_write_matrix(runner *r, const char *prefix, const char *name, const double *M, int64_t rows,
                          int64_t cols) {
  char path[4300];
  if ((size_t)snprintf(path, sizeof path, "%s/%s_%s.npy", r->plan.partial, prefix, name) >= sizeof path)
    return re_err(RE_EINVAL, "%s/%s_%s.npy: path too long", r->plan.partial, prefix, name);
  int64_t shape[2] = {rows, cols};
  return re_npy_write(path, RE_DTYPE_F64, 2, shape, M);
}
