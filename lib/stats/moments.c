/* Streaming, mergeable co-moments (see moments.h).
 *
 * Re-centring identities. Let a_s = x_s - mu (so sum_s a_s = 0) and move the
 * centre to mu' = mu + D, a'_s = a_s - D. With q_s = ||a_s||^2 and the same for
 * a second layer (b, E, r):
 *   C'      = C + n D E^T
 *   aq'     = sum a'_s r'_s = aq - 2 C E - (tr C_yy + n|E|^2) D
 *   sqq'    = sum q'_s r'_s = sqq - 2 E.(sum b q) - 2 D.(sum a r)
 *             + |E|^2 tr C_xx + |D|^2 tr C_yy + 4 D^T C E + n |D|^2 |E|^2
 * These are exact; with D small (a shift between means) they lose no precision,
 * which is the point of the Chan–Golub–LeVeque pairwise update (Chan, Golub,
 * LeVeque 1979, "Updating formulae and a pairwise algorithm for computing
 * sample variances"). */
#include "repeval/moments.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MOMENTS_MAGIC 1297040717.0 /* "MOMM" */
#define SERIAL_HEADER 2            /* magic, layout hash */

typedef struct moments_ws {
  double *buf;
  int64_t cap;
} moments_ws;

struct re_moments {
  int L;
  int64_t *dims;
  unsigned flags;
  int nblocks;
  int32_t *blk;      /* nblocks x 2, i <= j, sorted */
  int *blkindex;     /* L x L -> block id or -1 */
  int64_t len;       /* doubles in state */
  double *state;     /* [n, means..., per block: C, (sqq, aq_i, aq_j)] */
  int64_t *mean_off; /* L */
  int64_t *c_off, *x_off; /* nblocks: C and debiased extras (sqq at x_off, then aq_i, aq_j) */
  double layout_hash;
  /* workspace: the batch centred (per layer b x d_l) and its row norms (L x b), in
   * one buffer that accumulators adding batches in turn may share */
  moments_ws *ws;
  int ws_own;
  double **xc;   /* per layer: into ws */
  double *q;     /* into ws */
  double *delta; /* sum d_l */
  int64_t *delta_off;
  double *tr;    /* L traces */
  double *tmp;   /* max d */
  double *scratch; /* len, for merges */
};

static int64_t block_len(const re_moments *m, int b) {
  int64_t di = m->dims[m->blk[2 * b]], dj = m->dims[m->blk[2 * b + 1]];
  return di * dj;
}

