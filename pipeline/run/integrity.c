/* Checkpoint-integrity checks of a training grid: runs and steps from labels, and
 * the checks on per-tensor statistics and CKA with neighbours (integrity.h). */
#include "run/integrity.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- labels: runs and steps ---------------------------------------------------- */

/* The label's last run of digits: [*at, *at + *len); 0 when it has none (or more
 * than 18 digits, which no step counter has). */
static int last_number(const char *s, size_t *at, size_t *len) {
  size_t n = strlen(s), e = n;
  while (e > 0 && !isdigit((unsigned char)s[e - 1]))
    e--;
  if (e == 0)
    return 0;
  size_t b = e;
  while (b > 0 && isdigit((unsigned char)s[b - 1]))
    b--;
  if (e - b > 18)
    return 0;
  *at = b;
  *len = e - b;
  return 1;
}

static const int64_t *sort_steps; /* qsort context: the steps of the positions being sorted */

static int by_step(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  if (sort_steps[x] != sort_steps[y])
    return sort_steps[x] < sort_steps[y] ? -1 : 1;
  return x < y ? -1 : x > y; /* job order among equal steps */
}

re_status ig_model_group(ig_model *m, int n, const char **labels) {
  m->n = n;
  m->label = labels;
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof(int), &m->run));
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof(int64_t), &m->step));
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof(char *), &m->run_name));
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof(int *), &m->order));
  RE_TRY(re_calloc(n > 0 ? n : 1, sizeof(int), &m->norder));
  int numbered = 1;
  for (int k = 0; k < n; k++) {
    size_t at, len;
    numbered &= last_number(labels[k], &at, &len);
  }
  for (int k = 0; k < n; k++) {
    char key[1024] = "";
    m->step[k] = -1;
    size_t at, len;
    if (numbered && last_number(labels[k], &at, &len)) {
      m->step[k] = strtoll(labels[k] + at, NULL, 10);
      snprintf(key, sizeof key, "%.*s#%s", (int)at, labels[k], labels[k] + at + len);
    }
    int r = 0;
    while (r < m->nruns && strcmp(m->run_name[r], key))
      r++;
    if (r == m->nruns) {
      RE_TRY(re_strdup(key, &m->run_name[r]));
      RE_TRY(re_calloc(n, sizeof(int), &m->order[r]));
      m->nruns++;
    }
    m->run[k] = r;
    m->order[r][m->norder[r]++] = k;
  }
  sort_steps = m->step;
  for (int r = 0; r < m->nruns; r++)
    qsort(m->order[r], (size_t)m->norder[r], sizeof(int), by_step);
  return RE_OK;
}

/* ---- tensors ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int name_index(const ig_model *m, const char *name) {
  int lo = 0, hi = m->nnames - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(m->names[mid], name);
    if (c == 0)
      return mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

static int float_dtype(re_dtype dt) {
  return dt == RE_DTYPE_F16 || dt == RE_DTYPE_BF16 || dt == RE_DTYPE_F32 || dt == RE_DTYPE_F64;
}

re_status ig_model_tensors(ig_model *m, re_ckpt *const *ckpts) {
  int64_t total = 0;
  for (int k = 0; k < m->n; k++)
    total += re_ckpt_count(ckpts[k]);
  const char **all = NULL;
  RE_TRY(re_calloc(total > 0 ? total : 1, sizeof(char *), &all));
  int64_t q = 0;
  for (int k = 0; k < m->n; k++)
    for (int64_t i = 0; i < re_ckpt_count(ckpts[k]); i++)
      all[q++] = re_ckpt_info(ckpts[k], i)->name;
  qsort(all, (size_t)total, sizeof(char *), cmp_str);
  int64_t u = 0;
  for (int64_t i = 0; i < total; i++)
    if (u == 0 || strcmp(all[u - 1], all[i]))
      all[u++] = all[i];
  if (u > INT32_MAX / (m->n > 0 ? m->n : 1)) {
    free(all);
    return re_err(RE_ENOMEM, "integrity: %lld tensor names over %d checkpoints are too many", (long long)u, m->n);
  }
  m->names = all;
  m->nnames = (int)u;
  int64_t cells = (int64_t)m->n * m->nnames;
  RE_TRY(re_malloc(cells > 0 ? cells : 1, sizeof(int64_t), &m->tix));
  RE_TRY(re_calloc(cells > 0 ? cells : 1, sizeof(re_tensor_stats), &m->st));
  RE_TRY(re_calloc(cells > 0 ? cells : 1, sizeof(uint64_t), &m->key));
  RE_TRY(re_calloc(m->nnames > 0 ? m->nnames : 1, sizeof(int), &m->is_float));
  RE_TRY(re_calloc(m->nnames > 0 ? m->nnames : 1, sizeof(int64_t), &m->numel));
  RE_TRY(re_calloc(m->n > 0 ? m->n : 1, sizeof(uint64_t), &m->digest));
  for (int64_t c = 0; c < cells; c++)
    m->tix[c] = -1;
  for (int k = m->n - 1; k >= 0; k--) /* numel from the first checkpoint holding the tensor */
    for (int64_t i = 0; i < re_ckpt_count(ckpts[k]); i++) {
      const re_tensor_info *ti = re_ckpt_info(ckpts[k], i);
      int x = name_index(m, ti->name);
      m->tix[(int64_t)k * m->nnames + x] = i;
      m->is_float[x] |= float_dtype(ti->dtype);
      m->numel[x] = ti->numel;
    }
  return RE_OK;
}

