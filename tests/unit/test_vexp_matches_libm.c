/* re_vexp, the probes' softmax exp, agrees with libm's exp to 2 ulp over the whole range
 * of normal results, gives 0 for -inf and for arguments below the smallest subnormal,
 * +inf above the largest double, handles every tail length (0..9 values), and gives the
 * same bits on a second call. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/stats/vexp.h"
#include "check.h"

enum { N = 20011 };

int main(void) {
  static double x[N], y[N], y2[N];
  for (int i = 0; i < N; i++) /* -708 .. 709: results from the smallest normal up */
    x[i] = -708.0 + 1417.0 * i / (N - 1) + 1e-3 * sin(i);
  memcpy(y, x, sizeof x);
  re_vexp(y, N);
  double worst = 0;
  for (int i = 0; i < N; i++) {
    double ref = exp(x[i]);
    if (x[i] > 709.7)
      continue;
    double ulps = fabs(y[i] - ref) / (nextafter(ref, INFINITY) - ref);
    if (ulps > worst)
      worst = ulps;
  }
  printf("worst error %.2f ulp over %d values\n", worst, N);
  CHECK(worst <= 2.0);

  memcpy(y2, x, sizeof x);
  re_vexp(y2, N);
  CHECK(memcmp(y, y2, sizeof y) == 0);

  double special[6] = {-INFINITY, -800.0, 0.0, -0.0, 710.0, 1.0};
  re_vexp(special, 6);
  CHECK(special[0] == 0.0);
  CHECK(special[1] == 0.0);
  CHECK(special[2] == 1.0 && special[3] == 1.0);
  CHECK(isinf(special[4]) && special[4] > 0);
  CHECK(fabs(special[5] - 2.718281828459045) <= 2 * DBL_EPSILON * 2.718281828459045);

  for (int n = 0; n <= 9; n++) { /* every tail length; values past n untouched */
    double v[12];
    for (int i = 0; i < 12; i++)
      v[i] = 0.25 * i - 1.0;
    re_vexp(v, n);
    for (int i = 0; i < 12; i++) {
      double want = i < n ? exp(0.25 * i - 1.0) : 0.25 * i - 1.0;
      CHECK(fabs(v[i] - want) <= 2 * DBL_EPSILON * fabs(want));
    }
  }
  return check_report();
}
