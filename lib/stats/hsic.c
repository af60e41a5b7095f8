/* Minibatch HSIC accumulator (see hsic.h for the math). */
#include "repeval/hsic.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HSIC_MAGIC 1213416259.0 /* "HSIC" */
#define SERIAL_HEADER 4         /* magic, layout hash, batches (unbiased), batches (biased) */

struct re_hsic {
  int P;
  re_kernel kernel;
  double *sigma2;    /* P */
  int64_t bmax, mmax; /* mmax = bmax (bmax - 1) / 2 */
  int all_pairs;
  int npairs;
  int32_t *pairs;    /* npairs x 2 (p <= q), when !all_pairs */
  unsigned char *mask; /* P x P */
  double layout_hash;
  /* current batch */
  int64_t b;
  unsigned char *given; /* P */
  double *G;  /* P x mmax: strict upper triangles of K~ */
  double *R;  /* P x bmax: row sums of K~ */
  double *Dg; /* P x bmax: diagonals of K */
  double *F;  /* P x bmax: row sums of K (R + Dg) */
  double *T, *RR, *DD, *FF; /* P x P per-batch products */
  /* workspace for one tap */
  double *Xc; int64_t xc_cap;
  double *mu; /* d: column sums, then means, of the batch in Xc */
  double *K;  /* bmax x bmax */
  /* sums */
  double nb_u, nb_b;
  double *U, *B; /* P x P */
  /* resampling (see hsic.h): replicate sums over the npk stored pairs (slot of (p, q) in pk) */
  int nboot, ngroups, nperm, rep_biased;
  uint64_t seed;
  int64_t index;       /* the current batch's index in the data */
  int npk;
  int32_t *pk;         /* P x P -> slot, -1: not stored */
  int32_t *plist;      /* npk x 2 (p <= q) */
  double *cur;         /* npk: the current batch's HSIC of each slot (the replicates' estimator) */
  double *rep;         /* (nboot + ngroups) x (1 + npk): weighted batch count, weighted sums */
  double *nul;         /* nperm x npk: sums of the permuted HSIC (slots with p < q) */
  int64_t *perm;       /* bmax */
  int64_t *imap;       /* mmax: triangle index of the permuted pair */
  double *Gp, *Rp, *Dp, *Fp; /* permuted G (P x mmax), R, Dg, F (P x bmax) */
  double *Tn, *RRn, *DDn, *FFn; /* P x P products with the permuted side */
  double *rs, *fs;     /* P: sums of R and F of the current batch */
};

static double hash_layout(const re_hsic *h) {
  uint64_t x = 1469598103934665603ull;
#define MIX(v)                 \
  do {                         \
    x ^= (uint64_t)(v);        \
    x *= 1099511628211ull;     \
  } while (0)
  MIX(h->P);
  MIX(h->kernel);
  MIX(h->all_pairs);
  if (h->nboot || h->ngroups || h->nperm) { /* layouts without replicates keep their hash */
    MIX(h->nboot);
    MIX(h->ngroups);
    MIX(h->nperm);
    MIX(h->rep_biased);
    MIX(h->seed & 0xffffffffu);
    MIX(h->seed >> 32);
  }
  for (int k = 0; k < h->npairs; k++) {
    MIX(h->pairs[2 * k]);
    MIX(h->pairs[2 * k + 1]);
  }
#undef MIX
  return (double)(x >> 12);
}

/* Free the replicate arrays: the accumulator keeps no replicates. */
static void drop_resampling(re_hsic *h) {
  double **d[] = {&h->cur, &h->rep, &h->nul, &h->Gp, &h->Rp, &h->Dp, &h->Fp,
                  &h->Tn,  &h->RRn, &h->DDn, &h->FFn, &h->rs, &h->fs};
  for (size_t k = 0; k < sizeof d / sizeof d[0]; k++) {
    free(*d[k]);
    *d[k] = NULL;
  }
  free(h->pk);
  free(h->plist);
  free(h->perm);
  free(h->imap);
  h->pk = h->plist = NULL;
  h->perm = h->imap = NULL;
  h->nboot = h->ngroups = h->nperm = h->npk = 0;
}

/* Slots of the stored pairs and the replicate sums (see hsic.h). */
static re_status setup_resampling(re_hsic *h, const re_resampling *rs, int biased);

re_status re_hsic_set_resampling(re_hsic *h, const re_resampling *rs, int biased) {
  if (h->pk)
    return re_err(RE_EINVAL, "HSIC: resampling is set once");
  if (h->nb_b > 0 || h->b > 0)
    return re_err(RE_EINVAL, "HSIC: resampling must be set before the first batch");
  re_status st = setup_resampling(h, rs, biased);
  if (st != RE_OK)
    drop_resampling(h); /* all or nothing */
  h->layout_hash = hash_layout(h);
  return st;
}

