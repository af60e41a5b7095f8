/* Stream embedding files into a co-moment accumulator, optionally split across
 * MPI ranks by rows and reduced in a fixed order (shared by cka, cca, spectrum). */
#include <stdlib.h>

#include "cli/cli.h"
#include "mpi/mpi_reduce.h"

#define CHUNK_ROWS 4096

static void ser(void *ctx, double *buf) { re_moments_serialize(ctx, buf); }
static re_status merge(void *ctx, const double *buf, int64_t len) { return re_moments_merge_serial(ctx, buf, len); }

re_status re_cli_moments(char *const *files, int nfiles, unsigned flags, int sharded, re_moments **out,
                         int64_t *n_out, double *scales) {
  re_status st = RE_OK;
  re_npy *in[8] = {0};
  int64_t dims[8], n = 0;
  double *buf = NULL;
  const double *xs[8];
  int32_t pairs[2 * 28];
  int npairs = 0;
  *out = NULL;
  if (nfiles < 1 || nfiles > 8)
    return re_err(RE_EINVAL, "between 1 and 8 embedding files");
  for (int k = 0; k < nfiles && st == RE_OK; k++) {
    st = re_cli_open_matrix(files[k], &in[k]);
    if (st != RE_OK)
      break;
    if (in[k]->h.ndim < 1) {
      st = re_err(RE_ESHAPE, "%s: a 0-d array is not a matrix of samples", files[k]);
      break;
    }
    dims[k] = re_npy_cols(in[k]);
    if (dims[k] == 0)
      st = re_err(RE_ESHAPE, "%s: zero features", files[k]);
    else if (k == 0)
      n = re_npy_rows(in[0]);
    else if (re_npy_rows(in[k]) != n)
      st = re_err(RE_ESHAPE, "%s has %lld rows but %s has %lld: both must hold the same samples in the same order",
                  files[0], (long long)n, files[k], (long long)re_npy_rows(in[k]));
  }
  int rank = 0, size = 1;
  if (sharded) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    st = re_mpi_agree(MPI_COMM_WORLD, st);
  }
  if (st == RE_OK) {
    for (int a = 0; a < nfiles; a++)
      for (int b = a + 1; b < nfiles; b++)
        pairs[2 * npairs] = a, pairs[2 * npairs + 1] = b, npairs++;
    if (nfiles == 1)
      pairs[0] = pairs[1] = 0, npairs = 1;
    st = re_moments_create(nfiles, dims, npairs, pairs, flags, out);
  }
  int64_t width = 0;
  for (int k = 0; k < nfiles && st == RE_OK; k++)
    width += dims[k];
  if (st == RE_OK)
    st = re_malloc(CHUNK_ROWS, width * (int64_t)sizeof(double), &buf);
  int64_t r0 = n * rank / size, r1 = n * (rank + 1) / size;
  double scale[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  for (int k = 0; k < nfiles && (st == RE_OK || sharded); k++) /* collective when sharded */
    st = re_cli_scale_of(in[k], r0, r1, sharded, &scale[k]);
  for (int64_t r = r0; r < r1 && st == RE_OK; r += CHUNK_ROWS) {
    int64_t b = r1 - r < CHUNK_ROWS ? r1 - r : CHUNK_ROWS;
    double *p = buf;
    for (int k = 0; k < nfiles && st == RE_OK; k++) {
      st = re_cli_read_rows_finite(in[k], r, b, scale[k], p);
      xs[k] = p;
      p += b * dims[k];
    }
    if (st == RE_OK)
      st = re_moments_add_batch(*out, b, xs, dims);
  }
  if (sharded) {
    st = re_mpi_agree(MPI_COMM_WORLD, st);
    if (st == RE_OK) {
      re_reducible red = {*out, re_moments_serial_len(*out), ser, merge};
      st = re_mpi_reduce_ordered(MPI_COMM_WORLD, &red);
    }
  }
  for (int k = 0; k < nfiles; k++)
    re_npy_close(&in[k]);
  free(buf);
  if (st != RE_OK)
    re_moments_destroy(out);
  *n_out = n;
  for (int k = 0; scales && k < nfiles; k++)
    scales[k] = scale[k];
  return st;
}