static uint64_t put_u64(uint64_t h, uint64_t v) {
  uint8_t b[8];
  for (int k = 0; k < 8; k++)
    b[k] = (uint8_t)(v >> (8 * k));
  return re_fnv1a64(h, b, 8);
}

void ig_model_fill(ig_model *m, int k, const re_tensor_stats *st) {
  for (int u = 0; u < m->nnames; u++) {
    int64_t i = m->tix[(int64_t)k * m->nnames + u];
    if (i >= 0)
      m->st[(int64_t)k * m->nnames + u] = st[i];
  }
}

void ig_model_digest(ig_model *m, re_ckpt *const *ckpts) {
  static const char tag[] = "repeval-integrity-1";
  for (int k = 0; k < m->n; k++) {
    uint64_t d = re_fnv1a64(RE_FNV1A64_INIT, tag, sizeof tag - 1);
    for (int u = 0; u < m->nnames; u++) {
      int64_t c = (int64_t)k * m->nnames + u, i = m->tix[c];
      if (i < 0)
        continue;
      const re_tensor_info *ti = re_ckpt_info(ckpts[k], i);
      uint64_t h = put_u64(RE_FNV1A64_INIT, (uint64_t)ti->dtype);
      h = put_u64(h, (uint64_t)ti->ndim);
      for (int e = 0; e < ti->ndim; e++)
        h = put_u64(h, (uint64_t)ti->shape[e]);
      h = put_u64(h, m->st[c].fnv1a64);
      m->key[c] = h ? h : 1; /* 0 means absent */
      d = re_fnv1a64(d, m->names[u], strlen(m->names[u]) + 1);
      d = put_u64(d, m->key[c]);
    }
    m->digest[k] = d;
  }
}

re_status ig_model_layers(ig_model *m, int nlayers, const char **layers) {
  m->nlayers = nlayers;
  m->layers = layers;
  int64_t cells = (int64_t)nlayers * m->n;
  RE_TRY(re_malloc(cells > 0 ? cells : 1, sizeof(double), &m->cka_next));
  RE_TRY(re_malloc(cells > 0 ? cells : 1, sizeof(double), &m->cka_skip));
  for (int64_t c = 0; c < cells; c++)
    m->cka_next[c] = m->cka_skip[c] = NAN;
  return RE_OK;
}

void ig_model_free(ig_model *m) {
  for (int r = 0; r < m->nruns; r++) {
    free(m->order[r]);
    free(m->run_name[r]);
  }
  free(m->order);
  free(m->norder);
  free(m->run_name);
  free(m->run);
  free(m->step);
  free(m->names);
  free(m->tix);
  free(m->st);
  free(m->key);
  free(m->is_float);
  free(m->numel);
  free(m->digest);
  free(m->cka_next);
  free(m->cka_skip);
  memset(m, 0, sizeof *m);
}

/* ---- findings ------------------------------------------------------------------------ */

static re_status add(ig_findings *f, const char *kind, int model, int a, int b, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static re_status add(ig_findings *f, const char *kind, int model, int a, int b, const char *fmt, ...) {
  if (f->n == f->cap) {
    int cap = f->cap ? 2 * f->cap : 16;
    RE_TRY(re_realloc(&f->v, cap, sizeof(ig_finding)));
    f->cap = cap;
  }
  ig_finding *x = &f->v[f->n++];
  memset(x, 0, sizeof *x);
  snprintf(x->kind, sizeof x->kind, "%s", kind);
  x->model = model, x->a = a, x->b = b;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->text, sizeof x->text, fmt, ap);
  va_end(ap);
  return RE_OK;
}

