/* k-NN probe with temperature-weighted votes (see probe.h): weighted k-NN of Wu et al.
 * (2018, "Unsupervised feature learning via non-parametric instance discrimination"),
 * the evaluation protocol of DINO (Caron et al. 2021) with k = 20, T = 0.07.
 *
 * Similarities of a block of test rows against a chunk of training rows come from one
 * dgemm; each test row keeps its k best neighbours in a bounded heap whose root is
 * the worst kept one, "worse" meaning lower similarity or, at equal similarity, the
 * higher training index. The votes are added in the order best-first. */
#include "repeval/probe.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TRAIN_CHUNK 4096 /* training rows per similarity GEMM */

struct re_knn {
  int64_t n, d;
  int32_t K;
  re_knn_options opt;
  int k;      /* min(k, n) */
  double *X;  /* n x d, rows of unit norm (or zero) */
  int32_t *y; /* n */
};

typedef struct nb_entry {
  double sim;
  int64_t idx;
} nb_entry;

re_knn_options re_knn_defaults(void) {
  re_knn_options o = {20, 0.07, 256};
  return o;
}

void re_knn_destroy(re_knn **pk) {
  re_knn *k = *pk;
  if (!k)
    return;
  free(k->X);
  free(k->y);
  free(k);
  *pk = NULL;
}

/* Copy row r of rows into z (d), divided by its L2 norm (computed in float64). */
static re_status normalised_row(const re_probe_rows *rows, int64_t r, double *z) {
  const float *x = rows->X + r * rows->ld;
  double ss = 0;
  for (int64_t j = 0; j < rows->d; j++) {
    if (!isfinite(x[j]))
      return re_err(RE_EDATA, "%s: row %lld, column %lld is %s", rows->name ? rows->name : "rows", (long long)r,
                    (long long)j, isnan(x[j]) ? "NaN" : "infinite");
    ss += (double)x[j] * x[j];
  }
  double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
  for (int64_t j = 0; j < rows->d; j++)
    z[j] = x[j] * inv;
  return RE_OK;
}

static re_status check_input(const re_probe_rows *rows, int64_t d, int labels, int32_t K) {
  const char *name = rows->name ? rows->name : "rows";
  if (rows->d != d)
    return re_err(RE_ESHAPE, "%s: %lld features, expected %lld", name, (long long)rows->d, (long long)d);
  if (rows->n > 0 && (!rows->X || rows->ld < rows->d))
    return re_err(RE_EINVAL, "%s: no data or leading dimension %lld < %lld", name, (long long)rows->ld,
                  (long long)rows->d);
  if (labels)
    RE_TRY(re_probe_check_labels(rows, K));
  return RE_OK;
}

re_status re_knn_create(const re_probe_rows *train, int32_t K, const re_knn_options *opt, re_knn **out) {
  re_status st = RE_OK;
  re_knn *k = NULL;
  *out = NULL;
  if (opt->k < 1 || !(opt->temperature > 0) || !isfinite(opt->temperature) || opt->block_rows < 1)
    return re_err(RE_EINVAL, "k-NN probe: need k >= 1, temperature > 0, block_rows >= 1 (got %d, %g, %lld)", opt->k,
                  opt->temperature, (long long)opt->block_rows);
  if (K < 1)
    return re_err(RE_EINVAL, "k-NN probe: %d classes", (int)K);
  if (train->n < 1 || train->d < 1)
    return re_err(RE_EINVAL, "k-NN probe: %lld training rows of %lld features", (long long)train->n,
                  (long long)train->d);
  RE_TRY(check_input(train, train->d, 1, K));
  int64_t cells;
  RE_TRY(re_mul_i64(train->n, train->d, &cells));
  RE_CHECK(re_calloc(1, sizeof *k, &k));
  k->n = train->n;
  k->d = train->d;
  k->K = K;
  k->opt = *opt;
  k->k = opt->k < train->n ? opt->k : (int)train->n;
  RE_CHECK(re_malloc(cells, sizeof(double), &k->X));
  RE_CHECK(re_malloc(train->n, sizeof(int32_t), &k->y));
  for (int64_t i = 0; i < train->n; i++)
    RE_CHECK(normalised_row(train, i, k->X + i * k->d));
  memcpy(k->y, train->y, (size_t)train->n * sizeof(int32_t));
  *out = k;
  k = NULL;
done:
  re_knn_destroy(&k);
  return st;
}

static int worse(const nb_entry *a, const nb_entry *b) {
  return a->sim < b->sim || (a->sim == b->sim && a->idx > b->idx);
}