static int cmp_pair(const void *a, const void *b) {
  const int32_t *x = a, *y = b;
  if (x[0] != y[0])
    return x[0] < y[0] ? -1 : 1;
  return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Normalise requested pairs: i <= j, add diagonals, sort, dedupe. */
static re_status normalise_pairs(int L, int npairs, const int32_t *pairs, int32_t **out, int *nout) {
  int32_t *p = NULL;
  RE_TRY(re_malloc((int64_t)(npairs * 3 + 1), 2 * sizeof(int32_t), &p));
  int n = 0;
  for (int k = 0; k < npairs; k++) {
    int32_t i = pairs[2 * k], j = pairs[2 * k + 1];
    if (i < 0 || j < 0 || i >= L || j >= L) {
      free(p);
      return re_err(RE_EINVAL, "moments: pair %d = (%d, %d) names a layer outside 0..%d", k, i, j, L - 1);
    }
    if (i > j) {
      int32_t t = i;
      i = j;
      j = t;
    }
    p[2 * n] = i, p[2 * n + 1] = j, n++;
    p[2 * n] = i, p[2 * n + 1] = i, n++;
    p[2 * n] = j, p[2 * n + 1] = j, n++;
  }
  qsort(p, (size_t)n, 2 * sizeof(int32_t), cmp_pair);
  int u = 0;
  for (int k = 0; k < n; k++)
    if (u == 0 || p[2 * k] != p[2 * (u - 1)] || p[2 * k + 1] != p[2 * (u - 1) + 1]) {
      p[2 * u] = p[2 * k], p[2 * u + 1] = p[2 * k + 1];
      u++;
    }
  *out = p;
  *nout = u;
  return RE_OK;
}

static re_status layout_len(int L, const int64_t *dims, int nb, const int32_t *blk, unsigned flags, int64_t *len) {
  int64_t total = 1, t;
  for (int l = 0; l < L; l++) {
    if (dims[l] <= 0)
      return re_err(RE_EINVAL, "moments: layer %d has width %lld", l, (long long)dims[l]);
    RE_TRY(re_add_i64(total, dims[l], &total));
  }
  for (int b = 0; b < nb; b++) {
    RE_TRY(re_mul_i64(dims[blk[2 * b]], dims[blk[2 * b + 1]], &t));
    RE_TRY(re_add_i64(total, t, &total));
    if (flags & RE_MOMENTS_DEBIASED) {
      RE_TRY(re_add_i64(total, 1 + dims[blk[2 * b]] + dims[blk[2 * b + 1]], &total));
    }
  }
  *len = total;
  return RE_OK;
}

re_status re_moments_state_len(int nlayers, const int64_t *dims, int npairs, const int32_t *pairs,
                               unsigned flags, int64_t *len) {
  int32_t *blk = NULL;
  int nb;
  RE_TRY(normalise_pairs(nlayers, npairs, pairs, &blk, &nb));
  re_status st = layout_len(nlayers, dims, nb, blk, flags, len);
  free(blk);
  return st;
}

static double hash_layout(const re_moments *m) {
  uint64_t h = 1469598103934665603ull;
#define MIX(v)                          \
  do {                                  \
    h ^= (uint64_t)(v);                 \
    h *= 1099511628211ull;              \
  } while (0)
  MIX(m->L);
  MIX(m->flags);
  for (int l = 0; l < m->L; l++)
    MIX(m->dims[l]);
  for (int b = 0; b < m->nblocks; b++) {
    MIX(m->blk[2 * b]);
    MIX(m->blk[2 * b + 1]);
  }
#undef MIX
  return (double)(h >> 12); /* 52 bits: exact in a double */
}

re_status re_moments_create(int nlayers, const int64_t *dims, int npairs, const int32_t *pairs, unsigned flags,
                            re_moments **out) {
  re_status st = RE_OK;
  re_moments *m = NULL;
  *out = NULL;
  if (nlayers <= 0)
    return re_err(RE_EINVAL, "moments: need at least one layer");
  RE_CHECK(re_calloc(1, sizeof *m, &m));
  m->L = nlayers;
  m->flags = flags;
  RE_CHECK(re_malloc(nlayers, sizeof(int64_t), &m->dims));
  memcpy(m->dims, dims, sizeof(int64_t) * (size_t)nlayers);
  RE_CHECK(normalise_pairs(nlayers, npairs, pairs, &m->blk, &m->nblocks));
  RE_CHECK(layout_len(nlayers, dims, m->nblocks, m->blk, flags, &m->len));
  RE_CHECK(re_calloc_whole(m->len, sizeof(double), &m->state));
  RE_CHECK(re_calloc_whole(m->len, sizeof(double), &m->scratch));
  RE_CHECK(re_malloc((int64_t)nlayers * nlayers, sizeof(int), &m->blkindex));
  for (int k = 0; k < nlayers * nlayers; k++)
    m->blkindex[k] = -1;
  RE_CHECK(re_malloc(nlayers, sizeof(int64_t), &m->mean_off));
  RE_CHECK(re_malloc(nlayers, sizeof(int64_t), &m->delta_off));
  RE_CHECK(re_calloc(m->nblocks, sizeof(int64_t), &m->c_off));
  RE_CHECK(re_calloc(m->nblocks, sizeof(int64_t), &m->x_off));
  int64_t off = 1, doff = 0, maxd = 1;
  for (int l = 0; l < nlayers; l++) {
    m->mean_off[l] = off;
    m->delta_off[l] = doff;
    off += dims[l];
    doff += dims[l];
    if (dims[l] > maxd)
      maxd = dims[l];
  }
  for (int b = 0; b < m->nblocks; b++) {
    int i = m->blk[2 * b], j = m->blk[2 * b + 1];
    m->blkindex[i * nlayers + j] = b;
    m->blkindex[j * nlayers + i] = b;
    m->c_off[b] = off;
    off += block_len(m, b);
    if (flags & RE_MOMENTS_DEBIASED) {
      m->x_off[b] = off;
      off += 1 + dims[i] + dims[j];
    }
  }
  RE_CHECK(re_calloc(doff, sizeof(double), &m->delta));
  RE_CHECK(re_calloc(nlayers, sizeof(double), &m->tr));
  RE_CHECK(re_calloc(maxd, sizeof(double), &m->tmp));
  RE_CHECK(re_calloc(nlayers, sizeof(double *), &m->xc));
  RE_CHECK(re_calloc(1, sizeof(moments_ws), &m->ws));
  m->ws_own = 1;
  m->layout_hash = hash_layout(m);
  *out = m;
  m = NULL;
done:
  re_moments_destroy(&m);
  return st;
}

void re_moments_destroy(re_moments **pm) {
  re_moments *m = *pm;
  if (!m)
    return;
  free(m->xc);
  if (m->ws && m->ws_own) {
    free(m->ws->buf);
    free(m->ws);
  }
  free(m->delta);
  free(m->delta_off);
  free(m->tr);
  free(m->tmp);
  free(m->scratch);
  free(m->state);
  free(m->mean_off);
  free(m->c_off);
  free(m->x_off);
  free(m->blkindex);
  free(m->blk);
  free(m->dims);
  free(m);
  *pm = NULL;
}

void re_moments_reset(re_moments *m) { memset(m->state, 0, sizeof(double) * (size_t)m->len); }

/* Traces of the diagonal blocks of state s into m->tr. */
static void compute_traces(re_moments *m, const double *s) {
  for (int l = 0; l < m->L; l++) {
    int b = m->blkindex[l * m->L + l];
    double t = 0;
    if (b >= 0) {
      const double *C = s + m->c_off[b];
      int64_t d = m->dims[l];
      for (int64_t k = 0; k < d; k++)
        t += C[k * d + k];
    }
    m->tr[l] = t;
  }
}

/* Move the centre of state s (centred on its own mean) by m->delta. */
static void recentre(re_moments *m, double *s) {
  double n = s[0];
  if (n == 0)
    return;
  compute_traces(m, s);
  for (int b = 0; b < m->nblocks; b++) {
    int i = m->blk[2 * b], j = m->blk[2 * b + 1];
    int64_t di = m->dims[i], dj = m->dims[j];
    double *C = s + m->c_off[b];
    const double *D = m->delta + m->delta_off[i], *E = m->delta + m->delta_off[j];
    double dd = cblas_ddot((int)di, D, 1, D, 1), ee = cblas_ddot((int)dj, E, 1, E, 1);
    if (m->flags & RE_MOMENTS_DEBIASED) {
      double *sqq = s + m->x_off[b], *aqi = sqq + 1, *aqj = aqi + di;
      /* tmp = C E (d_i) */
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)di, (int)dj, 1.0, C, (int)dj, E, 1, 0.0, m->tmp, 1);
      double dCe = cblas_ddot((int)di, D, 1, m->tmp, 1);
      double e_aqj = cblas_ddot((int)dj, E, 1, aqj, 1); /* E . sum b q */
      double d_aqi = cblas_ddot((int)di, D, 1, aqi, 1); /* D . sum a r */
      *sqq += -2 * e_aqj - 2 * d_aqi + ee * m->tr[i] + dd * m->tr[j] + 4 * dCe + n * dd * ee;
      /* aq_i' = aq_i - 2 C E - (tr_j + n|E|^2) D */
      cblas_daxpy((int)di, -2.0, m->tmp, 1, aqi, 1);
      cblas_daxpy((int)di, -(m->tr[j] + n * ee), D, 1, aqi, 1);
      /* aq_j' = aq_j - 2 C^T D - (tr_i + n|D|^2) E */
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)di, (int)dj, 1.0, C, (int)dj, D, 1, 0.0, m->tmp, 1);
      cblas_daxpy((int)dj, -2.0, m->tmp, 1, aqj, 1);
      cblas_daxpy((int)dj, -(m->tr[i] + n * dd), E, 1, aqj, 1);
    }
    cblas_dger(CblasRowMajor, (int)di, (int)dj, n, D, 1, E, 1, C, (int)dj);
  }
}