static re_status setup_resampling(re_hsic *h, const re_resampling *rs, int biased) {
  if (rs->bootstrap < 0 || rs->jackknife < 0 || rs->permutations < 0 || rs->bootstrap > 100000 ||
      rs->jackknife > 100000 || rs->permutations > 100000)
    return re_err(RE_EINVAL, "HSIC: replicate counts must lie in 0..100000 (bootstrap %d, jackknife %d, "
                             "permutations %d)",
                  rs->bootstrap, rs->jackknife, rs->permutations);
  if (rs->jackknife == 1)
    return re_err(RE_EINVAL, "HSIC: a jackknife needs at least 2 groups");
  int P = h->P;
  int64_t PP = (int64_t)P * P;
  h->nboot = rs->bootstrap;
  h->ngroups = rs->jackknife;
  h->nperm = rs->permutations;
  h->rep_biased = biased != 0;
  h->seed = rs->seed;
  RE_TRY(re_malloc(PP, sizeof(int32_t), &h->pk));
  for (int64_t k = 0; k < PP; k++)
    h->pk[k] = -1;
  int64_t cap = h->all_pairs ? (int64_t)P * (P + 1) / 2 : h->npairs;
  if (cap > INT32_MAX / 2)
    return re_err(RE_ENOMEM, "HSIC: %lld pairs are too many for replicates", (long long)cap);
  RE_TRY(re_malloc(cap > 0 ? cap : 1, 2 * sizeof(int32_t), &h->plist));
  for (int p = 0; p < P; p++)
    for (int q = p; q < P; q++)
      if (h->mask[(int64_t)p * P + q]) {
        h->pk[(int64_t)p * P + q] = h->pk[(int64_t)q * P + p] = h->npk;
        h->plist[2 * h->npk] = p;
        h->plist[2 * h->npk + 1] = q;
        h->npk++;
      }
  int64_t nrep = (int64_t)h->nboot + h->ngroups;
  RE_TRY(re_calloc(h->npk > 0 ? h->npk : 1, sizeof(double), &h->cur));
  RE_TRY(re_calloc(nrep > 0 ? nrep : 1, (1 + (int64_t)h->npk) * (int64_t)sizeof(double), &h->rep));
  RE_TRY(re_calloc(h->nperm > 0 ? h->nperm : 1, (int64_t)h->npk * (int64_t)sizeof(double), &h->nul));
  if (h->nperm) {
    RE_TRY(re_malloc(h->bmax, sizeof(int64_t), &h->perm));
    RE_TRY(re_malloc(h->mmax > 0 ? h->mmax : 1, sizeof(int64_t), &h->imap));
    RE_TRY(re_calloc(P, (h->mmax > 0 ? h->mmax : 1) * (int64_t)sizeof(double), &h->Gp));
    RE_TRY(re_calloc(P, h->bmax * (int64_t)sizeof(double), &h->Rp));
    RE_TRY(re_calloc(P, h->bmax * (int64_t)sizeof(double), &h->Dp));
    RE_TRY(re_calloc(P, h->bmax * (int64_t)sizeof(double), &h->Fp));
    RE_TRY(re_calloc(PP, sizeof(double), &h->Tn));
    RE_TRY(re_calloc(PP, sizeof(double), &h->RRn));
    RE_TRY(re_calloc(PP, sizeof(double), &h->DDn));
    RE_TRY(re_calloc(PP, sizeof(double), &h->FFn));
    RE_TRY(re_calloc(P, sizeof(double), &h->rs));
    RE_TRY(re_calloc(P, sizeof(double), &h->fs));
  }
  return RE_OK;
}

re_status re_hsic_create(const re_hsic_config *cfg, re_hsic **out) {
  re_status st = RE_OK;
  re_hsic *h = NULL;
  *out = NULL;
  if (cfg->ntaps <= 0)
    return re_err(RE_EINVAL, "HSIC: need at least one tap");
  if (cfg->max_batch < 2)
    return re_err(RE_EINVAL, "HSIC: batch size must be at least 2, got %lld", (long long)cfg->max_batch);
  if (cfg->kernel == RE_KERNEL_RBF && !cfg->sigma2)
    return re_err(RE_EINVAL, "HSIC: the RBF kernel needs a bandwidth per tap");
  int P = cfg->ntaps;
  int64_t PP = (int64_t)P * P;
  RE_CHECK(re_calloc(1, sizeof *h, &h));
  h->P = P;
  h->kernel = cfg->kernel;
  h->bmax = cfg->max_batch;
  h->mmax = cfg->max_batch * (cfg->max_batch - 1) / 2;
  RE_CHECK(re_calloc(P, sizeof(double), &h->sigma2));
  if (cfg->kernel == RE_KERNEL_RBF)
    for (int p = 0; p < P; p++) {
      if (!(cfg->sigma2[p] > 0) || !isfinite(cfg->sigma2[p])) {
        st = re_err(RE_EINVAL, "HSIC: RBF bandwidth of tap %d is %g (must be positive)", p, cfg->sigma2[p]);
        goto done;
      }
      h->sigma2[p] = cfg->sigma2[p];
    }
  RE_CHECK(re_calloc(PP, 1, &h->mask));
  h->all_pairs = (cfg->npairs == 0);
  if (h->all_pairs) {
    memset(h->mask, 1, (size_t)PP);
  } else {
    RE_CHECK(re_malloc(3 * (int64_t)cfg->npairs, 2 * sizeof(int32_t), &h->pairs)); /* pair + 2 self terms */
    for (int k = 0; k < cfg->npairs; k++) {
      int32_t p = cfg->pairs[2 * k], q = cfg->pairs[2 * k + 1];
      if (p < 0 || q < 0 || p >= P || q >= P) {
        st = re_err(RE_EINVAL, "HSIC: pair %d = (%d, %d) names a tap outside 0..%d", k, p, q, P - 1);
        goto done;
      }
      int32_t lo = p < q ? p : q, hi = p < q ? q : p;
      /* a pair needs both self terms for its CKA */
      int32_t want[3][2] = {{lo, hi}, {lo, lo}, {hi, hi}};
      for (int w = 0; w < 3; w++) {
        int32_t a = want[w][0], c = want[w][1];
        if (h->mask[(int64_t)a * P + c])
          continue;
        h->mask[(int64_t)a * P + c] = h->mask[(int64_t)c * P + a] = 1;
        h->pairs[2 * h->npairs] = a;
        h->pairs[2 * h->npairs + 1] = c;
        h->npairs++;
      }
    }
  }
  RE_CHECK(re_calloc(P, 1, &h->given));
  RE_CHECK(re_calloc(P, h->mmax * (int64_t)sizeof(double), &h->G));
  RE_CHECK(re_calloc(P, h->bmax * (int64_t)sizeof(double), &h->R));
  RE_CHECK(re_calloc(P, h->bmax * (int64_t)sizeof(double), &h->Dg));
  RE_CHECK(re_calloc(P, h->bmax * (int64_t)sizeof(double), &h->F));
  RE_CHECK(re_calloc(PP, sizeof(double), &h->T));
  RE_CHECK(re_calloc(PP, sizeof(double), &h->RR));
  RE_CHECK(re_calloc(PP, sizeof(double), &h->DD));
  RE_CHECK(re_calloc(PP, sizeof(double), &h->FF));
  RE_CHECK(re_calloc(PP, sizeof(double), &h->U));
  RE_CHECK(re_calloc(PP, sizeof(double), &h->B));
  RE_CHECK(re_calloc(h->bmax, h->bmax * (int64_t)sizeof(double), &h->K));
  h->layout_hash = hash_layout(h);
  *out = h;
  h = NULL;
done:
  re_hsic_destroy(&h);
  return st;
}

