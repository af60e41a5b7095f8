/* This machine's OpenBLAS throughput, the reference for "what fraction of the
 * BLAS peak does the stats stage reach": large square sgemm, dgemm and dsyrk,
 * plus dsyrk at the two shapes the minibatch HSIC accumulator uses (a batch
 * Gram b x b from b x d features, and the pair product P x P from P x b(b-1)/2
 * stacked Gram triangles). Each kernel is repeated for at least --seconds and
 * the best repetition is reported (the peak; the machine may be shared).
 *
 *   bench_gemm_peak [--n N] [--seconds S] [--gram B,D] [--pairs P,M]
 *
 * Prints one JSON object: GFLOP/s from the best wall time of each kernel, and
 * <kernel>_cpu from its best CPU time (the single-thread peak on a shared
 * machine; with T threads CPU time adds up over threads). Threads:
 * OPENBLAS_NUM_THREADS. copy_gbs: memory bandwidth of a 256 MiB memcpy
 * (read + write). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the process (all threads): with one thread it excludes the time other
 * jobs on a shared machine held the core. */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef enum { K_SGEMM, K_DGEMM, K_DSYRK } kernel;

typedef struct shape {
  const char *name;
  kernel k;
  int m, n, kk; /* gemm: m x kk times kk x n; syrk: n x n output from n x kk */
} shape;

static void fill(void *p, int64_t count, int single) {
  uint64_t s = 88172645463325252ull;
  for (int64_t i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    double v = (double)(s >> 11) / 9007199254740992.0 - 0.5;
    if (single)
      ((float *)p)[i] = (float)v;
    else
      ((double *)p)[i] = v;
  }
}

static double flops_of(const shape *s) {
  if (s->k == K_DSYRK)
    return (double)s->n * (double)(s->n + 1) * (double)s->kk; /* n(n+1)/2 dot products of length k */
  return 2.0 * (double)s->m * (double)s->n * (double)s->kk;
}

/* Best GFLOP/s over repetitions lasting at least `seconds` in total (and at least 3);
 * also the best CPU time of a repetition. */
static double measure(const shape *s, double seconds, double *best_time, double *best_cpu) {
  int single = s->k == K_SGEMM;
  size_t el = single ? sizeof(float) : sizeof(double);
  int64_t na = (int64_t)(s->k == K_DSYRK ? s->n : s->m) * s->kk, nb = (int64_t)s->kk * s->n,
          nc = (int64_t)(s->k == K_DSYRK ? s->n : s->m) * s->n;
  void *A = malloc(el * (size_t)na), *B = malloc(el * (size_t)nb), *C = malloc(el * (size_t)nc);
  if (!A || !B || !C) {
    free(A), free(B), free(C);
    return -1;
  }
  fill(A, na, single);
  fill(B, nb, single);
  memset(C, 0, el * (size_t)nc);
  double best = 1e300, bestc = 1e300, spent = 0;
  for (int rep = 0; rep < 3 || spent < seconds; rep++) {
    double t0 = now(), c0 = cpu_now();
    switch (s->k) {
    case K_SGEMM:
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->m, s->n, s->kk, 1.0f, A, s->kk, B, s->n, 0.0f, C,
                  s->n);
      break;
    case K_DGEMM:
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->m, s->n, s->kk, 1.0, A, s->kk, B, s->n, 0.0, C,
                  s->n);
      break;
    case K_DSYRK:
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, s->n, s->kk, 1.0, A, s->kk, 0.0, C, s->n);
      break;
    }
    double t = now() - t0, c = cpu_now() - c0;
    spent += t;
    best = t < best ? t : best;
    bestc = c < bestc ? c : bestc;
  }
  free(A), free(B), free(C);
  *best_time = best;
  *best_cpu = bestc;
  return flops_of(s) / best / 1e9;
}

/* Memory bandwidth of a large copy (read + write counted), best of a few, GB/s: the
 * rate at which accumulator states are serialised and merged. */
static double copy_bandwidth(void) {
  size_t len = (size_t)1 << 28;
  char *a = malloc(len), *b = malloc(len);
  if (!a || !b) {
    free(a), free(b);
    return -1;
  }
  memset(a, 1, len);
  memset(b, 2, len);
  double best = 1e300;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now();
    memcpy(b, a, len);
    double t = now() - t0;
    best = t < best ? t : best;
  }
  volatile char sink = b[len / 2];
  (void)sink;
  free(a), free(b);
  return 2.0 * (double)len / best / 1e9;
}

static int parse_pair(const char *v, int *a, int *b) {
  char *end;
  long x = strtol(v, &end, 10);
  if (*end != ',')
    return -1;
  long y = strtol(end + 1, &end, 10);
  if (*end || x < 1 || y < 1 || x > 1 << 20 || y > 1 << 26)
    return -1;
  *a = (int)x, *b = (int)y;
  return 0;
}

int main(int argc, char **argv) {
  int n = 2048, gb = 256, gd = 4096, pp = 160, pm = 256 * 255 / 2;
  double seconds = 1.0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--n") && i + 1 < argc) {
      n = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--gram") && i + 1 < argc) {
      if (parse_pair(argv[++i], &gb, &gd))
        return fprintf(stderr, "bench_gemm_peak: --gram wants B,D\n"), 2;
    } else if (!strcmp(argv[i], "--pairs") && i + 1 < argc) {
      if (parse_pair(argv[++i], &pp, &pm))
        return fprintf(stderr, "bench_gemm_peak: --pairs wants P,M\n"), 2;
    } else {
      fprintf(stderr, "usage: bench_gemm_peak [--n N] [--seconds S] [--gram B,D] [--pairs P,M]\n");
      return 2;
    }
  }
  if (n < 16 || n > 16384)
    return fprintf(stderr, "bench_gemm_peak: --n must be in 16..16384\n"), 2;
  shape shapes[] = {
      {"sgemm", K_SGEMM, n, n, n},
      {"dgemm", K_DGEMM, n, n, n},
      {"dsyrk", K_DSYRK, 0, n, n},
      {"dsyrk_gram", K_DSYRK, 0, gb, gd},
      {"dsyrk_pairs", K_DSYRK, 0, pp, pm},
  };
  printf("{\"threads\": %d, \"config\": \"%s\", \"core\": \"%s\", \"n\": %d, \"gram\": [%d, %d], \"pairs\": [%d, %d]",
         openblas_get_num_threads(), openblas_get_config(), openblas_get_corename(), n, gb, gd, pp, pm);
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    double t = 0, c = 0, g = measure(&shapes[k], seconds, &t, &c);
    if (g < 0)
      return fprintf(stderr, "bench_gemm_peak: out of memory for %s\n", shapes[k].name), 1;
    printf(", \"%s\": %.3f, \"%s_seconds\": %.6f, \"%s_cpu\": %.3f", shapes[k].name, g, shapes[k].name, t,
           shapes[k].name, flops_of(&shapes[k]) / c / 1e9);
  }
  printf(", \"copy_gbs\": %.2f}\n", copy_bandwidth());
  return 0;
}