void ig_findings_free(ig_findings *f) {
  free(f->v);
  memset(f, 0, sizeof *f);
}

/* Append s to buf (cap bytes) while it fits; a list that does not fit ends in "...". */
static void append(char *buf, size_t cap, const char *s) {
  size_t n = strlen(buf);
  if (n + strlen(s) + 4 < cap)
    memcpy(buf + n, s, strlen(s) + 1);
  else if (n + 4 < cap && strcmp(buf + (n >= 3 ? n - 3 : 0), "..."))
    memcpy(buf + n, "...", 4);
}

/* ---- gaps ------------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* The label of position k with its step replaced by `step` (zero padding kept). */
static void label_at_step(const char *label, int64_t step, char *out, size_t cap) {
  size_t at = 0, len = 0;
  last_number(label, &at, &len);
  int width = len > 1 && label[at] == '0' ? (int)len : 0;
  snprintf(out, cap, "%.*s%0*lld%s", (int)at, label, width, (long long)step, label + at + len);
}

re_status ig_check_gaps(const ig_model *m, int model, const char *name, ig_findings *f) {
  for (int r = 0; r < m->nruns; r++) {
    const int *o = m->order[r];
    int c = m->norder[r];
    if (c < 3 || m->step[o[0]] < 0)
      continue;
    int64_t *d = NULL;
    int nd = 0;
    RE_TRY(re_calloc(c, sizeof(int64_t), &d));
    for (int j = 1; j < c; j++)
      if (m->step[o[j]] > m->step[o[j - 1]])
        d[nd++] = m->step[o[j]] - m->step[o[j - 1]];
    qsort(d, (size_t)nd, sizeof(int64_t), cmp_i64);
    int64_t mode = 0;
    int best = 0;
    for (int i = 0; i < nd;) { /* the most frequent spacing; ties: the smaller */
      int j = i;
      while (j < nd && d[j] == d[i])
        j++;
      if (j - i > best)
        best = j - i, mode = d[i];
      i = j;
    }
    free(d);
    if (best < 2)
      continue; /* no regular spacing to miss a step of */
    for (int j = 1; j < c; j++) {
      int64_t s0 = m->step[o[j - 1]], s1 = m->step[o[j]], diff = s1 - s0;
      if (diff <= mode || diff % mode)
        continue;
      int64_t missing = diff / mode - 1;
      char list[400] = "", one[300];
      for (int64_t q = 1; q <= missing; q++) {
        label_at_step(m->label[o[j - 1]], s0 + q * mode, one, sizeof one);
        if (q > 1)
          append(list, sizeof list, ", ");
        append(list, sizeof list, one);
      }
      RE_TRY(add(f, "gap", model, o[j - 1], o[j],
                 "model '%s': %lld checkpoint%s missing between %s and %s (the run's steps are %lld apart): %s", name,
                 (long long)missing, missing == 1 ? "" : "s", m->label[o[j - 1]], m->label[o[j]], (long long)mode,
                 list));
    }
  }
  return RE_OK;
}

/* ---- identical content ------------------------------------------------------------------ */

static const uint64_t *sort_digest;