void re_hsic_destroy(re_hsic **ph) {
  re_hsic *h = *ph;
  if (!h)
    return;
  free(h->sigma2);
  free(h->pairs);
  free(h->mask);
  free(h->given);
  free(h->G);
  free(h->R);
  free(h->Dg);
  free(h->F);
  free(h->T);
  free(h->RR);
  free(h->DD);
  free(h->FF);
  free(h->Xc);
  free(h->mu);
  free(h->K);
  free(h->U);
  free(h->B);
  drop_resampling(h);
  free(h);
  *ph = NULL;
}

re_status re_hsic_begin_batch_at(re_hsic *h, int64_t b, int64_t index) {
  if (b < 2 || b > h->bmax)
    return re_err(RE_EINVAL, "HSIC: batch of %lld samples (allowed 2..%lld)", (long long)b, (long long)h->bmax);
  if (index < 0)
    return re_err(RE_EINVAL, "HSIC: batch index %lld is negative", (long long)index);
  h->b = b;
  h->index = index;
  memset(h->given, 0, (size_t)h->P);
  return RE_OK;
}

re_status re_hsic_begin_batch(re_hsic *h, int64_t b) { return re_hsic_begin_batch_at(h, b, (int64_t)h->nb_b); }

/* Centre the batch (b x d, float64 in h->Xc, column sums in h->mu) and fill tap
 * p's Gram summaries. Row-major passes only: walking the columns of a b x d
 * matrix with stride d misses the cache on every element once d is large. */
static void gram_summaries(re_hsic *h, int p, int64_t d) {
  int64_t b = h->b;
  double *Xc = h->Xc, *K = h->K, *mu = h->mu;
  for (int64_t k = 0; k < d; k++)
    mu[k] /= (double)b;
  for (int64_t r = 0; r < b; r++) {
    double *row = Xc + r * d;
    for (int64_t k = 0; k < d; k++)
      row[k] -= mu[k];
  }
  /* K = Xc Xc^T, upper triangle (row-major, leading dimension b) */
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)b, (int)d, 1.0, Xc, (int)d, 0.0, K, (int)b);
  if (h->kernel == RE_KERNEL_RBF) {
    double inv = -1.0 / (2.0 * h->sigma2[p]);
    for (int64_t i = 0; i < b; i++)
      for (int64_t j = i + 1; j < b; j++) {
        double dist = K[i * b + i] + K[j * b + j] - 2 * K[i * b + j];
        K[i * b + j] = exp((dist > 0 ? dist : 0.0) * inv);
      }
    for (int64_t i = 0; i < b; i++)
      K[i * b + i] = 1.0;
  }
  double *g = h->G + (int64_t)p * h->mmax, *r = h->R + (int64_t)p * h->bmax, *dg = h->Dg + (int64_t)p * h->bmax,
         *f = h->F + (int64_t)p * h->bmax;
  memset(r, 0, sizeof(double) * (size_t)b);
  int64_t off = 0;
  for (int64_t i = 0; i < b; i++) {
    const double *row = K + i * b;
    int64_t len = b - i - 1;
    memcpy(g + off, row + i + 1, sizeof(double) * (size_t)len);
    off += len;
    double s = 0;
    for (int64_t j = i + 1; j < b; j++) {
      s += row[j];
      r[j] += row[j];
    }
    r[i] += s;
    dg[i] = row[i];
  }
  for (int64_t i = 0; i < b; i++)
    f[i] = r[i] + dg[i];
}

