/* Exact cosine k-NN graphs and neighbourhood similarity (see neighbors.h).
 *
 * The exact similarity is s(i, j) = dot64(x_i, x_j) * (r_i * r_j), with dot64 the
 * float64 sum of the float32 products in one fixed order and r the inverse float64
 * norms (0 for a zero row); it is symmetric bit for bit. The float32 similarity t of
 * the grid (rows rounded to unit norm in float32, sgemm) satisfies |t - s| <= eps
 * with eps = gamma_{d+2} (1 + 2^-20) + 1e-12, gamma_m = m u / (1 - m u), u = 2^-24:
 * rounding the unit rows costs 2u + u^2, the float32 dot at most gamma_d sum |z_i z_j|
 * <= gamma_d (1 + u)^2 in any summation order (Higham, "Accuracy and Stability of
 * Numerical Algorithms", section 3.1), the float64 side is below 1e-12.
 *
 * Each row keeps its c = k + m best candidates by t. If t_c < t_k - 2 eps, every one of
 * the true k nearest has t >= s_k - eps >= t_k - 2 eps > t_c, so it is among the
 * candidates, which are then ranked by s. Otherwise (near-ties, duplicate rows) the
 * row is recomputed: every j with t(i, j) >= t_k - 2 eps (a superset of its true k
 * nearest whatever the float32 rounding) is ranked by s. */
#include "repeval/neighbors.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BLOCK 512

typedef struct cand {
  float t;
  int32_t idx;
} cand;

typedef struct exact {
  double s;
  int32_t idx;
} exact;

struct re_knn_build {
  const float *X;
  int64_t n, d, ld, block, nb;
  int k, c;
  double *inv;   /* n inverse norms, 0 for a zero row */
  cand *h;       /* n x c heaps, root (worst kept) first */
  int32_t *size; /* n */
  float *thr;    /* n: the root's t of a full heap, else -inf */
  float *zi, *zj, *S;
  int64_t zi_block, zj_block;
};

void re_knn_graph_free(re_knn_graph *g) {
  free(g->idx);
  free(g->sim);
  g->idx = NULL;
  g->sim = NULL;
}

void re_knn_build_destroy(re_knn_build **pb) {
  re_knn_build *b = *pb;
  if (!b)
    return;
  free(b->inv);
  free(b->h);
  free(b->size);
  free(b->thr);
  free(b->zi);
  free(b->zj);
  free(b->S);
  free(b);
  *pb = NULL;
}

/* float64 dot product of two float32 rows in one fixed order. */
static double dot64(const float *a, const float *b, int64_t d) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t j = 0;
  for (; j + 4 <= d; j += 4) {
    s0 += (double)a[j] * (double)b[j];
    s1 += (double)a[j + 1] * (double)b[j + 1];
    s2 += (double)a[j + 2] * (double)b[j + 2];
    s3 += (double)a[j + 3] * (double)b[j + 3];
  }
  for (; j < d; j++)
    s0 += (double)a[j] * (double)b[j];
  return (s0 + s1) + (s2 + s3);
}

static double exact_sim(const re_knn_build *b, int64_t i, int64_t j) {
  if (b->inv[i] == 0 || b->inv[j] == 0)
    return 0.0;
  return dot64(b->X + i * b->ld, b->X + j * b->ld, b->d) * (b->inv[i] * b->inv[j]);
}