/* The workspace holds a batch of b rows for this accumulator (grown when needed;
 * the pointers are set at every batch, since a shared buffer may have moved). */
static re_status ensure_workspace(re_moments *m, int64_t b) {
  int64_t width = m->L, need;
  for (int l = 0; l < m->L; l++)
    RE_TRY(re_add_i64(width, m->dims[l], &width));
  RE_TRY(re_mul_i64(b, width, &need));
  moments_ws *ws = m->ws;
  if (need > ws->cap) {
    free(ws->buf);
    ws->buf = NULL;
    ws->cap = 0;
    RE_TRY(re_malloc(need, sizeof(double), &ws->buf));
    ws->cap = need;
  }
  int64_t off = 0;
  for (int l = 0; l < m->L; l++) {
    m->xc[l] = ws->buf + off;
    off += b * m->dims[l];
  }
  m->q = ws->buf + off;
  return RE_OK;
}

void re_moments_share_workspace(re_moments *m, re_moments *owner) {
  if (m == owner || m->ws == owner->ws)
    return;
  if (m->ws_own) {
    free(m->ws->buf);
    free(m->ws);
  }
  m->ws = owner->ws;
  m->ws_own = 0;
}

/* Add a batch, each row counted w[r] times (w NULL: once). The rows of weight
 * 0 are left out of the products; the others are scaled by sqrt(w) (row and
 * norm), so that the products below give the weighted sums. */