static re_status ensure_xc(re_hsic *h, int64_t d) {
  int64_t need = h->bmax * d;
  if (need <= h->xc_cap)
    return RE_OK;
  free(h->Xc);
  free(h->mu);
  h->Xc = h->mu = NULL;
  h->xc_cap = 0;
  RE_TRY(re_malloc(need, sizeof(double), &h->Xc));
  RE_TRY(re_malloc(d, sizeof(double), &h->mu));
  h->xc_cap = need;
  return RE_OK;
}

static re_status check_tap(re_hsic *h, int p, int64_t d, int64_t ld) {
  if (h->b == 0)
    return re_err(RE_EINVAL, "HSIC: add_tap before begin_batch");
  if (p < 0 || p >= h->P)
    return re_err(RE_EINVAL, "HSIC: tap %d outside 0..%d", p, h->P - 1);
  if (d <= 0 || ld < d)
    return re_err(RE_EINVAL, "HSIC: tap %d has width %lld (leading dimension %lld)", p, (long long)d,
                  (long long)ld);
  return ensure_xc(h, d);
}

/* The first non-finite value of a b x d batch (row-major, leading dimension ld), as an error. */
#define FIND_NONFINITE(T)                                                                                        \
  static re_status nonfinite_##T(int p, const T *X, int64_t b, int64_t d, int64_t ld) {                       \
    for (int64_t r = 0; r < b; r++)                                                                             \
      for (int64_t k = 0; k < d; k++)                                                                           \
        if (!isfinite(X[r * ld + k]))                                                                           \
          return re_err(RE_EDATA, "tap %d, batch row %lld, column %lld is %s", p, (long long)r, (long long)k,   \
                        isnan(X[r * ld + k]) ? "NaN" : "infinite");                                             \
    return RE_OK;                                                                                               \
  }
FIND_NONFINITE(float)
FIND_NONFINITE(double)
#undef FIND_NONFINITE

re_status re_hsic_add_tap_f32(re_hsic *h, int p, const float *X, int64_t d, int64_t ld) {
  RE_TRY(check_tap(h, p, d, ld));
  double *mu = h->mu;
  memset(mu, 0, sizeof(double) * (size_t)d);
  for (int64_t r = 0; r < h->b; r++) { /* convert and sum columns in one vectorisable pass */
    const float *src = X + r * ld;
    double *dst = h->Xc + r * d;
    for (int64_t k = 0; k < d; k++) {
      dst[k] = src[k];
      mu[k] += src[k];
    }
  }
  /* a column sum of finite floats is finite in double (|sum| <= b * FLT_MAX), so a
   * non-finite sum is exactly a column holding NaN or Inf: only then look for it */
  for (int64_t k = 0; k < d; k++)
    if (!isfinite(mu[k]))
      return nonfinite_float(p, X, h->b, d, ld);
  gram_summaries(h, p, d);
  h->given[p] = 1;
  return RE_OK;
}

re_status re_hsic_add_tap_f64(re_hsic *h, int p, const double *X, int64_t d, int64_t ld) {
  RE_TRY(check_tap(h, p, d, ld));
  RE_TRY(nonfinite_double(p, X, h->b, d, ld)); /* sums of finite doubles can overflow: check each value */
  double *mu = h->mu;
  memset(mu, 0, sizeof(double) * (size_t)d);
  for (int64_t r = 0; r < h->b; r++) {
    const double *src = X + r * ld;
    double *dst = h->Xc + r * d;
    for (int64_t k = 0; k < d; k++) {
      dst[k] = src[k];
      mu[k] += src[k];
    }
  }
  gram_summaries(h, p, d);
  h->given[p] = 1;
  return RE_OK;
}

static double dot(const double *a, const double *b, int64_t n) {
  return cblas_ddot((int)n, a, 1, b, 1);
}

/* Fold pair (p, q) of the current batch into the sums. */
static void accumulate_pair(re_hsic *h, int p, int q, int unbiased_ok) {
  int P = h->P;
  double b = (double)h->b;
  int64_t pq = (int64_t)p * P + q, qp = (int64_t)q * P + p;
  double t = 2 * h->T[pq];
  double sp = 0, sq = 0, fp = 0, fq = 0;
  const double *rp = h->R + (int64_t)p * h->bmax, *rq = h->R + (int64_t)q * h->bmax;
  const double *Fp = h->F + (int64_t)p * h->bmax, *Fq = h->F + (int64_t)q * h->bmax;
  for (int64_t i = 0; i < h->b; i++) {
    sp += rp[i];
    sq += rq[i];
    fp += Fp[i];
    fq += Fq[i];
  }
  double u = 0;
  if (unbiased_ok) {
    u = (t + sp * sq / ((b - 1) * (b - 2)) - 2.0 / (b - 2) * h->RR[pq]) / (b * (b - 3));
    h->U[pq] += u;
    if (pq != qp)
      h->U[qp] += u;
  }
  double trkl = t + h->DD[pq];
  double bi = (trkl - 2.0 / b * h->FF[pq] + fp * fq / (b * b)) / ((b - 1) * (b - 1));
  h->B[pq] += bi;
  if (pq != qp)
    h->B[qp] += bi;
  if (h->pk)
    h->cur[h->pk[pq]] = h->rep_biased ? bi : u;
}

