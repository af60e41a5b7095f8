/* Co-moments of L layers with every pair of layers, then the finalize step for
 * every pair: exact linear CKA, SVCCA (99% variance) and PWCCA from the reduced
 * statistics. This is what `repeval run` does after its reduction; no CLI
 * command computes the CCA family for all pairs of many layers, hence a driver.
 * Reading the input is not timed; accumulation, the per-layer
 * eigendecompositions and the per-pair metrics are timed separately.
 *
 *   bench_comoments_finalize --layers L [--chunk R] [--out-prefix P] DATA.npy
 *
 * DATA.npy: n x (L d) float32, layer l in columns [l d, (l + 1) d). Writes
 * P_cka.npy, P_svcca.npy, P_pwcca.npy (L x L float64, upper triangle, NaN
 * elsewhere) and prints one JSON object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repeval/cca.h"
#include "repeval/cka.h"
#include "repeval/moments.h"
#include "repeval/npy.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU time of the process (one thread: insensitive to other jobs sharing the core). */
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *what) {
  fprintf(stderr, "bench_comoments_finalize: %s: %s\n", what, re_errmsg());
  return 1;
}

static int write_matrix(const char *prefix, const char *name, const double *M, int L) {
  char path[4096];
  snprintf(path, sizeof path, "%s_%s.npy", prefix, name);
  int64_t shape[2] = {L, L};
  return re_npy_write(path, RE_DTYPE_F64, 2, shape, M) == RE_OK ? 0 : fail(path);
}