re_status re_knn_build_create(const float *X, int64_t n, int64_t d, int64_t ld, int k, int64_t block,
                              re_knn_build **out) {
  re_status st = RE_OK;
  re_knn_build *b = NULL;
  *out = NULL;
  if (n < 2 || n >= INT32_MAX || d < 1 || ld < d || !X)
    return re_err(RE_EINVAL, "k-NN graph: need 2 <= n < 2^31 rows of d >= 1 features with ld >= d (got n %lld, d "
                             "%lld, ld %lld)",
                  (long long)n, (long long)d, (long long)ld);
  if (k < 1 || k > n - 1)
    return re_err(RE_EINVAL, "k-NN graph: k = %d neighbours, expected 1 <= k <= n - 1 = %lld", k, (long long)(n - 1));
  if (block < 0)
    return re_err(RE_EINVAL, "k-NN graph: block %lld < 0", (long long)block);
  RE_CHECK(re_calloc(1, sizeof *b, &b));
  b->X = X, b->n = n, b->d = d, b->ld = ld, b->k = k;
  b->block = block ? block : DEFAULT_BLOCK;
  b->block = b->block < n ? b->block : n;
  b->nb = (n + b->block - 1) / b->block;
  int64_t m = k > 8 ? k : 8;
  b->c = (int)(k + m < n - 1 ? k + m : n - 1);
  b->zi_block = b->zj_block = -1;
  RE_CHECK(re_malloc(n, sizeof(double), &b->inv));
  RE_CHECK(re_malloc(n, b->c * (int64_t)sizeof(cand), &b->h));
  RE_CHECK(re_calloc(n, sizeof(int32_t), &b->size));
  RE_CHECK(re_malloc(n, sizeof(float), &b->thr));
  RE_CHECK(re_malloc(b->block, d * (int64_t)sizeof(float), &b->zi));
  RE_CHECK(re_malloc(b->block, d * (int64_t)sizeof(float), &b->zj));
  RE_CHECK(re_malloc(b->block, b->block * (int64_t)sizeof(float), &b->S));
  for (int64_t i = 0; i < n; i++) {
    const float *x = X + i * ld;
    double ss = 0;
    for (int64_t j = 0; j < d; j++) {
      if (!isfinite(x[j])) {
        st = re_err(RE_EDATA, "k-NN graph: row %lld, column %lld is %s", (long long)i, (long long)j,
                    isnan(x[j]) ? "NaN" : "infinite");
        goto done;
      }
      ss += (double)x[j] * (double)x[j];
    }
    b->inv[i] = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
    b->thr[i] = -INFINITY;
  }
  *out = b;
  b = NULL;
done:
  re_knn_build_destroy(&b);
  return st;
}

int64_t re_knn_build_units(const re_knn_build *b) { return b->nb * (b->nb + 1) / 2; }

/* Block blk of the rows rounded to unit norm in float32, into z; its row count. */
static int64_t unit_rows(const re_knn_build *b, int64_t blk, float *z) {
  int64_t r0 = blk * b->block, nr = b->n - r0 < b->block ? b->n - r0 : b->block;
  for (int64_t r = 0; r < nr; r++) {
    const float *x = b->X + (r0 + r) * b->ld;
    double inv = b->inv[r0 + r];
    float *o = z + r * b->d;
    for (int64_t j = 0; j < b->d; j++)
      o[j] = (float)((double)x[j] * inv);
  }
  return nr;
}

static int worse(cand a, cand b) { return a.t < b.t || (a.t == b.t && a.idx > b.idx); }

/* Offer candidate x to row i's heap of capacity c (root = worst). */
static void offer(re_knn_build *b, int64_t i, cand x) {
  cand *h = b->h + i * b->c;
  int c = b->c, *sz = &b->size[i], p;
  if (*sz < c) {
    p = (*sz)++;
    while (p > 0 && worse(x, h[(p - 1) / 2])) {
      h[p] = h[(p - 1) / 2];
      p = (p - 1) / 2;
    }
    h[p] = x;
    if (*sz == c)
      b->thr[i] = h[0].t;
    return;
  }
  if (!worse(h[0], x))
    return;
  p = 0;
  for (;;) {
    int l = 2 * p + 1, r = l + 1, w = p;
    cand cw = x;
    if (l < c && worse(h[l], cw))
      w = l, cw = h[l];
    if (r < c && worse(h[r], cw))
      w = r;
    if (w == p)
      break;
    h[p] = h[w];
    p = w;
  }
  h[p] = x;
  b->thr[i] = h[0].t;
}