static int by_digest(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  if (sort_digest[x] != sort_digest[y])
    return sort_digest[x] < sort_digest[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

re_status ig_check_content(const ig_model *m, int model, const char *name, ig_findings *f) {
  int *p = NULL;
  RE_TRY(re_calloc(m->n > 0 ? m->n : 1, sizeof(int), &p));
  for (int k = 0; k < m->n; k++)
    p[k] = k;
  sort_digest = m->digest;
  qsort(p, (size_t)m->n, sizeof(int), by_digest);
  re_status st = RE_OK;
  for (int i = 0; i < m->n && st == RE_OK;) {
    int j = i;
    while (j < m->n && m->digest[p[j]] == m->digest[p[i]])
      j++;
    if (j - i >= 2) {
      char list[400] = "";
      for (int q = i; q < j; q++) {
        if (q > i)
          append(list, sizeof list, q == j - 1 ? " and " : ", ");
        append(list, sizeof list, m->label[p[q]]);
      }
      st = add(f, "identical_content", model, p[i], p[i + 1],
               "model '%s': %d checkpoints hold identical content (every tensor byte-identical): %s", name, j - i,
               list);
    }
    i = j;
  }
  free(p);
  return st;
}

/* ---- identical tensors between steps ---------------------------------------------------- */

typedef struct tpair {
  int a, b, count;
  char names[300];
} tpair;

re_status ig_check_tensors(const ig_model *m, int model, const char *name, ig_findings *f) {
  re_status st = RE_OK;
  for (int r = 0; r < m->nruns && st == RE_OK; r++) {
    const int *o = m->order[r];
    int c = m->norder[r];
    tpair *pairs = NULL;
    int np = 0, cap = 0;
    for (int u = 0; u < m->nnames && st == RE_OK; u++) {
      if (!m->is_float[u])
        continue; /* counters, masks and ids repeat by design */
      int distinct = 0;
      for (int j = 0; j < c; j++) {
        uint64_t kj = m->key[(int64_t)o[j] * m->nnames + u];
        int seen = 0;
        for (int i = 0; i < j && !seen && kj; i++)
          seen = m->key[(int64_t)o[i] * m->nnames + u] == kj;
        distinct += kj && !seen;
      }
      if (distinct < 2)
        continue; /* absent, or the same in every checkpoint of the run: frozen */
      for (int j = 1; j < c && st == RE_OK; j++) {
        uint64_t kj = m->key[(int64_t)o[j] * m->nnames + u];
        int i = 0;
        while (i < j && (!kj || m->key[(int64_t)o[i] * m->nnames + u] != kj))
          i++;
        if (i == j || m->digest[o[i]] == m->digest[o[j]])
          continue; /* new, or the whole checkpoint is a copy (identical_content) */
        int q = 0;
        while (q < np && !(pairs[q].a == o[i] && pairs[q].b == o[j]))
          q++;
        if (q == np) {
          if (np == cap) {
            cap = cap ? 2 * cap : 8;
            st = re_realloc(&pairs, cap, sizeof(tpair));
            if (st != RE_OK)
              break;
          }
          memset(&pairs[np], 0, sizeof pairs[np]);
          pairs[np].a = o[i], pairs[np].b = o[j];
          np++;
        }
        if (pairs[q].count++)
          append(pairs[q].names, sizeof pairs[q].names, ", ");
        append(pairs[q].names, sizeof pairs[q].names, m->names[u]);
      }
    }
    for (int q = 0; q < np && st == RE_OK; q++)
      st = add(f, "identical_tensors", model, pairs[q].a, pairs[q].b,
               "model '%s': %d tensor%s of %s %s byte-identical to %s's though %s elsewhere in the run: %s", name,
               pairs[q].count, pairs[q].count == 1 ? "" : "s", m->label[pairs[q].b],
               pairs[q].count == 1 ? "is" : "are", m->label[pairs[q].a], pairs[q].count == 1 ? "it changes" : "they change",
               pairs[q].names);
    free(pairs);
  }
  return st;
}

/* ---- non-finite weights -------------------------------------------------------------------- */

re_status ig_check_nonfinite(const ig_model *m, int model, const char *name, ig_findings *f) {
  for (int k = 0; k < m->n; k++) {
    int64_t total = 0;
    char list[300] = "";
    for (int u = 0; u < m->nnames; u++) {
      int64_t bad = m->st[(int64_t)k * m->nnames + u].nonfinite;
      if (!bad)
        continue;
      if (total)
        append(list, sizeof list, ", ");
      append(list, sizeof list, m->names[u]);
      total += bad;
    }
    if (total)
      RE_TRY(add(f, "nonfinite", model, k, -1, "model '%s': checkpoint %s holds %lld NaN or infinite weight%s in %s",
                 name, m->label[k], (long long)total, total == 1 ? "" : "s", list));
  }
  return RE_OK;
}

/* ---- norm jumps --------------------------------------------------------------------------- */

typedef struct jump {
  int a, b, count;
  double worst; /* log ratio of the largest jump */
  int worst_u;
} jump;

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

re_status ig_check_norms(const ig_model *m, int model, const char *name, const ig_thresholds *t, ig_findings *f) {
  re_status st = RE_OK;
  double limit = log1p(t->norm_jump);
  for (int r = 0; r < m->nruns && st == RE_OK; r++) {
    const int *o = m->order[r];
    int c = m->norder[r];
    double *lr = NULL, *sorted = NULL;
    int *from = NULL, *to = NULL;
    jump *jumps = NULL;
    int nj = 0, jcap = c;
    st = re_calloc(c, sizeof(double), &lr);
    if (st == RE_OK)
      st = re_calloc(c, sizeof(double), &sorted);
    if (st == RE_OK)
      st = re_calloc(c, sizeof(int), &from);
    if (st == RE_OK)
      st = re_calloc(c, sizeof(int), &to);
    if (st == RE_OK)
      st = re_calloc(c, sizeof(jump), &jumps);
    for (int u = 0; u < m->nnames && st == RE_OK; u++) {
      if (!m->is_float[u])
        continue;
      int nt = 0, prev = -1;
      for (int j = 0; j < c; j++) { /* transitions between checkpoints holding the tensor */
        int64_t cell = (int64_t)o[j] * m->nnames + u;
        if (!m->key[cell] || m->st[cell].nonfinite)
          continue;
        if (prev >= 0) {
          double n0 = m->st[(int64_t)prev * m->nnames + u].sumsq, n1 = m->st[cell].sumsq;
          if (n0 > 0 && n1 > 0) /* a tensor starting at zero (biases) has no ratio */
            lr[nt] = 0.5 * log(n1 / n0), from[nt] = prev, to[nt] = o[j], nt++;
        }
        prev = o[j];
      }
      if (nt < 3)
        continue; /* no typical change to compare with */
      for (int q = 0; q < nt; q++)
        sorted[q] = fabs(lr[q]);
      qsort(sorted, (size_t)nt, sizeof(double), cmp_dbl);
      double med = nt % 2 ? sorted[nt / 2] : 0.5 * (sorted[nt / 2 - 1] + sorted[nt / 2]);
      for (int q = 0; q < nt; q++) {
        if (!(fabs(lr[q]) > limit && fabs(lr[q]) > t->norm_factor * med))
          continue;
        int x = 0;
        while (x < nj && !(jumps[x].a == from[q] && jumps[x].b == to[q]))
          x++;
        if (x == nj && nj == jcap) { /* a tensor absent from some checkpoints has other transitions */
          st = re_realloc(&jumps, 2 * jcap, sizeof(jump));
          if (st != RE_OK)
            break;
          jcap *= 2;
        }
        if (x == nj)
          jumps[nj++] = (jump){from[q], to[q], 0, 0.0, u};
        if (jumps[x].count++ == 0 || fabs(lr[q]) > fabs(jumps[x].worst))
          jumps[x].worst = lr[q], jumps[x].worst_u = u;
      }
    }
    for (int x = 0; x < nj && st == RE_OK; x++) {
      char more[64] = "";
      if (jumps[x].count > 1)
        snprintf(more, sizeof more, " (and %d more tensor%s)", jumps[x].count - 1, jumps[x].count == 2 ? "" : "s");
      st = add(f, "norm_jump", model, jumps[x].a, jumps[x].b,
               "model '%s': weight norms jump between %s and %s: %s x%.3g%s, beyond %.3g relative change and %.3g "
               "times the tensor's median change",
               name, m->label[jumps[x].a], m->label[jumps[x].b], m->names[jumps[x].worst_u], exp(jumps[x].worst), more,
               t->norm_jump, t->norm_factor);
    }
    free(lr);
    free(sorted);
    free(from);
    free(to);
    free(jumps);
  }
  return st;
}

/* ---- CKA with neighbours -------------------------------------------------------------------- */

re_status ig_check_cka(const ig_model *m, int model, const char *name, const ig_thresholds *t, ig_findings *f) {
  for (int r = 0; r < m->nruns; r++) {
    const int *o = m->order[r];
    int c = m->norder[r];
    for (int j = 1; j + 1 < c; j++) {
      int a = o[j - 1], k = o[j];
      char list[300] = "";
      int nl = 0;
      double w1 = 0, w2 = 0, w0 = 0;
      for (int l = 0; l < m->nlayers; l++) {
        double d1 = 1 - m->cka_next[(int64_t)l * m->n + a], d2 = 1 - m->cka_next[(int64_t)l * m->n + k],
               d0 = 1 - m->cka_skip[(int64_t)l * m->n + a];
        if (!(isfinite(d1) && isfinite(d2) && isfinite(d0)))
          continue;
        double lo = d1 < d2 ? d1 : d2;
        if (!(lo > t->cka_ratio * (d0 > 0 ? d0 : 0) + t->cka_margin))
          continue;
        if (nl++ == 0)
          w1 = d1, w2 = d2, w0 = d0;
        else
          append(list, sizeof list, ", ");
        append(list, sizeof list, m->layers[l]);
      }
      if (nl)
        RE_TRY(add(f, "cka_trend", model, k, -1,
                   "model '%s': checkpoint %s breaks the CKA trend of its run in %d of %d layer%s (%s): 1 - CKA to its "
                   "neighbours %s and %s is %.3g and %.3g, between them %.3g",
                   name, m->label[k], nl, m->nlayers, m->nlayers == 1 ? "" : "s", list, m->label[a],
                   m->label[o[j + 1]], w1, w2, w0));
    }
  }
  return RE_OK;
}
