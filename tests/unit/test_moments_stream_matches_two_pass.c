/* The streaming co-moment accumulator equals a two-pass long-double computation
 * for any batch split, after merges and serialization, with feature offsets
 * of 1000 (Chan-style re-centring keeps full precision). */
#include <stdlib.h>

#include "check.h"
#include "repeval/moments.h"

#define L 3
#define N 203
static const int64_t dims[L] = {3, 5, 2};
static const int32_t pairs[] = {0, 1, 1, 2, 2, 0};
static double data[L][N * 5];

typedef struct ref {
  long double mean[L][5];
  long double C[L][L][5][5];
  long double sqq[L][L];
  long double aq[L][L][5]; /* sum_s a_i,s q_j,s */
} ref;

static void reference(int64_t n0, int64_t n1, ref *r) {
  memset(r, 0, sizeof *r);
  long double q[L][N];
  for (int l = 0; l < L; l++) {
    for (int64_t k = 0; k < dims[l]; k++) {
      long double s = 0;
      for (int64_t t = n0; t < n1; t++)
        s += data[l][t * dims[l] + k];
      r->mean[l][k] = s / (long double)(n1 - n0);
    }
    for (int64_t t = n0; t < n1; t++) {
      long double acc = 0;
      for (int64_t k = 0; k < dims[l]; k++) {
        long double a = data[l][t * dims[l] + k] - r->mean[l][k];
        acc += a * a;
      }
      q[l][t] = acc;
    }
  }
  for (int i = 0; i < L; i++)
    for (int j = 0; j < L; j++)
      for (int64_t t = n0; t < n1; t++) {
        r->sqq[i][j] += q[i][t] * q[j][t];
        for (int64_t a = 0; a < dims[i]; a++) {
          long double ai = data[i][t * dims[i] + a] - r->mean[i][a];
          r->aq[i][j][a] += ai * q[j][t];
          for (int64_t b = 0; b < dims[j]; b++)
            r->C[i][j][a][b] += ai * (data[j][t * dims[j] + b] - r->mean[j][b]);
        }
      }
}

static void compare(const re_moments *m, const ref *r, double rtol) {
  for (int l = 0; l < L; l++)
    for (int64_t k = 0; k < dims[l]; k++)
      CHECK_CLOSE(re_moments_mean(m, l)[k], (double)r->mean[l][k], 1e-14);
  for (int i = 0; i < L; i++)
    for (int j = 0; j < L; j++) {
      int tr;
      const double *C = re_moments_block(m, i, j, &tr);
      CHECK(C != NULL);
      if (!C)
        continue;
      double scale = 0;
      for (int64_t a = 0; a < dims[i]; a++)
        scale = fmax(scale, fabs((double)r->C[i][i][a][a]));
      for (int64_t a = 0; a < dims[i]; a++)
        for (int64_t b = 0; b < dims[j]; b++) {
          double got = tr ? C[b * dims[i] + a] : C[a * dims[j] + b];
          CHECK(fabs(got - (double)r->C[i][j][a][b]) <= rtol * scale);
        }
      double sqq;
      const double *ai, *aj;
      CHECK_OK(re_moments_debiased_terms(m, i, j, &sqq, &ai, &aj));
      CHECK_CLOSE(sqq, (double)r->sqq[i][j], rtol);
      double s2 = fabs((double)r->sqq[i][j]);
      for (int64_t a = 0; a < dims[i]; a++)
        CHECK(fabs(ai[a] - (double)r->aq[i][j][a]) <= rtol * s2);
      for (int64_t b = 0; b < dims[j]; b++)
        CHECK(fabs(aj[b] - (double)r->aq[j][i][b]) <= rtol * s2);
    }
}

static void stream(re_moments *m, int64_t n0, int64_t n1, int64_t batch) {
  for (int64_t t = n0; t < n1; t += batch) {
    int64_t b = n1 - t < batch ? n1 - t : batch;
    const double *x[L];
    for (int l = 0; l < L; l++)
      x[l] = data[l] + t * dims[l];
    CHECK_OK(re_moments_add_batch(m, b, x, dims));
  }
}