/* One unit: block pair (IB, JB), IB <= JB; each similarity goes to both rows. */
static void add_unit(re_knn_build *b, int64_t IB, int64_t JB) {
  int64_t B = b->block, d = b->d;
  if (b->zi_block != IB) {
    unit_rows(b, IB, b->zi);
    b->zi_block = IB;
  }
  int64_t ni = b->n - IB * B < B ? b->n - IB * B : B, nj;
  const float *zj = b->zi;
  if (JB != IB) {
    if (b->zj_block != JB) {
      unit_rows(b, JB, b->zj);
      b->zj_block = JB;
    }
    zj = b->zj;
  }
  nj = b->n - JB * B < B ? b->n - JB * B : B;
  if (JB == IB) /* a diagonal block: its upper triangle is enough */
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)ni, (int)d, 1.0f, b->zi, (int)d, 0.0f, b->S, (int)nj);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, (int)d, 1.0f, b->zi, (int)d, zj, (int)d,
                0.0f, b->S, (int)nj);
  for (int64_t i = 0; i < ni; i++) {
    int64_t gi = IB * B + i;
    const float *s = b->S + i * nj;
    for (int64_t j = JB == IB ? i + 1 : 0; j < nj; j++) {
      int64_t gj = JB * B + j;
      float t = s[j];
      if (t >= b->thr[gi])
        offer(b, gi, (cand){t, (int32_t)gj});
      if (t >= b->thr[gj])
        offer(b, gj, (cand){t, (int32_t)gi});
    }
  }
}

re_status re_knn_build_add_units(re_knn_build *b, int64_t u0, int64_t u1) {
  int64_t total = re_knn_build_units(b);
  if (u0 < 0 || u1 < u0 || u1 > total)
    return re_err(RE_EINVAL, "k-NN graph: units [%lld, %lld) outside [0, %lld)", (long long)u0, (long long)u1,
                  (long long)total);
  int64_t IB = 0, first = 0; /* units of block row IB: (IB, IB) ... (IB, nb - 1) */
  while (IB < b->nb && first + (b->nb - IB) <= u0)
    first += b->nb - IB++;
  for (int64_t u = u0; u < u1; u++) {
    int64_t JB = IB + (u - first);
    add_unit(b, IB, JB);
    if (JB == b->nb - 1)
      first += b->nb - IB++;
  }
  return RE_OK;
}

int64_t re_knn_build_packed_bytes(const re_knn_build *b, int64_t r0, int64_t r1) {
  return (r1 - r0) * (int64_t)(sizeof(int32_t) + (size_t)b->c * sizeof(cand));
}

void re_knn_build_pack(const re_knn_build *b, int64_t r0, int64_t r1, void *buf) {
  unsigned char *p = buf;
  size_t row = (size_t)b->c * sizeof(cand);
  for (int64_t i = r0; i < r1; i++) {
    memcpy(p, &b->size[i], sizeof(int32_t));
    memcpy(p + sizeof(int32_t), b->h + i * b->c, row);
    p += sizeof(int32_t) + row;
  }
}

re_status re_knn_build_merge(re_knn_build *b, int64_t r0, int64_t r1, const void *buf, int64_t bytes) {
  if (r0 < 0 || r1 < r0 || r1 > b->n || bytes != re_knn_build_packed_bytes(b, r0, r1))
    return re_err(RE_EINVAL, "k-NN graph: packed candidates of rows [%lld, %lld): %lld bytes, expected %lld",
                  (long long)r0, (long long)r1, (long long)bytes, (long long)re_knn_build_packed_bytes(b, r0, r1));
  const unsigned char *p = buf;
  size_t row = (size_t)b->c * sizeof(cand);
  for (int64_t i = r0; i < r1; i++) {
    int32_t m;
    memcpy(&m, p, sizeof m);
    if (m < 0 || m > b->c)
      return re_err(RE_EINVAL, "k-NN graph: packed row %lld holds %d candidates, at most %d", (long long)i, (int)m,
                    b->c);
    for (int32_t e = 0; e < m; e++) {
      cand x;
      memcpy(&x, p + sizeof(int32_t) + (size_t)e * sizeof(cand), sizeof x);
      if (x.idx < 0 || x.idx >= b->n || x.idx == i || !(x.t == x.t))
        return re_err(RE_EINVAL, "k-NN graph: packed row %lld has a bad candidate (%d)", (long long)i, (int)x.idx);
      if (x.t >= b->thr[i])
        offer(b, i, x);
    }
    p += sizeof(int32_t) + row;
  }
  return RE_OK;
}

static int cand_cmp(const void *pa, const void *pb) {
  const cand *a = pa, *b = pb;
  return worse(*b, *a) ? -1 : worse(*a, *b) ? 1 : 0; /* best first */
}

