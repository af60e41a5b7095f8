/* re_shard_range: for every n and rank count R, the ranges of ranks 0..R-1 are
 * contiguous, in order, cover exactly [0, n), equal floor(n r / R) (computed here
 * in 128-bit arithmetic) and differ in size by at most one. */
#include "check.h"
#include "repeval/dataset.h"

static int64_t floor_ref(int64_t n, int r, int size) {
  return (int64_t)((__int128)n * r / size);
}

static int check_partition(int64_t n, int size) {
  int64_t prev = 0, lo = INT64_MAX, hi = 0;
  for (int r = 0; r < size; r++) {
    int64_t b, e;
    re_shard_range(n, r, size, &b, &e);
    if (b != prev || e < b || b != floor_ref(n, r, size) || e != floor_ref(n, r + 1, size))
      return 0;
    if (e - b < lo)
      lo = e - b;
    if (e - b > hi)
      hi = e - b;
    prev = e;
  }
  return prev == n && hi - lo <= 1;
}

int main(void) {
  int bad = 0, cases = 0;
  for (int64_t n = 0; n <= 300; n++)
    for (int size = 1; size <= 70; size++, cases++)
      bad += !check_partition(n, size);
  /* large n, where n * r would overflow 64 bits */
  const int64_t big[] = {INT64_MAX, INT64_MAX - 1, (INT64_C(1) << 62) + 12345, 60000, 10000, 1000003};
  const int sizes[] = {1, 2, 3, 7, 64, 1000, 4096, 65535};
  for (size_t i = 0; i < sizeof big / sizeof *big; i++)
    for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++, cases++)
      bad += !check_partition(big[i], sizes[j]);
  CHECK(bad == 0);
  CHECK(cases > 20000);
  /* out-of-range ranks and sizes give empty ranges */
  int64_t b = 1, e = 1;
  re_shard_range(10, 3, 3, &b, &e);
  CHECK(b == 0 && e == 0);
  re_shard_range(10, 0, 0, &b, &e);
  CHECK(b == 0 && e == 0);
  re_shard_range(10, 2, 4, &b, &e);
  CHECK(b == 5 && e == 7);
  return check_report();
}
