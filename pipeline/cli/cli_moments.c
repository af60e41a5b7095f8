/* Stream embedding files into a co-moment accumulator, optionally split across
 * MPI ranks by rows and reduced in a fixed order (shared by cka, cca, spectrum). */
#include <stdlib.h>

#include "cli/cli.h"
#include "mpi/mpi_reduce.h"

#define CHUNK_ROWS 4096

typedef struct batches {
  re_npy **in;
  int nfiles;
  const int64_t *dims;
  const double *scale;
  int64_t n;
  double *buf;
  re_moments *m;
} batches;

/* Rows [k CHUNK_ROWS, (k + 1) CHUNK_ROWS) of every file into the accumulator. */
static re_status add_batch(void *ctx, int64_t k) {
  batches *b = ctx;
  int64_t r = k * CHUNK_ROWS, nr = b->n - r < CHUNK_ROWS ? b->n - r : CHUNK_ROWS;
  const double *xs[8];
  double *p = b->buf;
  for (int f = 0; f < b->nfiles; f++) {
    RE_TRY(re_cli_read_rows_finite(b->in[f], r, nr, b->scale[f], p));
    xs[f] = p;
    p += nr * b->dims[f];
  }
  return re_moments_add_batch(b->m, nr, xs, b->dims);
}

re_status re_cli_moments(char *const *files, int nfiles, unsigned flags, int sharded, re_moments **out,
                         int64_t *n_out, double *scales) {
  re_status st = RE_OK;
  re_npy *in[8] = {0};
  int64_t dims[8], n = 0;
  double *buf = NULL;
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
  /* batches of CHUNK_ROWS rows, contiguous ranges of them per rank, combined along the
   * canonical tree: the same bits for any number of ranks */
  int64_t nb = (n + CHUNK_ROWS - 1) / CHUNK_ROWS;
  int64_t r0 = nb * rank / size * CHUNK_ROWS, r1 = nb * (rank + 1) / size * CHUNK_ROWS;
  r1 = r1 < n ? r1 : n;
  double scale[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  for (int k = 0; k < nfiles && st == RE_OK; k++) /* collective when sharded; st agreed above */
    st = re_cli_scale_of(in[k], r0, r1, sharded, &scale[k]);
  batches b = {in, nfiles, dims, scale, n, buf, *out};
  tree_acc acc;
  if (st == RE_OK) {
    acc = tree_moments_acc(*out);
    st = tree_stream_reduce(re_cli_comm(sharded), &acc, nb, add_batch, &b);
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