static int exact_worse(exact a, exact b) { return a.s < b.s || (a.s == b.s && a.idx > b.idx); }

static int exact_cmp(const void *pa, const void *pb) {
  const exact *a = pa, *b = pb;
  return exact_worse(*b, *a) ? -1 : exact_worse(*a, *b) ? 1 : 0;
}

/* Offer to a heap of capacity k of exact entries (root = worst). */
static void exact_offer(exact *h, int *sz, int k, exact x) {
  int p;
  if (*sz < k) {
    p = (*sz)++;
    while (p > 0 && exact_worse(x, h[(p - 1) / 2])) {
      h[p] = h[(p - 1) / 2];
      p = (p - 1) / 2;
    }
    h[p] = x;
    return;
  }
  if (!exact_worse(h[0], x))
    return;
  p = 0;
  for (;;) {
    int l = 2 * p + 1, r = l + 1, w = p;
    exact cw = x;
    if (l < k && exact_worse(h[l], cw))
      w = l, cw = h[l];
    if (r < k && exact_worse(h[r], cw))
      w = r;
    if (w == p)
      break;
    h[p] = h[w];
    p = w;
  }
  h[p] = x;
}

static void write_row(re_knn_graph *g, int64_t i, exact *e, int m) {
  qsort(e, (size_t)m, sizeof(exact), exact_cmp);
  for (int a = 0; a < g->k; a++) {
    g->idx[i * g->k + a] = e[a].idx;
    g->sim[i * g->k + a] = e[a].s;
  }
}

/* Rows hard[0..nh): every j with t(i, j) >= tau[i] ranked by the exact similarity. */
static re_status recompute(re_knn_build *b, const int64_t *hard, const double *tau, int64_t nh, re_knn_graph *g) {
  re_status st = RE_OK;
  int64_t B = b->block, d = b->d;
  int k = b->k;
  exact *heaps = NULL;
  int *sz = NULL;
  float *zh = NULL;
  RE_CHECK(re_malloc(B, k * (int64_t)sizeof(exact), &heaps));
  RE_CHECK(re_malloc(B, sizeof(int), &sz));
  RE_CHECK(re_malloc(B, d * (int64_t)sizeof(float), &zh));
  for (int64_t h0 = 0; h0 < nh; h0 += B) {
    int64_t nr = nh - h0 < B ? nh - h0 : B;
    for (int64_t r = 0; r < nr; r++) {
      const float *x = b->X + hard[h0 + r] * b->ld;
      for (int64_t j = 0; j < d; j++)
        zh[r * d + j] = (float)((double)x[j] * b->inv[hard[h0 + r]]);
      sz[r] = 0;
    }
    for (int64_t JB = 0; JB < b->nb; JB++) {
      int64_t nj = unit_rows(b, JB, b->zj);
      b->zj_block = JB;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nj, (int)d, 1.0f, zh, (int)d, b->zj,
                  (int)d, 0.0f, b->S, (int)nj);
      for (int64_t r = 0; r < nr; r++) {
        int64_t i = hard[h0 + r];
        for (int64_t j = 0; j < nj; j++) {
          int64_t gj = JB * B + j;
          if (gj == i || (double)b->S[r * nj + j] < tau[h0 + r])
            continue;
          exact_offer(heaps + r * k, &sz[r], k, (exact){exact_sim(b, i, gj), (int32_t)gj});
        }
      }
    }
    for (int64_t r = 0; r < nr; r++) {
      if (sz[r] < k) { /* cannot happen when the bound holds: the k nearest pass the threshold */
        st = re_err(RE_EUNDEFINED, "k-NN graph: row %lld kept %d of %d neighbours in its recomputation",
                    (long long)hard[h0 + r], sz[r], k);
        goto done;
      }
      write_row(g, hard[h0 + r], heaps + r * k, k);
    }
  }
done:
  free(heaps);
  free(sz);
  free(zh);
  return st;
}

