/* Shares of the pairs: runs of the Morton order cut at equal cost (run/pair_share.h). */
#include <stdlib.h>
#include <string.h>

#include "run/pair_share.h"

/* The 32 bits of x at the even bit positions of the result. */
static uint64_t spread(uint32_t x) {
  uint64_t v = x;
  v = (v | v << 16) & 0x0000FFFF0000FFFFull;
  v = (v | v << 8) & 0x00FF00FF00FF00FFull;
  v = (v | v << 4) & 0x0F0F0F0F0F0F0F0Full;
  v = (v | v << 2) & 0x3333333333333333ull;
  v = (v | v << 1) & 0x5555555555555555ull;
  return v;
}

uint64_t pair_share_key(int i, int l) { return spread((uint32_t)i) << 1 | spread((uint32_t)l); }

/* One walk over the pairs in Morton order: the first sums the costs, the second
 * gives each pair the rank whose 1/R of the total holds the middle of its cost. */
typedef struct walk {
  pair_share *s;
  pair_cost_fn cost;
  void *ctx;
  int second, last;
  double total, sum;
} walk;

static void visit(walk *w, int i, int l) {
  double c = w->cost ? w->cost(w->ctx, i, l) : 1.0;
  c = c > 0 ? c : 1.0; /* a cost that is not positive (or NaN) counts as one */
  if (!w->second) {
    w->total += c;
    return;
  }
  pair_share *s = w->s;
  double mid = w->sum + 0.5 * c;
  w->sum += c;
  int q = (int)(mid / w->total * s->R);
  q = q >= s->R ? s->R - 1 : q < w->last ? w->last : q;
  for (int k = w->last + 1; k <= q; k++) /* the ranks before q that got nothing start here too */
    s->key[k] = pair_share_key(i, l);
  w->last = q;
  s->count[q]++;
  s->cost[q] += c;
}

/* Every pair i < l of P in the square [i0, i0 + n) x [l0, l0 + n), in Morton order. */
static void walk_all(walk *w, int64_t i0, int64_t l0, int64_t n, int P) {
  if (i0 >= P || l0 >= P || i0 >= l0 + n - 1)
    return;
  if (n == 1) {
    visit(w, (int)i0, (int)l0);
    return;
  }
  int64_t h = n / 2;
  walk_all(w, i0, l0, h, P);
  walk_all(w, i0, l0 + h, h, P);
  walk_all(w, i0 + h, l0, h, P);
  walk_all(w, i0 + h, l0 + h, h, P);
}

typedef struct keyed {
  uint64_t key;
  int64_t e;
} keyed;

static int by_key(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  return (x->key > y->key) - (x->key < y->key);
}

static int row_major(const void *a, const void *b) {
  const int32_t *x = a, *y = b;
  return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* s->prow: the listed pairs as i < l, row-major, each once. */
static re_status list_pairs(const int32_t *pairs, int64_t npairs, pair_share *s) {
  RE_TRY(re_malloc(npairs > 0 ? npairs : 1, 2 * sizeof(int32_t), &s->prow));
  int64_t n = 0;
  for (int64_t k = 0; k < npairs; k++) {
    int32_t a = pairs[2 * k], b = pairs[2 * k + 1];
    if (a == b || a < 0 || b < 0 || a >= s->P || b >= s->P)
      return re_err(RE_EINVAL, "pair %lld (%d, %d) is not a pair of 2 of the %d taps", (long long)k, a, b, s->P);
    s->prow[2 * n] = a < b ? a : b, s->prow[2 * n + 1] = a < b ? b : a, n++;
  }
  qsort(s->prow, (size_t)n, 2 * sizeof(int32_t), row_major);
  int64_t m = 0;
  for (int64_t k = 0; k < n; k++)
    if (m == 0 || s->prow[2 * m - 2] != s->prow[2 * k] || s->prow[2 * m - 1] != s->prow[2 * k + 1])
      s->prow[2 * m] = s->prow[2 * k], s->prow[2 * m + 1] = s->prow[2 * k + 1], m++;
  s->npairs = m;
  return RE_OK;
}

/* Both walks over the listed pairs, in Morton order. */
static re_status walk_list(walk *w) {
  pair_share *s = w->s;
  keyed *order = NULL;
  RE_TRY(re_malloc(s->npairs > 0 ? s->npairs : 1, sizeof(keyed), &order));
  for (int64_t e = 0; e < s->npairs; e++)
    order[e] = (keyed){pair_share_key(s->prow[2 * e], s->prow[2 * e + 1]), e};
  qsort(order, (size_t)s->npairs, sizeof(keyed), by_key);
  for (w->second = 0; w->second < 2; w->second++)
    for (int64_t k = 0; k < s->npairs; k++)
      visit(w, s->prow[2 * order[k].e], s->prow[2 * order[k].e + 1]);
  free(order);
  return RE_OK;
}

re_status pair_share_make(int P, const int32_t *pairs, int64_t npairs, int R, pair_cost_fn cost, void *ctx,
                          pair_share *s) {
  memset(s, 0, sizeof *s);
  s->P = P, s->R = R;
  if (P < 0 || R < 1)
    return re_err(RE_EINVAL, "pair shares of %d taps over %d ranks", P, R);
  re_status st = re_malloc(R + 1, sizeof(uint64_t), &s->key);
  if (st == RE_OK)
    st = re_calloc(R, sizeof(int64_t), &s->count);
  if (st == RE_OK)
    st = re_calloc(R, sizeof(double), &s->cost);
  if (st == RE_OK && pairs)
    st = list_pairs(pairs, npairs, s);
  if (st != RE_OK) {
    pair_share_free(s);
    return st;
  }
  s->key[0] = 0;
  for (int q = 1; q <= R; q++)
    s->key[q] = UINT64_MAX; /* no pair has this key (it needs i = l) */
  walk w = {s, cost, ctx, 0, 0, 0, 0};
  if (pairs) {
    st = walk_list(&w);
  } else {
    s->npairs = (int64_t)P * (P - 1) / 2;
    int64_t n = 1;
    while (n < P)
      n *= 2;
    for (w.second = 0; w.second < 2; w.second++)
      walk_all(&w, 0, 0, n, P);
  }
  if (st != RE_OK)
    pair_share_free(s);
  return st;
}

int pair_share_has(const pair_share *s, int i, int l) {
  if (i == l)
    return 0;
  if (!s->prow)
    return 1;
  int32_t want[2] = {i < l ? i : l, i < l ? l : i};
  return bsearch(want, s->prow, (size_t)s->npairs, 2 * sizeof(int32_t), row_major) != NULL;
}

int pair_share_owner(const pair_share *s, int i, int l) {
  uint64_t k = pair_share_key(i, l);
  int lo = 0, hi = s->R; /* the last q with key[q] <= k: key[lo] <= k < key[hi] */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (s->key[mid] <= k)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

void pair_share_free(pair_share *s) {
  free(s->prow);
  free(s->key);
  free(s->count);
  free(s->cost);
  memset(s, 0, sizeof *s);
}
