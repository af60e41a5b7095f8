/* Compute-only time of the minibatch HSIC accumulator (the stats stage of
 * `repeval cka-matrix` and `repeval run`) on P embedding files: every batch is
 * first read into memory (not timed), then the per-tap Gram summaries
 * (re_hsic_add_tap_f32: centring, dsyrk, triangle and row sums) and the pair
 * products (re_hsic_end_batch: dsyrk of the stacked triangles) are timed
 * separately. The CLI would also measure reading the files, which at these
 * sizes is a large share of its wall time.
 *
 *   bench_hsic_stage [--batch B] [--out M.npy] E1.npy E2.npy ...
 *
 * Prints one JSON object with the wall and CPU times, the flop counts of the two BLAS
 * stages (Gram: sum over taps of b(b+1) d per batch; pairs: P(P+1) b(b-1)/2)
 * and the unbiased minibatch CKA matrix is written to --out (P x P float64). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repeval/hsic.h"
#include "repeval/npy.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the process: with one thread, unlike wall time, it does not count the
 * time other jobs on a shared machine held the core. */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *what) {
  fprintf(stderr, "bench_hsic_stage: %s: %s\n", what, re_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  int64_t batch = 256;
  const char *out = NULL;
  int P = 0;
  char **files = calloc((size_t)argc, sizeof(char *));
  if (!files)
    return 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--batch") && i + 1 < argc)
      batch = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--out") && i + 1 < argc)
      out = argv[++i];
    else if (argv[i][0] == '-')
      return fprintf(stderr, "usage: bench_hsic_stage [--batch B] [--out M.npy] E1.npy E2.npy ...\n"), 2;
    else
      files[P++] = argv[i];
  }
  if (P < 2 || batch < 4)
    return fprintf(stderr, "bench_hsic_stage: need at least 2 files and --batch >= 4\n"), 2;
  re_npy **in = calloc((size_t)P, sizeof *in);
  int64_t *dims = calloc((size_t)P, sizeof *dims);
  float **buf = calloc((size_t)P, sizeof *buf);
  double *M = calloc((size_t)P * (size_t)P, sizeof *M);
  if (!in || !dims || !buf || !M)
    return 1;
  int64_t n = -1, sum_d = 0;
  for (int p = 0; p < P; p++) {
    if (re_npy_open(files[p], &in[p]) != RE_OK)
      return fail(files[p]);
    dims[p] = re_npy_cols(in[p]);
    sum_d += dims[p];
    if (n < 0)
      n = re_npy_rows(in[p]);
    else if (re_npy_rows(in[p]) != n)
      return fprintf(stderr, "bench_hsic_stage: %s has %lld rows, expected %lld\n", files[p],
                     (long long)re_npy_rows(in[p]), (long long)n),
             1;
    if (re_malloc(batch, dims[p] * (int64_t)sizeof(float), &buf[p]) != RE_OK)
      return fail("allocating batch buffers");
  }
  re_hsic_config cfg = {P, RE_KERNEL_LINEAR, NULL, batch, 0, NULL};
  re_hsic *h = NULL;
  if (re_hsic_create(&cfg, &h) != RE_OK)
    return fail("creating the accumulator");
  double t_read = 0, t_gram = 0, t_pairs = 0, c_gram = 0, c_pairs = 0, flops_gram = 0, flops_pairs = 0;
  int64_t batches = 0;
  for (int64_t s0 = 0; s0 < n; s0 += batch) {
    int64_t b = n - s0 < batch ? n - s0 : batch;
    if (b < 4)
      break; /* as cka-matrix: a tail of fewer than 4 samples is dropped */
    double t0 = now();
    for (int p = 0; p < P; p++)
      if (re_npy_read_rows_f32(in[p], s0, b, buf[p]) != RE_OK)
        return fail(files[p]);
    double t1 = now(), c1 = cpu_now();
    if (re_hsic_begin_batch(h, b) != RE_OK)
      return fail("begin_batch");
    for (int p = 0; p < P; p++)
      if (re_hsic_add_tap_f32(h, p, buf[p], dims[p], dims[p]) != RE_OK)
        return fail(files[p]);
    double t2 = now(), c2 = cpu_now();
    if (re_hsic_end_batch(h) != RE_OK)
      return fail("end_batch");
    double t3 = now(), c3 = cpu_now();
    c_gram += c2 - c1;
    c_pairs += c3 - c2;
    t_read += t1 - t0;
    t_gram += t2 - t1;
    t_pairs += t3 - t2;
    flops_gram += (double)b * (double)(b + 1) * (double)sum_d;
    flops_pairs += (double)P * (double)(P + 1) * (double)(b * (b - 1) / 2);
    batches++;
  }
  for (int p = 0; p < P; p++)
    for (int q = 0; q < P; q++) {
      re_cka_result r;
      if (re_hsic_cka(h, p, q, 1, &r) != RE_OK)
        return fail("cka");
      M[p * P + q] = r.defined ? r.value : NAN;
    }
  if (out) {
    int64_t shape[2] = {P, P};
    if (re_npy_write(out, RE_DTYPE_F64, 2, shape, M) != RE_OK)
      return fail(out);
  }
  printf("{\"n\": %lld, \"taps\": %d, \"sum_d\": %lld, \"batch\": %lld, \"batches\": %lld, \"read_s\": %.6f, "
         "\"gram_s\": %.6f, \"pairs_s\": %.6f, \"compute_s\": %.6f, \"gram_flops\": %.6g, \"pairs_flops\": %.6g, "
         "\"gram_gflops\": %.3f, \"pairs_gflops\": %.3f, \"stage_gflops\": %.3f, \"gram_cpu_s\": %.6f, "
         "\"pairs_cpu_s\": %.6f, \"compute_cpu_s\": %.6f}\n",
         (long long)n, P, (long long)sum_d, (long long)batch, (long long)batches, t_read, t_gram, t_pairs,
         t_gram + t_pairs, flops_gram, flops_pairs, flops_gram / t_gram / 1e9, flops_pairs / t_pairs / 1e9,
         (flops_gram + flops_pairs) / (t_gram + t_pairs) / 1e9, c_gram, c_pairs, c_gram + c_pairs);
  re_hsic_destroy(&h);
  for (int p = 0; p < P; p++) {
    re_npy_close(&in[p]);
    free(buf[p]);
  }
  free(in), free(dims), free(buf), free(M), free(files);
  return 0;
}