/* Offset of entry (i, j), i < j, in a batch's strict upper triangle (row by row). */
static int64_t tri_index(int64_t b, int64_t i, int64_t j) { return i * (2 * b - i - 1) / 2 + (j - i - 1); }

/* Permutation m of the current batch: every tap's Gram summaries with its rows
 * permuted (Gp, Rp, Dp, Fp), then the products of each pair (p, q), p < q, with q
 * permuted, folded into the null sums. */
static void accumulate_null(re_hsic *h, int m) {
  int P = h->P;
  int64_t b = h->b, mm = b * (b - 1) / 2;
  double bd = (double)b;
  re_permutation(h->seed, RE_STREAM_PERMUTATION + (uint64_t)m, (uint64_t)h->index, b, h->perm);
  const int64_t *pi = h->perm;
  for (int64_t i = 0; i < b; i++)
    for (int64_t j = i + 1; j < b; j++) {
      int64_t a = pi[i], c = pi[j];
      h->imap[tri_index(b, i, j)] = a < c ? tri_index(b, a, c) : tri_index(b, c, a);
    }
  for (int p = 0; p < P; p++) {
    const double *g = h->G + (int64_t)p * h->mmax;
    double *gp = h->Gp + (int64_t)p * h->mmax;
    for (int64_t t = 0; t < mm; t++)
      gp[t] = g[h->imap[t]];
    int64_t o = (int64_t)p * h->bmax;
    for (int64_t i = 0; i < b; i++) {
      h->Rp[o + i] = h->R[o + pi[i]];
      h->Dp[o + i] = h->Dg[o + pi[i]];
      h->Fp[o + i] = h->F[o + pi[i]];
    }
  }
  int biased = h->rep_biased;
  if (h->all_pairs) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, (int)mm, 1.0, h->G, (int)h->mmax, h->Gp,
                (int)h->mmax, 0.0, h->Tn, P);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, (int)b, 1.0, h->R, (int)h->bmax, h->Rp, (int)h->bmax,
                0.0, h->RRn, P);
    if (biased) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, (int)b, 1.0, h->Dg, (int)h->bmax, h->Dp,
                  (int)h->bmax, 0.0, h->DDn, P);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, P, P, (int)b, 1.0, h->F, (int)h->bmax, h->Fp,
                  (int)h->bmax, 0.0, h->FFn, P);
    }
  }
  double *nul = h->nul + (int64_t)m * h->npk;
  for (int k = 0; k < h->npk; k++) {
    int p = h->plist[2 * k], q = h->plist[2 * k + 1];
    if (p == q)
      continue;
    int64_t pq = (int64_t)p * P + q;
    if (!h->all_pairs) {
      h->Tn[pq] = dot(h->G + (int64_t)p * h->mmax, h->Gp + (int64_t)q * h->mmax, mm);
      h->RRn[pq] = dot(h->R + (int64_t)p * h->bmax, h->Rp + (int64_t)q * h->bmax, b);
      if (biased) {
        h->DDn[pq] = dot(h->Dg + (int64_t)p * h->bmax, h->Dp + (int64_t)q * h->bmax, b);
        h->FFn[pq] = dot(h->F + (int64_t)p * h->bmax, h->Fp + (int64_t)q * h->bmax, b);
      }
    }
    double t = 2 * h->Tn[pq], v;
    if (biased)
      v = (t + h->DDn[pq] - 2.0 / bd * h->FFn[pq] + h->fs[p] * h->fs[q] / (bd * bd)) / ((bd - 1) * (bd - 1));
    else
      v = (t + h->rs[p] * h->rs[q] / ((bd - 1) * (bd - 2)) - 2.0 / (bd - 2) * h->RRn[pq]) / (bd * (bd - 3));
    nul[k] += v;
  }
}

/* The current batch into the replicate sums: bootstrap weights, its jackknife group,
 * the permutations. */
static void accumulate_replicates(re_hsic *h) {
  int64_t stride = 1 + (int64_t)h->npk;
  for (int r = 0; r < h->nboot; r++) {
    int w = re_poisson1(h->seed, RE_STREAM_BOOTSTRAP + (uint64_t)r, (uint64_t)h->index);
    if (!w)
      continue;
    double *row = h->rep + r * stride;
    row[0] += w;
    for (int k = 0; k < h->npk; k++)
      row[1 + k] += w * h->cur[k];
  }
  if (h->ngroups) {
    double *row = h->rep + (h->nboot + h->index % h->ngroups) * stride;
    row[0] += 1;
    for (int k = 0; k < h->npk; k++)
      row[1 + k] += h->cur[k];
  }
  if (h->nperm) {
    int64_t b = h->b;
    for (int p = 0; p < h->P; p++) {
      const double *r = h->R + (int64_t)p * h->bmax, *f = h->F + (int64_t)p * h->bmax;
      double sr = 0, sf = 0;
      for (int64_t i = 0; i < b; i++) {
        sr += r[i];
        sf += f[i];
      }
      h->rs[p] = sr;
      h->fs[p] = sf;
    }
    for (int m = 0; m < h->nperm; m++)
      accumulate_null(h, m);
  }
}