static re_status add_batch(re_moments *m, int64_t b, const double *const *X, const int64_t *ld, const double *w) {
  if (b <= 0)
    return RE_OK;
  double bw = (double)b;
  if (w) {
    bw = 0;
    for (int64_t r = 0; r < b; r++) {
      if (!(w[r] >= 0) || w[r] != floor(w[r]) || w[r] > 1e15)
        return re_err(RE_EINVAL, "moments: weight of batch row %lld is %g (weights are counts: whole numbers >= 0)",
                      (long long)r, w[r]);
      bw += w[r];
    }
  }
  RE_TRY(ensure_workspace(m, b));
  double *s = m->state;
  double na = s[0], n = na + bw;
  /* batch means -> new mean; delta = new - old */
  for (int l = 0; l < m->L; l++) {
    int64_t d = m->dims[l];
    double *mb = m->tmp;
    memset(mb, 0, sizeof(double) * (size_t)d);
    for (int64_t r = 0; r < b; r++) {
      const double *row = X[l] + r * ld[l];
      double wr = w ? w[r] : 1.0;
      for (int64_t k = 0; k < d; k++) {
        if (!isfinite(row[k]))
          return re_err(RE_EDATA, "layer %d, batch row %lld, column %lld is %s", l, (long long)r,
                        (long long)k, isnan(row[k]) ? "NaN" : "infinite");
        if (w)
          mb[k] += wr * row[k];
        else
          mb[k] += row[k];
      }
    }
    if (bw == 0)
      continue;
    double *mu = s + m->mean_off[l], *D = m->delta + m->delta_off[l];
    for (int64_t k = 0; k < d; k++) {
      double batch_mean = mb[k] / bw;
      D[k] = bw / n * (batch_mean - mu[k]);
    }
  }
  if (bw == 0)
    return RE_OK;
  recentre(m, s);
  int64_t rows = b; /* rows given to the products */
  for (int l = 0; l < m->L; l++) {
    double *mu = s + m->mean_off[l];
    const double *D = m->delta + m->delta_off[l];
    int64_t d = m->dims[l];
    for (int64_t k = 0; k < d; k++)
      mu[k] += D[k];
    /* centre the batch on the new mean */
    double *xc = m->xc[l], *q = m->q + l * b;
    rows = 0;
    for (int64_t r = 0; r < b; r++) {
      if (w && w[r] == 0)
        continue;
      const double *row = X[l] + r * ld[l];
      double *o = xc + rows * d, acc = 0;
      for (int64_t k = 0; k < d; k++) {
        o[k] = row[k] - mu[k];
        acc += o[k] * o[k];
      }
      q[rows] = acc;
      if (w && w[r] != 1) {
        double sw = sqrt(w[r]);
        for (int64_t k = 0; k < d; k++)
          o[k] *= sw;
        q[rows] *= sw;
      }
      rows++;
    }
  }
  s[0] = n;
  for (int bk = 0; bk < m->nblocks; bk++) {
    int i = m->blk[2 * bk], j = m->blk[2 * bk + 1];
    int64_t di = m->dims[i], dj = m->dims[j];
    double *C = s + m->c_off[bk];
    if (i == j) {
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)di, (int)rows, 1.0, m->xc[i], (int)di, 1.0, C,
                  (int)di);
      for (int64_t r = 1; r < di; r++) /* mirror the upper triangle */
        for (int64_t c = 0; c < r; c++)
          C[r * di + c] = C[c * di + r];
    } else {
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)di, (int)dj, (int)rows, 1.0, m->xc[i], (int)di,
                  m->xc[j], (int)dj, 1.0, C, (int)dj);
    }
    if (m->flags & RE_MOMENTS_DEBIASED) {
      double *sqq = s + m->x_off[bk], *aqi = sqq + 1, *aqj = aqi + di;
      const double *qi = m->q + i * b, *qj = m->q + j * b;
      *sqq += cblas_ddot((int)rows, qi, 1, qj, 1);
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)rows, (int)di, 1.0, m->xc[i], (int)di, qj, 1, 1.0, aqi, 1);
      cblas_dgemv(CblasRowMajor, CblasTrans, (int)rows, (int)dj, 1.0, m->xc[j], (int)dj, qi, 1, 1.0, aqj, 1);
    }
  }
  return RE_OK;
}