/* Offer a candidate to a heap of capacity k holding *size entries (root = worst). */
static void heap_offer(nb_entry *h, int *size, int k, nb_entry c) {
  int i;
  if (*size < k) {
    i = (*size)++;
    while (i > 0 && worse(&c, &h[(i - 1) / 2])) {
      h[i] = h[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    h[i] = c;
    return;
  }
  if (!worse(&h[0], &c))
    return;
  i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, w = i;
    const nb_entry *cw = &c;
    if (l < k && worse(&h[l], cw))
      w = l, cw = &h[l];
    if (r < k && worse(&h[r], cw))
      w = r;
    if (w == i)
      break;
    h[i] = h[w];
    i = w;
  }
  h[i] = c;
}

/* Class votes (K) of each test row of the block [r0, r0 + nb), via `emit`. */
static re_status vote_blocks(const re_knn *kn, const re_probe_rows *test, int labels,
                             void (*emit)(const re_knn *, const double *votes, int64_t row, const re_probe_rows *, void *),
                             void *arg) {
  RE_TRY(check_input(test, kn->d, labels, kn->K));
  re_status st = RE_OK;
  int64_t B = kn->opt.block_rows, d = kn->d;
  int k = kn->k;
  double *Tb = NULL, *S = NULL, *votes = NULL;
  nb_entry *heaps = NULL;
  int *sizes = NULL;
  RE_CHECK(re_malloc(B, d * (int64_t)sizeof(double), &Tb));
  RE_CHECK(re_malloc(B, TRAIN_CHUNK * (int64_t)sizeof(double), &S));
  RE_CHECK(re_malloc(B, k * (int64_t)sizeof(nb_entry), &heaps));
  RE_CHECK(re_malloc(B, sizeof(int), &sizes));
  RE_CHECK(re_malloc(kn->K, sizeof(double), &votes));
  for (int64_t r0 = 0; r0 < test->n; r0 += B) {
    int64_t nb = test->n - r0 < B ? test->n - r0 : B;
    for (int64_t i = 0; i < nb; i++) {
      RE_CHECK(normalised_row(test, r0 + i, Tb + i * d));
      sizes[i] = 0;
    }
    for (int64_t c0 = 0; c0 < kn->n; c0 += TRAIN_CHUNK) {
      int64_t nc = kn->n - c0 < TRAIN_CHUNK ? kn->n - c0 : TRAIN_CHUNK;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nc, (int)d, 1.0, Tb, (int)d,
                  kn->X + c0 * d, (int)d, 0.0, S, (int)nc);
      for (int64_t i = 0; i < nb; i++) {
        nb_entry *h = heaps + i * k;
        const double *s = S + i * nc;
        for (int64_t j = 0; j < nc; j++) {
          nb_entry c = {s[j], c0 + j};
          heap_offer(h, &sizes[i], k, c);
        }
      }
    }
    for (int64_t i = 0; i < nb; i++) {
      nb_entry *h = heaps + i * k;
      int m = sizes[i];
      /* best first: insertion sort (k is small) */
      for (int a = 1; a < m; a++) {
        nb_entry t = h[a];
        int b = a - 1;
        while (b >= 0 && worse(&h[b], &t)) {
          h[b + 1] = h[b];
          b--;
        }
        h[b + 1] = t;
      }
      memset(votes, 0, (size_t)kn->K * sizeof(double));
      for (int a = 0; a < m; a++)
        votes[kn->y[h[a].idx]] += exp(h[a].sim / kn->opt.temperature);
      emit(kn, votes, r0 + i, test, arg);
    }
  }
done:
  free(Tb);
  free(S);
  free(heaps);
  free(sizes);
  free(votes);
  return st;
}

static void emit_score(const re_knn *kn, const double *votes, int64_t row, const re_probe_rows *test, void *arg) {
  re_probe_score *s = arg;
  int32_t y = test->y[row];
  int64_t better = 0;
  for (int32_t c = 0; c < kn->K; c++)
    if (votes[c] > votes[y] || (votes[c] == votes[y] && c < y))
      better++;
  s->n += 1;
  s->top1 += better == 0;
  s->top5 += better < 5;
}

static void emit_pred(const re_knn *kn, const double *votes, int64_t row, const re_probe_rows *test, void *arg) {
  int32_t *pred = arg, best = 0;
  for (int32_t c = 1; c < kn->K; c++)
    if (votes[c] > votes[best])
      best = c;
  pred[row] = best;
}

re_status re_knn_score(const re_knn *knn, const re_probe_rows *test, re_probe_score *s) {
  return vote_blocks(knn, test, 1, emit_score, s);
}

re_status re_knn_predict(const re_knn *knn, const re_probe_rows *test, int32_t *pred) {
  return vote_blocks(knn, test, 0, emit_pred, pred);
}