re_status re_hsic_end_batch(re_hsic *h) {
  if (h->b == 0)
    return re_err(RE_EINVAL, "HSIC: end_batch before begin_batch");
  for (int p = 0; p < h->P; p++)
    if (!h->given[p])
      return re_err(RE_EINVAL, "HSIC: tap %d was not given for this batch", p);
  int P = h->P;
  int64_t b = h->b, m = b * (b - 1) / 2;
  int unbiased_ok = b >= 4;
  if (h->all_pairs) {
    /* the two big products: G G^T (P x m) and the row-sum products (P x b) */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, (int)m, 1.0, h->G, (int)h->mmax, 0.0, h->T, P);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, (int)b, 1.0, h->R, (int)h->bmax, 0.0, h->RR, P);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, (int)b, 1.0, h->Dg, (int)h->bmax, 0.0, h->DD, P);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, (int)b, 1.0, h->F, (int)h->bmax, 0.0, h->FF, P);
    for (int p = 0; p < P; p++)
      for (int q = p; q < P; q++)
        accumulate_pair(h, p, q, unbiased_ok);
  } else {
    for (int k = 0; k < h->npairs; k++) {
      int p = h->pairs[2 * k], q = h->pairs[2 * k + 1];
      int64_t pq = (int64_t)p * P + q;
      h->T[pq] = dot(h->G + (int64_t)p * h->mmax, h->G + (int64_t)q * h->mmax, m);
      h->RR[pq] = dot(h->R + (int64_t)p * h->bmax, h->R + (int64_t)q * h->bmax, b);
      h->DD[pq] = dot(h->Dg + (int64_t)p * h->bmax, h->Dg + (int64_t)q * h->bmax, b);
      h->FF[pq] = dot(h->F + (int64_t)p * h->bmax, h->F + (int64_t)q * h->bmax, b);
      accumulate_pair(h, p, q, unbiased_ok);
    }
  }
  if (h->pk && (unbiased_ok || h->rep_biased))
    accumulate_replicates(h);
  if (unbiased_ok)
    h->nb_u += 1;
  h->nb_b += 1;
  h->b = 0;
  return RE_OK;
}

void re_hsic_reset(re_hsic *h) {
  int64_t PP = (int64_t)h->P * h->P;
  memset(h->U, 0, sizeof(double) * (size_t)PP);
  memset(h->B, 0, sizeof(double) * (size_t)PP);
  if (h->pk) {
    memset(h->rep, 0, sizeof(double) * (size_t)(((int64_t)h->nboot + h->ngroups) * (1 + (int64_t)h->npk)));
    memset(h->nul, 0, sizeof(double) * (size_t)((int64_t)h->nperm * h->npk));
  }
  h->nb_u = h->nb_b = 0;
  h->b = 0;
}

int64_t re_hsic_batches(const re_hsic *h) { return (int64_t)h->nb_u; }

int64_t re_hsic_batches_biased(const re_hsic *h) { return (int64_t)h->nb_b; }

int re_hsic_ntaps(const re_hsic *h) { return h->P; }

int re_hsic_has_pair(const re_hsic *h, int p, int q) {
  if (p < 0 || q < 0 || p >= h->P || q >= h->P)
    return 0;
  return h->mask[(int64_t)p * h->P + q];
}

double re_hsic_mean(const re_hsic *h, int p, int q, int unbiased) {
  if (!re_hsic_has_pair(h, p, q))
    return NAN;
  double nb = unbiased ? h->nb_u : h->nb_b;
  if (nb == 0)
    return NAN;
  return (unbiased ? h->U : h->B)[(int64_t)p * h->P + q] / nb;
}

re_status re_hsic_cka(const re_hsic *h, int p, int q, int unbiased, re_cka_result *out) {
  memset(out, 0, sizeof *out);
  if (!re_hsic_has_pair(h, p, q))
    return re_err(RE_EINVAL, "HSIC: pair (%d, %d) was not accumulated", p, q);
  out->hsic_xy = re_hsic_mean(h, p, q, unbiased);
  out->hsic_xx = re_hsic_mean(h, p, p, unbiased);
  out->hsic_yy = re_hsic_mean(h, q, q, unbiased);
  out->value = NAN;
  if ((unbiased ? h->nb_u : h->nb_b) == 0) {
    out->reason = unbiased ? "no batch of at least 4 samples was accumulated" : "no batch was accumulated";
    return RE_OK;
  }
  if (!(out->hsic_xx > 0) || !(out->hsic_yy > 0)) {
    out->reason = "HSIC of a tap with itself is not positive (constant features)";
    return RE_OK;
  }
  out->defined = 1;
  out->value = out->hsic_xy / sqrt(out->hsic_xx * out->hsic_yy);
  return RE_OK;
}

/* Doubles of the replicate sums: bootstrap and jackknife rows, then the null sums. */
static int64_t rep_len(const re_hsic *h) {
  if (!h->pk)
    return 0;
  return ((int64_t)h->nboot + h->ngroups) * (1 + (int64_t)h->npk) + (int64_t)h->nperm * h->npk;
}

int64_t re_hsic_serial_len(const re_hsic *h) { return SERIAL_HEADER + 2 * (int64_t)h->P * h->P + rep_len(h); }

