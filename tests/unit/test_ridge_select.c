/* re_ridge_select picks the λ with the most correct validation predictions; among
 * equal counts the larger λ, wherever it stands in the list; one λ is its own choice. */
#include "check.h"
#include "repeval/probe.h"

/* Scores with the given top-1 counts (n = 100 each). */
static void scores(re_probe_score *s, const double *top1, int nl) {
  for (int l = 0; l < nl; l++) {
    re_probe_score z = {100, top1[l], top1[l], 0};
    s[l] = z;
  }
}

int main(void) {
  re_probe_score s[5];
  const double asc[5] = {1e-3, 1e-2, 1e-1, 1, 10}, desc[5] = {10, 1, 1e-1, 1e-2, 1e-3};

  scores(s, (const double[]){50, 70, 90, 60, 40}, 5);
  CHECK(re_ridge_select(s, asc, 5) == 2); /* a unique best */

  scores(s, (const double[]){50, 90, 90, 60, 90}, 5);
  CHECK(re_ridge_select(s, asc, 5) == 4); /* ties: the larger λ, last in ascending order */
  CHECK(re_ridge_select(s, desc, 5) == 1); /* ... first in descending order */

  scores(s, (const double[]){80, 80, 80, 80, 80}, 5);
  CHECK(re_ridge_select(s, asc, 5) == 4);
  CHECK(re_ridge_select(s, desc, 5) == 0);

  const double mixed[5] = {1, 100, 1e-4, 10, 0.5};
  scores(s, (const double[]){70, 70, 70, 70, 20}, 5);
  CHECK(re_ridge_select(s, mixed, 5) == 1); /* the largest λ among the tied, not the position */

  scores(s, (const double[]){0, 0, 0, 0, 0}, 5);
  CHECK(re_ridge_select(s, mixed, 5) == 1); /* nothing correct: still the larger λ */

  scores(s, (const double[]){3}, 1);
  CHECK(re_ridge_select(s, asc, 1) == 0); /* one λ */
  CHECK(re_ridge_select(s, desc + 4, 1) == 0);
  return check_report();
}