re_status re_knn_build_finish(re_knn_build *b, re_knn_graph *g) {
  re_status st = RE_OK;
  memset(g, 0, sizeof *g);
  int64_t n = b->n, nh = 0;
  int k = b->k, c = b->c;
  /* gamma_{d+2} for float32 (u = 2^-24), with slack, plus the float64 side */
  double u = ldexp(1.0, -24), m = (double)(b->d + 2) * u;
  double eps = m / (1.0 - m) * (1.0 + ldexp(1.0, -20)) + 1e-12;
  exact *e = NULL;
  cand *row = NULL;
  int64_t *hard = NULL;
  double *tau = NULL;
  RE_CHECK(re_malloc(n, k * (int64_t)sizeof(int32_t), &g->idx));
  RE_CHECK(re_malloc(n, k * (int64_t)sizeof(double), &g->sim));
  RE_CHECK(re_malloc(c, sizeof(exact), &e));
  RE_CHECK(re_malloc(c, sizeof(cand), &row));
  RE_CHECK(re_malloc(n, sizeof(int64_t), &hard));
  RE_CHECK(re_malloc(n, sizeof(double), &tau));
  g->n = n;
  g->k = k;
  for (int64_t i = 0; i < n; i++) {
    int m_i = b->size[i];
    if (m_i < k || (m_i < c && m_i != n - 1)) {
      st = re_err(RE_EINVAL, "k-NN graph: row %lld has %d candidates: some units were not added", (long long)i, m_i);
      goto done;
    }
    memcpy(row, b->h + i * c, sizeof(cand) * (size_t)m_i);
    qsort(row, (size_t)m_i, sizeof(cand), cand_cmp);
    double tk = row[k - 1].t;
    if (m_i == c && c < n - 1 && !((double)row[c - 1].t < tk - 2 * eps)) {
      hard[nh] = i;
      tau[nh++] = tk - 2 * eps;
      continue;
    }
    /* only candidates with t >= t_k - 2 eps can be among the k nearest */
    int use = k;
    while (use < m_i && (double)row[use].t >= tk - 2 * eps)
      use++;
    for (int a = 0; a < use; a++)
      e[a] = (exact){exact_sim(b, i, row[a].idx), row[a].idx};
    write_row(g, i, e, use);
  }
  g->rechecked = nh;
  if (nh)
    RE_CHECK(recompute(b, hard, tau, nh, g));
done:
  free(e);
  free(row);
  free(hard);
  free(tau);
  if (st != RE_OK)
    re_knn_graph_free(g);
  return st;
}

re_status re_knn_graph_build(const float *X, int64_t n, int64_t d, int64_t ld, int k, re_knn_graph *g) {
  re_knn_build *b = NULL;
  memset(g, 0, sizeof *g);
  RE_TRY(re_knn_build_create(X, n, d, ld, k, 0, &b));
  re_status st = re_knn_build_add_units(b, 0, re_knn_build_units(b));
  if (st == RE_OK)
    st = re_knn_build_finish(b, g);
  re_knn_build_destroy(&b);
  return st;
}

/* ---- comparing two graphs ------------------------------------------------------- */

typedef struct nb {
  int32_t idx;
  double sim;
} nb;

static int nb_cmp(const void *pa, const void *pb) {
  const nb *a = pa, *b = pb;
  return (a->idx > b->idx) - (a->idx < b->idx);
}

/* The first k neighbours of every row, sorted by index (n x k). */
static re_status by_index(const re_knn_graph *g, int k, nb **out) {
  RE_TRY(re_malloc(g->n, k * (int64_t)sizeof(nb), out));
  for (int64_t i = 0; i < g->n; i++) {
    nb *r = *out + i * k;
    for (int a = 0; a < k; a++)
      r[a] = (nb){g->idx[i * g->k + a], g->sim[i * g->k + a]};
    qsort(r, (size_t)k, sizeof(nb), nb_cmp);
  }
  return RE_OK;
}

/* Position of j in row r (k entries sorted by index), or -1. */
static int find(const nb *r, int k, int32_t j) {
  int lo = 0, hi = k;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (r[mid].idx < j)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < k && r[lo].idx == j ? lo : -1;
}

/* Unbiased HSIC (Song et al. 2012, eq. 5) of A = M o K and B = M o L, where row i of
 * the mask M is the neighbours j of row i present in both x (values K) and y (values
 * L); x == y gives one graph's own mask. Kernels are symmetric, so (B^T)_ij = L_ij. */
