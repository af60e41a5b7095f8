/* NumPy .npy (v1/v2/v3) reading and writing, and .npz archives (read).
 *
 * An array is viewed as a matrix of rows x cols where rows = shape[0] and
 * cols = product of the remaining dimensions (1 for 1-D arrays); rows are
 * samples. Files are memory-mapped, so reading a row range touches only
 * those rows' pages (C order). */
#ifndef REPEVAL_NPY_H
#define REPEVAL_NPY_H

#include "repeval/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RE_NPY_MAX_DIMS 32
#define RE_NPY_MAX_HEADER (1 << 20) /* bytes; NumPy itself writes < 10 kB */

typedef struct re_npy_header {
  int version;                      /* 1, 2 or 3 */
  re_dtype dtype;
  int swap;                         /* stored byte order differs from the host's */
  int fortran_order;
  int ndim;                         /* 0 .. RE_NPY_MAX_DIMS */
  int64_t shape[RE_NPY_MAX_DIMS];
  int64_t count;                    /* number of elements */
  int64_t nbytes;                   /* count * itemsize */
  int64_t data_offset;              /* byte offset of the first element */
} re_npy_header;

/* Parse and validate a .npy header from the first `len` bytes of a file whose
 * total size is `len`; `name` is used in error messages. Checks magic, version,
 * header length, dict keys, dtype, shape and that the data exactly fill the rest. */
re_status re_npy_parse_header(const void *buf, int64_t len, const char *name, re_npy_header *h);

typedef struct re_npy {
  re_npy_header h;
  const uint8_t *data; /* h.nbytes bytes, mapped or owned */
  char *name;          /* file name (or archive member) for messages */
  void *map;           /* mmap base, or NULL */
  int64_t map_len;
  uint8_t *owned;      /* heap copy, or NULL */
} re_npy;

/* Open and validate a .npy file (memory-mapped). */
re_status re_npy_open(const char *path, re_npy **out);
/* Validate a .npy image held in memory; the bytes are copied. */
re_status re_npy_from_memory(const void *buf, int64_t len, const char *name, re_npy **out);
/* Release an array (NULL allowed); sets *a to NULL. */
void re_npy_close(re_npy **a);

/* shape[0] (1 for a 0-d array). */
int64_t re_npy_rows(const re_npy *a);
/* Product of shape[1:] (1 for 0-d and 1-d arrays). */
int64_t re_npy_cols(const re_npy *a);

/* Read rows [row0, row0+nrows) as doubles into out (nrows x cols, row-major). */
re_status re_npy_read_rows_f64(const re_npy *a, int64_t row0, int64_t nrows, double *out);
/* Same, as floats. */
re_status re_npy_read_rows_f32(const re_npy *a, int64_t row0, int64_t nrows, float *out);

/* Write a C-order little-endian .npy (version 1, or 2 if the header needs it)
 * atomically: a temporary file in the same folder renamed into place. */
re_status re_npy_write(const char *path, re_dtype dt, int ndim, const int64_t *shape, const void *data);

/* Encode a .npy header for (dt, ndim, shape) into buf (capacity cap); *len gets its size. */
re_status re_npy_encode_header(re_dtype dt, int ndim, const int64_t *shape, uint8_t *buf, int64_t cap,
                               int64_t *len);

/* Streaming writer: the header (with the final shape) first, then the data in
 * pieces, committed atomically only when exactly shape x itemsize bytes arrived. */
typedef struct re_npy_writer re_npy_writer;

/* Start writing `path` (C order, little-endian). */
re_status re_npy_writer_open(const char *path, re_dtype dt, int ndim, const int64_t *shape, re_npy_writer **out);
/* Append nbytes of element data. */
re_status re_npy_writer_append(re_npy_writer *w, const void *data, int64_t nbytes);
/* Check the size, then fsync and rename into place; frees the writer. */
re_status re_npy_writer_commit(re_npy_writer **w);
/* Drop the temporary file (NULL allowed); frees the writer. */
void re_npy_writer_abort(re_npy_writer **w);

/* ---- .npz ---- */

typedef struct re_npz re_npz;

/* Open a .npz (zip, stored or deflated) and list its .npy members. */
re_status re_npz_open(const char *path, re_npz **out);
/* Number of arrays in the archive. */
int64_t re_npz_count(const re_npz *z);
/* Name of array i (member name without ".npy"). */
const char *re_npz_name(const re_npz *z, int64_t i);
/* Read and validate the array called `name`. */
re_status re_npz_load(const re_npz *z, const char *name, re_npy **out);
/* Close (NULL allowed); sets *z to NULL. */
void re_npz_close(re_npz **z);

#ifdef __cplusplus
}
#endif
#endif