int main(void) {
  check_seed(7);
  for (int l = 0; l < L; l++)
    for (int64_t t = 0; t < N; t++)
      for (int64_t k = 0; k < dims[l]; k++) {
        double offset = l == 0 ? 1000.0 + 13 * (double)k : (l == 1 ? -3.0 : 1e-3 * (double)k);
        double shared = data[0][t * dims[0]] - 1000.0; /* correlate the layers */
        data[l][t * dims[l] + k] = offset + check_normal() * (1 + (double)k) + (l ? 0.5 * shared : 0);
      }
  ref r;
  reference(0, N, &r);
  const int64_t batches[] = {1, 2, 7, 64, N};
  for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
    re_moments *m = NULL;
    CHECK_OK(re_moments_create(L, dims, 3, pairs, RE_MOMENTS_DEBIASED, &m));
    stream(m, 0, N, batches[b]);
    CHECK(re_moments_n(m) == N);
    compare(m, &r, 1e-11);
    re_moments_destroy(&m);
    CHECK(m == NULL);
  }
  /* three partials merged in order == one pass */
  re_moments *a = NULL, *b = NULL, *c = NULL;
  CHECK_OK(re_moments_create(L, dims, 3, pairs, RE_MOMENTS_DEBIASED, &a));
  CHECK_OK(re_moments_create(L, dims, 3, pairs, RE_MOMENTS_DEBIASED, &b));
  CHECK_OK(re_moments_create(L, dims, 3, pairs, RE_MOMENTS_DEBIASED, &c));
  stream(a, 0, 50, 16);
  stream(b, 50, 51, 16);
  stream(c, 51, N, 9);
  CHECK_OK(re_moments_merge(a, b));
  int64_t len = re_moments_serial_len(c);
  double *buf = malloc(sizeof(double) * (size_t)len), *pre = malloc(sizeof(double) * (size_t)len),
         *got = malloc(sizeof(double) * (size_t)len);
  re_moments_serialize(c, buf);
  re_moments_serialize(a, pre);
  CHECK_OK(re_moments_merge_serial(a, buf, len));
  compare(a, &r, 1e-11);
  /* x <- x (+) an accumulator's own state, and state <- state (+) y used up: the same
   * bits as merge_serial, neither copying its operand */
  {
    double *x = malloc(sizeof(double) * (size_t)len), *y = malloc(sizeof(double) * (size_t)len),
           *want = malloc(sizeof(double) * (size_t)len), *have = malloc(sizeof(double) * (size_t)len);
    re_moments *e = NULL;
    CHECK_OK(re_moments_create(L, dims, 3, pairs, RE_MOMENTS_DEBIASED, &e));
    re_moments_serialize(a, want); /* a (+) c */
    memcpy(x, pre, sizeof(double) * (size_t)len);
    CHECK_OK(re_moments_deserialize(e, buf, len)); /* e = c */
    CHECK_OK(re_moments_merge_state_into(e, x, len));
    CHECK(memcmp(x, want, sizeof(double) * (size_t)len) == 0);
    CHECK_OK(re_moments_deserialize(e, pre, len)); /* e = a before the merge */
    memcpy(y, buf, sizeof(double) * (size_t)len);
    CHECK_OK(re_moments_merge_serial_consume(e, y, len));
    re_moments_serialize(e, have);
    CHECK(memcmp(have, want, sizeof(double) * (size_t)len) == 0);
    x[0] = 1.0;
    y[0] = 1.0;
    CHECK_FAILS(re_moments_merge_state_into(e, x, len), RE_EFORMAT, "layout");
    CHECK_FAILS(re_moments_merge_serial_consume(e, y, len), RE_EFORMAT, "layout");
    CHECK_FAILS(re_moments_merge_state_into(e, want, len - 1), RE_EFORMAT, "expected");
    re_moments_destroy(&e);
    free(x);
    free(y);
    free(want);
    free(have);
  }
  /* merging the two serialized buffers in place gives the same bits (y is used up)
   * and leaves the accumulator's own state as it was */
  re_moments *d = NULL;
  CHECK_OK(re_moments_create(L, dims, 3, pairs, RE_MOMENTS_DEBIASED, &d));
  double *dstate = malloc(sizeof(double) * (size_t)len), *dafter = malloc(sizeof(double) * (size_t)len);
  stream(d, 0, 7, 7);
  re_moments_serialize(d, dstate);
  re_moments_serialize(c, got);
  CHECK_OK(re_moments_merge_serial_into(d, pre, got, len));
  re_moments_serialize(d, dafter);
  CHECK(memcmp(dstate, dafter, sizeof(double) * (size_t)len) == 0);
  re_moments_serialize(a, got);
  CHECK(memcmp(pre, got, sizeof(double) * (size_t)len) == 0);
  got[0] = 1.0;
  CHECK_FAILS(re_moments_merge_serial_into(d, pre, got, len), RE_EFORMAT, "layout");
  CHECK_FAILS(re_moments_merge_serial_into(d, got, pre, len), RE_EFORMAT, "layout");
  free(dstate);
  free(dafter);
  re_moments_destroy(&d);
  free(pre);
  free(got);
  /* deserialize reproduces bit for bit */
  re_moments_serialize(a, buf);
  re_moments_reset(c);
  CHECK_OK(re_moments_deserialize(c, buf, len));
  double *buf2 = malloc(sizeof(double) * (size_t)len);
  re_moments_serialize(c, buf2);
  CHECK(memcmp(buf, buf2, sizeof(double) * (size_t)len) == 0);
  /* merging an empty accumulator changes nothing; an empty one absorbs a full one */
  re_moments_reset(b);
  CHECK_OK(re_moments_merge(a, b));
  re_moments_serialize(a, buf2);
  CHECK(memcmp(buf, buf2, sizeof(double) * (size_t)len) == 0);
  CHECK_OK(re_moments_merge(b, a));
  re_moments_serialize(b, buf2);
  CHECK(memcmp(buf + 2, buf2 + 2, sizeof(double) * (size_t)(len - 2)) == 0);
  /* corrupt or foreign buffers are refused */
  buf[0] = 1.0;
  CHECK_FAILS(re_moments_merge_serial(a, buf, len), RE_EFORMAT, "layout");
  CHECK_FAILS(re_moments_deserialize(a, buf2, len - 1), RE_EFORMAT, "layout");
  re_moments *other = NULL;
  int64_t odims[L] = {3, 5, 3};
  CHECK_OK(re_moments_create(L, odims, 3, pairs, RE_MOMENTS_DEBIASED, &other));
  CHECK_FAILS(re_moments_merge(a, other), RE_EINVAL, "different layouts");
  re_moments_destroy(&other);
  /* NaN is refused with its position */
  double nanrow[5] = {1, 2, NAN, 4, 5}, ok3[3] = {1, 2, 3}, ok2[2] = {1, 2};
  const double *x[L] = {ok3, nanrow, ok2};
  CHECK_FAILS(re_moments_add_batch(a, 1, x, dims), RE_EDATA, "layer 1, batch row 0, column 2 is NaN");
  /* bad construction */
  int32_t badpair[2] = {0, 3};
  CHECK_FAILS(re_moments_create(L, dims, 1, badpair, 0, &other), RE_EINVAL, "outside");
  int64_t zero[L] = {3, 0, 2};
  CHECK_FAILS(re_moments_create(L, zero, 3, pairs, 0, &other), RE_EINVAL, "width 0");
  int64_t slen;
  CHECK_OK(re_moments_state_len(L, dims, 3, pairs, 0, &slen));
  CHECK(slen == 1 + 10 + 9 + 25 + 4 + 15 + 10 + 6);
  free(buf);
  free(buf2);
  re_moments_destroy(&a);
  re_moments_destroy(&b);
  re_moments_destroy(&c);
  return check_report();
}