re_status re_moments_add_batch(re_moments *m, int64_t b, const double *const *X, const int64_t *ld) {
  return add_batch(m, b, X, ld, NULL);
}

re_status re_moments_add_batch_weighted(re_moments *m, int64_t b, const double *const *X, const int64_t *ld,
                                        const double *w) {
  return add_batch(m, b, X, ld, w);
}

/* s <- s (+) o, states of m's layout (o modified; m's workspace used). */
static void merge_state(re_moments *m, double *s, double *o) {
  double na = s[0], nb = o[0], n = na + nb;
  if (nb == 0)
    return;
  if (na == 0) {
    memcpy(s, o, sizeof(double) * (size_t)m->len);
    return;
  }
  /* pooled mean mu = mu_a + (nb/n)(mu_b - mu_a); move a by +w, b by w - (mu_b - mu_a) */
  for (int l = 0; l < m->L; l++) {
    const double *ma = s + m->mean_off[l], *mb = o + m->mean_off[l];
    double *D = m->delta + m->delta_off[l];
    for (int64_t k = 0; k < m->dims[l]; k++)
      D[k] = nb / n * (mb[k] - ma[k]);
  }
  recentre(m, s);
  for (int l = 0; l < m->L; l++) {
    const double *ma = s + m->mean_off[l], *mb = o + m->mean_off[l];
    double *D = m->delta + m->delta_off[l];
    for (int64_t k = 0; k < m->dims[l]; k++)
      D[k] = (ma[k] + D[k]) - mb[k];
  }
  recentre(m, o);
  for (int l = 0; l < m->L; l++) {
    double *ma = s + m->mean_off[l];
    const double *mb = o + m->mean_off[l], *D = m->delta + m->delta_off[l];
    for (int64_t k = 0; k < m->dims[l]; k++)
      ma[k] = mb[k] + D[k];
  }
  int64_t first = m->L > 0 ? m->mean_off[m->L - 1] + m->dims[m->L - 1] : 1;
  for (int64_t k = first; k < m->len; k++)
    s[k] += o[k];
  s[0] = n;
}

re_status re_moments_merge(re_moments *m, const re_moments *other) {
  if (other->len != m->len || other->layout_hash != m->layout_hash)
    return re_err(RE_EINVAL, "moments: cannot merge accumulators of different layouts");
  memcpy(m->scratch, other->state, sizeof(double) * (size_t)m->len);
  merge_state(m, m->state, m->scratch);
  return RE_OK;
}

int64_t re_moments_serial_len(const re_moments *m) { return SERIAL_HEADER + m->len; }

void re_moments_serialize(const re_moments *m, double *buf) {
  buf[0] = MOMENTS_MAGIC;
  buf[1] = m->layout_hash;
  memcpy(buf + SERIAL_HEADER, m->state, sizeof(double) * (size_t)m->len);
}

static re_status check_serial(const re_moments *m, const double *buf, int64_t len) {
  if (len != SERIAL_HEADER + m->len || buf[0] != MOMENTS_MAGIC || buf[1] != m->layout_hash)
    return re_err(RE_EFORMAT, "moments: serialized state does not match this accumulator's layout "
                              "(%lld doubles, expected %lld)",
                  (long long)len, (long long)(SERIAL_HEADER + m->len));
  double n = buf[SERIAL_HEADER];
  if (!(n >= 0) || n != floor(n))
    return re_err(RE_EFORMAT, "moments: serialized state has an invalid sample count");
  return RE_OK;
}

