/* The ranks' shares of an analysis' pairs (pipeline/run/pair_share.c): every wanted
 * pair in exactly one share, shares of about equal cost (no rank above its 1/R of
 * the total by more than one pair's cost), and at 16 ranks or more a share reads at
 * most 2/3 of the taps a contiguous block of the row-major pair list reads (printed). */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "run/pair_share.h"

#define MAXP 200
#define MAXR 64

static double widths[MAXP];

static double width_cost(void *ctx, int i, int l) {
  (void)ctx;
  return widths[i] * widths[l] * (widths[i] + widths[l]) + 1e4;
}

/* Owners of every pair (i, l) of the list (NULL: all i < l), checked against the key
 * ranges and the counts; the most taps one rank reads, and the same for contiguous
 * blocks of the row-major list. */
static void check_shares(int P, const int32_t *pairs, int64_t npairs, int R, pair_cost_fn cost, int *taps_share,
                         int *taps_block) {
  pair_share s;
  CHECK_OK(pair_share_make(P, pairs, npairs, R, cost, NULL, &s));
  static uint8_t reads[MAXR][MAXP], reads_block[MAXR][MAXP];
  memset(reads, 0, sizeof reads);
  memset(reads_block, 0, sizeof reads_block);
  int64_t count[MAXR] = {0}, u = 0;
  double cost_of[MAXR] = {0}, total = 0, cmax = 0;
  for (int i = 0; i < P; i++)
    for (int l = i + 1; l < P; l++) {
      int wanted = !pairs;
      for (int64_t k = 0; pairs && k < npairs; k++)
        wanted |= (pairs[2 * k] == i && pairs[2 * k + 1] == l) || (pairs[2 * k] == l && pairs[2 * k + 1] == i);
      CHECK(pair_share_has(&s, i, l) == wanted && pair_share_has(&s, l, i) == wanted);
      if (!wanted)
        continue;
      int q = pair_share_owner(&s, i, l), inside = 0;
      uint64_t key = pair_share_key(i, l);
      for (int k = 0; k < R; k++) /* exactly one key range holds it */
        inside += key >= s.key[k] && key < s.key[k + 1];
      CHECK(inside == 1 && q >= 0 && q < R && key >= s.key[q] && key < s.key[q + 1]);
      if (s.prow) /* the list, normalized, in row-major order */
        CHECK(s.prow[2 * u] == i && s.prow[2 * u + 1] == l);
      double c = cost ? cost(NULL, i, l) : 1;
      count[q]++, cost_of[q] += c, total += c, cmax = c > cmax ? c : cmax;
      reads[q][i] = reads[q][l] = 1;
      int b = 0; /* u's contiguous block, as the old split: [n q / R, n (q + 1) / R) */
      for (int k = 0; k < R; k++)
        if (u >= s.npairs * k / R && u < s.npairs * (k + 1) / R)
          b = k;
      reads_block[b][i] = reads_block[b][l] = 1;
      u++;
    }
  CHECK(u == s.npairs);
  *taps_share = *taps_block = 0;
  for (int q = 0; q < R; q++) {
    CHECK(count[q] == s.count[q]);
    CHECK_CLOSE(cost_of[q], s.cost[q], 1e-12);
    CHECK(cost_of[q] <= total / R + cmax * (1 + 1e-12));
    int a = 0, b = 0;
    for (int t = 0; t < P; t++)
      a += reads[q][t], b += reads_block[q][t];
    *taps_share = a > *taps_share ? a : *taps_share;
    *taps_block = b > *taps_block ? b : *taps_block;
  }
  pair_share_free(&s);
}

int main(void) {
  static const int Ps[] = {0, 1, 2, 5, 17, 100};
  static const int Rs[] = {1, 2, 3, 7, 16, 64};
  int a, b;
  for (size_t x = 0; x < sizeof Ps / sizeof *Ps; x++)
    for (size_t y = 0; y < sizeof Rs / sizeof *Rs; y++)
      check_shares(Ps[x], NULL, 0, Rs[y], NULL, &a, &b);

  /* all pairs of 100 taps: the most taps one rank reads */
  for (size_t y = 1; y < sizeof Rs / sizeof *Rs; y++) {
    check_shares(100, NULL, 0, Rs[y], NULL, &a, &b);
    printf("all pairs of 100 taps, %2d ranks: at most %3d taps per rank (contiguous blocks: %3d)\n", Rs[y], a, b);
    if (Rs[y] >= 16)
      CHECK(3 * a <= 2 * b); /* 59 of 100 at 16 ranks, 30 against 80 at 64 */
  }

  /* unequal widths: 100 taps, every 5th 784 wide, the others 8 to 128 */
  for (int t = 0; t < 100; t++)
    widths[t] = t % 5 == 2 ? 784 : 8 << (t % 5 == 4 ? 0 : t % 5);
  for (size_t y = 1; y < sizeof Rs / sizeof *Rs; y++) {
    check_shares(100, NULL, 0, Rs[y], width_cost, &a, &b);
    printf("all pairs of 100 taps of unequal widths, %2d ranks: at most %3d taps per rank (contiguous: %3d)\n",
           Rs[y], a, b);
  }

  /* a list (either order, a pair twice): same-layer pairs of 12 checkpoints x 5 layers */
  int32_t list[2 * 400];
  int64_t n = 0;
  for (int c = 0; c < 12; c++)
    for (int d = c + 1; d < 12; d++)
      for (int layer = 0; layer < 5; layer++) {
        int i = c * 5 + layer, l = d * 5 + layer;
        list[2 * n] = (c + d) % 2 ? i : l, list[2 * n + 1] = (c + d) % 2 ? l : i, n++;
      }
  list[2 * n] = 7, list[2 * n + 1] = 2, n++; /* (2, 7) again */
  for (size_t y = 0; y < sizeof Rs / sizeof *Rs; y++) {
    check_shares(60, list, n, Rs[y], width_cost, &a, &b);
    pair_share s;
    CHECK_OK(pair_share_make(60, list, n, Rs[y], width_cost, NULL, &s));
    CHECK(s.npairs == n - 1);
    pair_share_free(&s);
  }

  /* refused: a pair of a tap with itself, a tap out of range */
  pair_share s;
  int32_t self[2] = {3, 3}, out[2] = {1, 9};
  CHECK_FAILS(pair_share_make(5, self, 1, 2, NULL, NULL, &s), RE_EINVAL, "pair 0 (3, 3)");
  CHECK_FAILS(pair_share_make(5, out, 1, 2, NULL, NULL, &s), RE_EINVAL, "of the 5 taps");
  CHECK_FAILS(pair_share_make(5, NULL, 0, 0, NULL, NULL, &s), RE_EINVAL, "over 0 ranks");

  printf("%d checks passed, %d failed\n", check_passed_, check_failed_);
  return check_failed_ != 0;
}