int main(int argc, char **argv) {
  int L = 0;
  int64_t chunk = 1024;
  const char *prefix = NULL, *data = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--layers") && i + 1 < argc)
      L = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
      chunk = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--out-prefix") && i + 1 < argc)
      prefix = argv[++i];
    else if (argv[i][0] != '-' && !data)
      data = argv[i];
    else
      return fprintf(stderr, "usage: bench_comoments_finalize --layers L [--chunk R] [--out-prefix P] DATA.npy\n"),
             2;
  }
  if (L < 2 || !data || chunk < 1)
    return fprintf(stderr, "bench_comoments_finalize: need --layers >= 2 and DATA.npy\n"), 2;
  re_npy *in = NULL;
  if (re_npy_open(data, &in) != RE_OK)
    return fail(data);
  int64_t n = re_npy_rows(in), cols = re_npy_cols(in);
  if (cols % L)
    return fprintf(stderr, "bench_comoments_finalize: %lld columns are not %d equal layers\n", (long long)cols, L), 1;
  int64_t d = cols / L;
  int npairs = L * (L - 1) / 2;
  int64_t *dims = malloc(sizeof(int64_t) * (size_t)L), *ld = malloc(sizeof(int64_t) * (size_t)L);
  int32_t *pairs = malloc(sizeof(int32_t) * 2 * (size_t)npairs);
  const double **xs = malloc(sizeof(double *) * (size_t)L);
  re_eig **eig = calloc((size_t)L, sizeof(re_eig *));
  double *Mc = malloc(sizeof(double) * (size_t)L * (size_t)L), *Ms = malloc(sizeof(double) * (size_t)L * (size_t)L),
         *Mp = malloc(sizeof(double) * (size_t)L * (size_t)L);
  double *buf = NULL;
  if (!dims || !ld || !pairs || !xs || !eig || !Mc || !Ms || !Mp)
    return 1;
  for (int l = 0; l < L; l++)
    dims[l] = d, ld[l] = cols;
  for (int i = 0, k = 0; i < L; i++)
    for (int j = i + 1; j < L; j++, k++)
      pairs[2 * k] = i, pairs[2 * k + 1] = j;
  for (int64_t k = 0; k < (int64_t)L * L; k++)
    Mc[k] = Ms[k] = Mp[k] = NAN;
  int64_t state_len = 0;
  if (re_moments_state_len(L, dims, npairs, pairs, 0, &state_len) != RE_OK)
    return fail("state size");
  re_moments *m = NULL;
  if (re_moments_create(L, dims, npairs, pairs, 0, &m) != RE_OK)
    return fail("creating the accumulator");
  if (re_malloc(chunk, cols * (int64_t)sizeof(double), &buf) != RE_OK)
    return fail("chunk buffer");
  double t_read = 0, t_acc = 0, c_acc = 0;
  for (int64_t s = 0; s < n; s += chunk) {
    int64_t b = n - s < chunk ? n - s : chunk;
    double t0 = now();
    if (re_npy_read_rows_f64(in, s, b, buf) != RE_OK)
      return fail(data);
    for (int l = 0; l < L; l++)
      xs[l] = buf + (int64_t)l * d;
    double t1 = now(), c1 = cpu_now();
    if (re_moments_add_batch(m, b, xs, ld) != RE_OK)
      return fail("add_batch");
    t_read += t1 - t0;
    t_acc += now() - t1;
    c_acc += cpu_now() - c1;
  }
  free(buf);
  /* finalize: one eigendecomposition per layer, then every pair */
  re_cca_options opt = re_cca_defaults();
  double t0 = now(), c0 = cpu_now();
  for (int l = 0; l < L; l++) {
    int tr = 0;
    const double *C = re_moments_block(m, l, l, &tr);
    if (re_eig_create(C, d, re_moments_n(m), &eig[l]) != RE_OK)
      return fail("eigendecomposition");
  }
  double t_eig = now() - t0, t_cka = 0, t_svcca = 0, t_pwcca = 0;
  for (int i = 0; i < L; i++)
    for (int j = i + 1; j < L; j++) {
      int tr = 0;
      const double *C = re_moments_block(m, i, j, &tr);
      re_cka_result ck;
      re_cca_result sv, pw;
      double a = now();
      if (re_cka_linear_from_moments(m, i, j, 0, &ck) != RE_OK)
        return fail("cka");
      double b = now();
      if (re_svcca(eig[i], eig[j], C, tr, &opt, &sv) != RE_OK)
        return fail("svcca");
      double c = now();
      if (re_pwcca(eig[i], eig[j], C, tr, &opt, &pw) != RE_OK)
        return fail("pwcca");
      double e = now();
      t_cka += b - a, t_svcca += c - b, t_pwcca += e - c;
      Mc[i * L + j] = ck.defined ? ck.value : NAN;
      Ms[i * L + j] = sv.defined ? sv.mean_rho : NAN;
      Mp[i * L + j] = pw.defined ? pw.pwcca : NAN;
      re_cca_result_free(&sv);
      re_cca_result_free(&pw);
    }
  double c_fin = cpu_now() - c0;
  if (prefix && (write_matrix(prefix, "cka", Mc, L) || write_matrix(prefix, "svcca", Ms, L) ||
                 write_matrix(prefix, "pwcca", Mp, L)))
    return 1;
  printf("{\"n\": %lld, \"layers\": %d, \"width\": %lld, \"pairs\": %d, \"state_mb\": %.1f, \"read_s\": %.6f, "
         "\"accumulate_s\": %.6f, \"eig_s\": %.6f, \"cka_s\": %.6f, \"svcca_s\": %.6f, \"pwcca_s\": %.6f, "
         "\"finalize_s\": %.6f, \"accumulate_cpu_s\": %.6f, \"finalize_cpu_s\": %.6f}\n",
         (long long)n, L, (long long)d, npairs, 8.0 * (double)state_len / 1e6, t_read, t_acc, t_eig, t_cka, t_svcca,
         t_pwcca, t_eig + t_cka + t_svcca + t_pwcca, c_acc, c_fin);
  for (int l = 0; l < L; l++)
    re_eig_destroy(&eig[l]);
  re_moments_destroy(&m);
  re_npy_close(&in);
  free(dims), free(ld), free(pairs), free(xs), free(eig), free(Mc), free(Ms), free(Mp);
  return 0;
}
