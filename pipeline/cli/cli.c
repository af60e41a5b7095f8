/* Helpers shared by the subcommands: errors, options, inputs, JSON. */
#include "cli/cli.h"
#include "mpi/mpi_reduce.h"

#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void hsic_ser(void *c, double *b) { re_hsic_serialize(c, b); }
static re_status hsic_de(void *c, const double *b) { return re_hsic_deserialize(c, b, re_hsic_serial_len(c)); }
static re_status hsic_merge(void *c, const double *b) { return re_hsic_merge_serial(c, b, re_hsic_serial_len(c)); }
static void hsic_reset(void *c) { re_hsic_reset(c); }

tree_acc re_cli_hsic_acc(re_hsic *h) { return (tree_acc){h, re_hsic_serial_len(h), hsic_ser, hsic_de, hsic_merge, hsic_reset, NULL, NULL, NULL}; }

MPI_Comm re_cli_comm(int sharded) { return sharded ? MPI_COMM_WORLD : MPI_COMM_NULL; }

int re_cli_fail(re_status st) {
  const char *msg = re_errmsg();
  fprintf(stderr, "repeval: error: %s\n", *msg ? msg : re_status_str(st));
  return RE_EXIT_ERROR;
}

int re_cli_undefined(const char *what, const char *reason) {
  fprintf(stderr, "repeval: %s undefined: %s\n", what, reason);
  return RE_EXIT_UNDEFINED;
}

int re_cli_parse_pair(const re_opts_cmd *cmd, const re_opt *opts, int argc, char **argv, char **xy) {
  const re_opts_pos pos = {.min = 2, .max = 2, .v = xy, .too_few = "give two matrices X and Y",
                           .too_many = "give exactly two matrices"};
  return re_opts_parse(cmd, opts, argc, argv, &pos);
}

int re_cli_parse_embeddings(const re_opts_cmd *cmd, const re_opt *opts, int argc, char **argv, char **files, int max,
                            int *nfiles) {
  const re_opts_pos pos = {.min = 2, .max = max, .v = files, .n = nfiles,
                           .too_few = "give at least two embeddings", .too_many = "too many files"};
  return re_opts_parse(cmd, opts, argc, argv, &pos);
}

void re_cli_rank_size(int sharded, int *rank, int *size) {
  *rank = 0;
  *size = 1;
  if (sharded) {
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
  }
}

re_status re_cli_same_rows(char *const *files, int f, int64_t n, int64_t *n0, const char *what) {
  if (*n0 >= 0 && n != *n0)
    return re_err(RE_ESHAPE, "%s has %lld rows but %s has %lld: all must hold the same %s", files[f], (long long)n,
                  files[0], (long long)*n0, what);
  *n0 = n;
  return RE_OK;
}

re_status re_cli_open_matrix(const char *spec, re_npy **out) {
  const char *colon = strstr(spec, ".npz:");
  if (!colon)
    return re_npy_open(spec, out);
  char *path;
  RE_TRY(re_strdup(spec, &path));
  path[colon - spec + 4] = '\0';
  re_npz *z = NULL;
  re_status st = re_npz_open(path, &z);
  if (st == RE_OK)
    st = re_npz_load(z, colon + 5, out);
  re_npz_close(&z);
  free(path);
  return st;
}

re_status re_cli_scale_of(const re_npy *a, int64_t r0, int64_t r1, int sharded, double *scale) {
  const int64_t chunk = 4096;
  int64_t cols = re_npy_cols(a);
  double top = 0, *buf = NULL;
  re_status st = re_malloc(chunk, (cols > 0 ? cols : 1) * (int64_t)sizeof(double), &buf);
  for (int64_t r = r0; r < r1 && st == RE_OK; r += chunk) {
    int64_t nr = r1 - r < chunk ? r1 - r : chunk;
    st = re_npy_read_rows_f64(a, r, nr, buf);
    for (int64_t k = 0; st == RE_OK && k < nr * cols; k++)
      if (isfinite(buf[k]) && fabs(buf[k]) > top)
        top = fabs(buf[k]);
  }
  free(buf);
  if (sharded) {
    st = re_mpi_agree(MPI_COMM_WORLD, st);
    double all = 0;
    if (st == RE_OK && MPI_Allreduce(&top, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
      st = re_err(RE_EMPI, "MPI_Allreduce failed");
    top = all;
  }
  int e = 0;
  if (top > 0)
    (void)frexp(top, &e); /* top = m 2^e, 0.5 <= m < 1 */
  *scale = ldexp(1.0, -e);
  return st;
}

re_status re_cli_read_rows_finite(const re_npy *a, int64_t r0, int64_t nr, double scale, double *out) {
  RE_TRY(re_npy_read_rows_f64(a, r0, nr, out));
  int64_t cols = re_npy_cols(a);
  for (int64_t k = 0; k < nr * cols; k++) {
    if (!isfinite(out[k]))
      return re_err(RE_EDATA, "%s: row %lld, column %lld is %s", a->name, (long long)(r0 + k / cols),
                    (long long)(k % cols), isnan(out[k]) ? "NaN" : "infinite");
    out[k] *= scale;
  }
  return RE_OK;
}