re_status re_moments_merge_serial(re_moments *m, const double *buf, int64_t len) {
  RE_TRY(check_serial(m, buf, len));
  memcpy(m->scratch, buf + SERIAL_HEADER, sizeof(double) * (size_t)m->len);
  merge_state(m, m->state, m->scratch);
  return RE_OK;
}

re_status re_moments_merge_serial_into(re_moments *m, double *x, double *y, int64_t len) {
  RE_TRY(check_serial(m, x, len));
  RE_TRY(check_serial(m, y, len));
  merge_state(m, x + SERIAL_HEADER, y + SERIAL_HEADER); /* recentres y's co-moments in place */
  return RE_OK;
}

re_status re_moments_merge_state_into(re_moments *m, double *x, int64_t len) {
  RE_TRY(check_serial(m, x, len));
  merge_state(m, x + SERIAL_HEADER, m->state); /* recentres the state's co-moments in place */
  return RE_OK;
}

re_status re_moments_merge_serial_consume(re_moments *m, double *y, int64_t len) {
  RE_TRY(check_serial(m, y, len));
  merge_state(m, m->state, y + SERIAL_HEADER); /* recentres y's co-moments in place */
  return RE_OK;
}

re_status re_moments_deserialize(re_moments *m, const double *buf, int64_t len) {
  RE_TRY(check_serial(m, buf, len));
  memcpy(m->state, buf + SERIAL_HEADER, sizeof(double) * (size_t)m->len);
  return RE_OK;
}

double re_moments_n(const re_moments *m) { return m->state[0]; }

int re_moments_nlayers(const re_moments *m) { return m->L; }

int64_t re_moments_dim(const re_moments *m, int layer) { return m->dims[layer]; }

const double *re_moments_mean(const re_moments *m, int layer) { return m->state + m->mean_off[layer]; }

int64_t re_moments_head_len(const re_moments *m) { return m->nblocks > 0 ? m->c_off[0] : m->len; }

int re_moments_nblocks(const re_moments *m) { return m->nblocks; }

int re_moments_block_id(const re_moments *m, int i, int j) {
  return i < 0 || j < 0 || i >= m->L || j >= m->L ? -1 : m->blkindex[i * m->L + j];
}

void re_moments_block_span(const re_moments *m, int b, int64_t *off, int64_t *len) {
  *off = m->c_off[b];
  *len = block_len(m, b) +
         ((m->flags & RE_MOMENTS_DEBIASED) ? 1 + m->dims[m->blk[2 * b]] + m->dims[m->blk[2 * b + 1]] : 0);
}

void re_moments_get_span(const re_moments *m, int64_t off, int64_t len, double *out) {
  memcpy(out, m->state + off, sizeof(double) * (size_t)len);
}

void re_moments_set_span(re_moments *m, int64_t off, int64_t len, const double *in) {
  memcpy(m->state + off, in, sizeof(double) * (size_t)len);
}

double *re_moments_span_data(re_moments *m, int64_t off) { return m->state + off; }

const double *re_moments_block(const re_moments *m, int i, int j, int *transposed) {
  if (i < 0 || j < 0 || i >= m->L || j >= m->L)
    return NULL;
  int b = m->blkindex[i * m->L + j];
  if (b < 0)
    return NULL;
  if (transposed)
    *transposed = (i > j);
  return m->state + m->c_off[b];
}

re_status re_moments_debiased_terms(const re_moments *m, int i, int j, double *sqq, const double **aq_i,
                                    const double **aq_j) {
  if (!(m->flags & RE_MOMENTS_DEBIASED))
    return re_err(RE_EINVAL, "moments: accumulator was created without debiased terms");
  if (i < 0 || j < 0 || i >= m->L || j >= m->L || m->blkindex[i * m->L + j] < 0)
    return re_err(RE_EINVAL, "moments: pair (%d, %d) is not accumulated", i, j);
  int b = m->blkindex[i * m->L + j];
  const double *x = m->state + m->x_off[b];
  int lo = i < j ? i : j;
  const double *a_lo = x + 1, *a_hi = x + 1 + m->dims[lo];
  *sqq = x[0];
  *aq_i = (i == lo) ? a_lo : a_hi;
  *aq_j = (i == lo) ? a_hi : a_lo;
  return RE_OK;
}