void re_hsic_serialize(const re_hsic *h, double *buf) {
  int64_t PP = (int64_t)h->P * h->P;
  buf[0] = HSIC_MAGIC;
  buf[1] = h->layout_hash;
  buf[2] = h->nb_u;
  buf[3] = h->nb_b;
  memcpy(buf + SERIAL_HEADER, h->U, sizeof(double) * (size_t)PP);
  memcpy(buf + SERIAL_HEADER + PP, h->B, sizeof(double) * (size_t)PP);
  if (h->pk) {
    int64_t nr = ((int64_t)h->nboot + h->ngroups) * (1 + (int64_t)h->npk);
    memcpy(buf + SERIAL_HEADER + 2 * PP, h->rep, sizeof(double) * (size_t)nr);
    memcpy(buf + SERIAL_HEADER + 2 * PP + nr, h->nul, sizeof(double) * (size_t)((int64_t)h->nperm * h->npk));
  }
}

static re_status check_serial(const re_hsic *h, const double *buf, int64_t len) {
  if (len != re_hsic_serial_len(h) || buf[0] != HSIC_MAGIC || buf[1] != h->layout_hash)
    return re_err(RE_EFORMAT, "HSIC: serialized state does not match this accumulator's layout "
                              "(%lld doubles, expected %lld)",
                  (long long)len, (long long)re_hsic_serial_len(h));
  if (!(buf[2] >= 0) || !(buf[3] >= 0) || buf[2] != floor(buf[2]) || buf[3] != floor(buf[3]))
    return re_err(RE_EFORMAT, "HSIC: serialized state has an invalid batch count");
  const double *rep = buf + SERIAL_HEADER + 2 * (int64_t)h->P * h->P;
  for (int r = 0; h->pk && r < h->nboot + h->ngroups; r++) {
    double c = rep[(int64_t)r * (1 + h->npk)];
    if (!(c >= 0) || c != floor(c))
      return re_err(RE_EFORMAT, "HSIC: serialized state has an invalid batch count in replicate %d", r);
  }
  return RE_OK;
}

re_status re_hsic_merge_serial(re_hsic *h, const double *buf, int64_t len) {
  RE_TRY(check_serial(h, buf, len));
  int64_t PP = (int64_t)h->P * h->P;
  h->nb_u += buf[2];
  h->nb_b += buf[3];
  for (int64_t k = 0; k < PP; k++) {
    h->U[k] += buf[SERIAL_HEADER + k];
    h->B[k] += buf[SERIAL_HEADER + PP + k];
  }
  if (h->pk) {
    int64_t nr = ((int64_t)h->nboot + h->ngroups) * (1 + (int64_t)h->npk), nn = (int64_t)h->nperm * h->npk;
    const double *src = buf + SERIAL_HEADER + 2 * PP;
    for (int64_t k = 0; k < nr; k++)
      h->rep[k] += src[k];
    for (int64_t k = 0; k < nn; k++)
      h->nul[k] += src[nr + k];
  }
  return RE_OK;
}

re_status re_hsic_deserialize(re_hsic *h, const double *buf, int64_t len) {
  RE_TRY(check_serial(h, buf, len));
  int64_t PP = (int64_t)h->P * h->P;
  h->nb_u = buf[2];
  h->nb_b = buf[3];
  memcpy(h->U, buf + SERIAL_HEADER, sizeof(double) * (size_t)PP);
  memcpy(h->B, buf + SERIAL_HEADER + PP, sizeof(double) * (size_t)PP);
  if (h->pk) {
    int64_t nr = ((int64_t)h->nboot + h->ngroups) * (1 + (int64_t)h->npk);
    memcpy(h->rep, buf + SERIAL_HEADER + 2 * PP, sizeof(double) * (size_t)nr);
    memcpy(h->nul, buf + SERIAL_HEADER + 2 * PP + nr, sizeof(double) * (size_t)((int64_t)h->nperm * h->npk));
  }
  return RE_OK;
}

/* CKA from three sums (the count cancels); NAN unless both self terms are positive. */
static double cka_of(double xy, double xx, double yy) {
  if (!(xx > 0) || !(yy > 0))
    return NAN;
  return xy / sqrt(xx * yy);
}