static double masked_hsic(const nb *x, const nb *y, int k, int64_t n, double *colA, double *rowB) {
  double t1 = 0, sa = 0, sb = 0, t3 = 0;
  memset(colA, 0, sizeof(double) * (size_t)n);
  memset(rowB, 0, sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    const nb *xi = x + i * k, *yi = y + i * k;
    for (int a = 0; a < k; a++) {
      int b = x == y ? a : find(yi, k, xi[a].idx);
      if (b < 0)
        continue;
      int32_t j = xi[a].idx;
      double K = xi[a].sim, L = yi[b].sim;
      sa += K;
      sb += L;
      colA[j] += K;
      rowB[i] += L;
      /* (j, i) in the mask too: the pair counts in tr(A B^T) */
      if (find(x + (int64_t)j * k, k, (int32_t)i) >= 0 && (x == y || find(y + (int64_t)j * k, k, (int32_t)i) >= 0))
        t1 += K * L;
    }
  }
  for (int64_t l = 0; l < n; l++)
    t3 += colA[l] * rowB[l];
  double nn = (double)n;
  return (t1 + sa * sb / ((nn - 1) * (nn - 2)) - 2.0 / (nn - 2) * t3) / (nn * (nn - 3));
}

re_status re_knn_graph_compare(const re_knn_graph *a, const re_knn_graph *b, int k, re_knn_compare *out) {
  memset(out, 0, sizeof *out);
  if (a->n != b->n)
    return re_err(RE_ESHAPE, "k-NN graphs over %lld and %lld samples", (long long)a->n, (long long)b->n);
  if (k < 1 || k > a->k || k > b->k)
    return re_err(RE_EINVAL, "k-NN comparison at k = %d, graphs have %d and %d neighbours", k, a->k, b->k);
  re_status st = RE_OK;
  int64_t n = a->n;
  nb *sa = NULL, *sb = NULL;
  double *colA = NULL, *rowB = NULL;
  RE_CHECK(by_index(a, k, &sa));
  RE_CHECK(by_index(b, k, &sb));
  RE_CHECK(re_malloc(n, sizeof(double), &colA));
  RE_CHECK(re_malloc(n, sizeof(double), &rowB));
  double mutual = 0, jac = 0;
  int64_t cyc_ab = 0, cyc_ba = 0;
  for (int64_t i = 0; i < n; i++) {
    const nb *ai = sa + i * k, *bi = sb + i * k;
    int p = 0, q = 0, both = 0;
    while (p < k && q < k) {
      if (ai[p].idx == bi[q].idx)
        both++, p++, q++;
      else if (ai[p].idx < bi[q].idx)
        p++;
      else
        q++;
    }
    mutual += (double)both / k;
    jac += (double)both / (double)(2 * k - both);
    int hit = 0;
    for (int e = 0; e < k && !hit; e++) /* a neighbour j of i in b that has i as a neighbour in a */
      hit = find(sa + (int64_t)bi[e].idx * k, k, (int32_t)i) >= 0;
    cyc_ab += hit;
    hit = 0;
    for (int e = 0; e < k && !hit; e++)
      hit = find(sb + (int64_t)ai[e].idx * k, k, (int32_t)i) >= 0;
    cyc_ba += hit;
  }
  out->mutual = mutual / (double)n;
  out->jaccard = jac / (double)n;
  out->cycle_ab = (double)cyc_ab / (double)n;
  out->cycle_ba = (double)cyc_ba / (double)n;
  out->cknna = NAN;
  if (n < 4) {
    out->cknna_undefined = "CKNNA needs at least 4 samples";
  } else {
    double hab = masked_hsic(sa, sb, k, n, colA, rowB);
    double haa = masked_hsic(sa, sa, k, n, colA, rowB);
    double hbb = masked_hsic(sb, sb, k, n, colA, rowB);
    if (!(haa * hbb > 0) || !isfinite(hab))
      out->cknna_undefined = "a graph's masked HSIC with itself is not positive";
    else
      out->cknna = hab / sqrt(haa * hbb);
  }
done:
  free(sa);
  free(sb);
  free(colA);
  free(rowB);
  return st;
}