re_status re_hsic_cka_replicates(const re_hsic *h, int p, int q, re_replicate_kind kind, double *out, int *n) {
  *n = 0;
  if (!re_hsic_has_pair(h, p, q))
    return re_err(RE_EINVAL, "HSIC: pair (%d, %d) was not accumulated", p, q);
  int count = kind == RE_REP_BOOTSTRAP ? h->nboot : kind == RE_REP_JACKKNIFE ? h->ngroups : h->nperm;
  if (!h->pk || count == 0)
    return re_err(RE_EINVAL, "HSIC: no %s replicates were kept",
                  kind == RE_REP_BOOTSTRAP ? "bootstrap" : kind == RE_REP_JACKKNIFE ? "jackknife" : "permutation");
  if (kind == RE_REP_NULL && p == q)
    return re_err(RE_EINVAL, "HSIC: the permutation null needs two different taps, got (%d, %d)", p, q);
  int P = h->P;
  int64_t stride = 1 + (int64_t)h->npk;
  int kpq = h->pk[(int64_t)p * P + q], kpp = h->pk[(int64_t)p * P + p], kqq = h->pk[(int64_t)q * P + q];
  const double *S = h->rep_biased ? h->B : h->U;
  double nb = h->rep_biased ? h->nb_b : h->nb_u;
  double Spq = S[(int64_t)p * P + q], Spp = S[(int64_t)p * P + p], Sqq = S[(int64_t)q * P + q];
  for (int r = 0; r < count; r++) {
    double v = NAN;
    if (kind == RE_REP_BOOTSTRAP) {
      const double *row = h->rep + r * stride;
      if (row[0] > 0)
        v = cka_of(row[1 + kpq], row[1 + kpp], row[1 + kqq]);
    } else if (kind == RE_REP_JACKKNIFE) {
      const double *row = h->rep + (h->nboot + r) * stride;
      if (row[0] > 0 && nb - row[0] > 0)
        v = cka_of(Spq - row[1 + kpq], Spp - row[1 + kpp], Sqq - row[1 + kqq]);
    } else if (nb > 0) {
      /* the self terms do not change when a tap's rows are permuted */
      v = cka_of(h->nul[(int64_t)r * h->npk + kpq], Spp, Sqq);
    }
    out[r] = v;
  }
  *n = count;
  return RE_OK;
}

re_status re_hsic_cka_uncertainty(const re_hsic *h, int p, int q, re_replicate_kind method,
                                  re_interval_kind interval, double level, re_uncertainty *out) {
  re_uncertainty_clear(out);
  re_cka_result est;
  RE_TRY(re_hsic_cka(h, p, q, !h->rep_biased, &est));
  double value = est.defined ? est.value : NAN;
  int most = h->nboot > h->ngroups ? h->nboot : h->ngroups;
  most = most > h->nperm ? most : h->nperm;
  double *v = NULL;
  re_status st = RE_OK;
  int n = 0;
  RE_TRY(re_malloc(most > 0 ? most : 1, sizeof(double), &v));
  if (method == RE_REP_BOOTSTRAP && h->nboot) {
    RE_CHECK(re_hsic_cka_replicates(h, p, q, RE_REP_BOOTSTRAP, v, &n));
    RE_CHECK(re_uncertainty_bootstrap(out, v, n, value, level, interval));
  } else if (method == RE_REP_JACKKNIFE && h->ngroups) {
    RE_CHECK(re_hsic_cka_replicates(h, p, q, RE_REP_JACKKNIFE, v, &n));
    RE_CHECK(re_uncertainty_jackknife(out, v, n, value, level));
  } else if (method != RE_REP_NULL) {
    st = re_err(RE_EINVAL, "HSIC: no %s replicates were kept", method == RE_REP_BOOTSTRAP ? "bootstrap" : "jackknife");
    goto done;
  }
  if (h->nperm && p != q) {
    RE_CHECK(re_hsic_cka_replicates(h, p, q, RE_REP_NULL, v, &n));
    RE_CHECK(re_uncertainty_null(out, v, n, value, 0));
  }
done:
  free(v);
  return st;
}

/* The bandwidth from float32 (Xf) or float64 (Xd) samples, in float64. */
static re_status rbf_sigma2(const float *Xf, const double *Xd, int64_t n, int64_t d, int64_t ld, double threshold,
                            double *sigma2) {
  re_status st = RE_OK;
  double *x = NULL, *K = NULL;
  if (n < 2)
    return re_err(RE_EINVAL, "RBF bandwidth needs at least 2 samples");
  if (!(threshold > 0))
    return re_err(RE_EINVAL, "RBF threshold must be positive, got %g", threshold);
  RE_CHECK(re_malloc(n, d * (int64_t)sizeof(double), &x));
  RE_CHECK(re_malloc(n, n * (int64_t)sizeof(double), &K));
  for (int64_t r = 0; r < n; r++)
    for (int64_t k = 0; k < d; k++) {
      x[r * d + k] = Xf ? Xf[r * ld + k] : Xd[r * ld + k];
      if (!isfinite(x[r * d + k])) {
        st = re_err(RE_EDATA, "row %lld, column %lld is not finite", (long long)r, (long long)k);
        goto done;
      }
    }
  RE_CHECK(re_gram_linear(x, n, d, d, K));
  for (int64_t i = 0; i < n; i++)
    x[i] = K[i * n + i]; /* reuse x for the squared norms (n <= n * d) */
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) {
      double dist = i == j ? 0.0 : x[i] + x[j] - 2 * K[i * n + j];
      K[i * n + j] = dist > 0 ? dist : 0.0;
    }
  double med = re_median_inplace(K, n * n);
  if (!(med > 0)) {
    st = re_err(RE_EUNDEFINED, "RBF bandwidth undefined: the median squared distance is zero");
    goto done;
  }
  *sigma2 = threshold * threshold * med;
done:
  free(x);
  free(K);
  return st;
}

re_status re_rbf_sigma2_f32(const float *X, int64_t n, int64_t d, int64_t ld, double threshold, double *sigma2) {
  return rbf_sigma2(X, NULL, n, d, ld, threshold, sigma2);
}

re_status re_rbf_sigma2_f64(const double *X, int64_t n, int64_t d, int64_t ld, double threshold, double *sigma2) {
  return rbf_sigma2(NULL, X, n, d, ld, threshold, sigma2);
}
