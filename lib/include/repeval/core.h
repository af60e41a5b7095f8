/* repeval core: status codes, errors with context, logging, checked allocation.
 *
 * Every fallible library function returns re_status. On failure it also leaves a
 * human-readable message (file, key, offset, expected vs got) in a thread-local
 * buffer, read with re_errmsg(). Library code never exits; only main() decides. */
#ifndef REPEVAL_CORE_H
#define REPEVAL_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REPEVAL_VERSION "0.1.0"

typedef enum re_status {
  RE_OK = 0,
  RE_EINVAL = 1,       /* invalid argument or option */
  RE_EIO = 2,          /* the operating system refused a read/write/open */
  RE_ENOMEM = 3,       /* allocation failed or a size overflowed */
  RE_EFORMAT = 4,      /* a file does not follow its format */
  RE_EUNSUPPORTED = 5, /* valid input we do not handle (dtype, opcode, ...) */
  RE_ESHAPE = 6,       /* shapes do not fit together */
  RE_EUNDEFINED = 7,   /* a metric is mathematically undefined for this input */
  RE_EDATA = 8,        /* NaN/Inf or otherwise unusable values */
  RE_EMPI = 9,         /* an MPI call failed */
  RE_EINTERRUPTED = 10 /* stopped by a signal; state was saved */
} re_status;

/* Short name of a status code ("format error", ...). */
const char *re_status_str(re_status st);

/* Record an error message (printf-style) and return `st`, for `return re_err(...)`. */
re_status re_err(re_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepend context ("reading X.npy: ") to the current message; returns `st`. */
re_status re_err_context(re_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message of the last error recorded on this thread ("" if none). */
const char *re_errmsg(void);

/* Forget the last error message. */
void re_err_clear(void);

/* Propagate a failing status to the caller. */
#define RE_TRY(expr)                 \
  do {                               \
    re_status re_try_s_ = (expr);    \
    if (re_try_s_ != RE_OK)          \
      return re_try_s_;              \
  } while (0)

/* Store a failing status in `st` and jump to the function's `done:` cleanup block. */
#define RE_CHECK(expr)               \
  do {                               \
    st = (expr);                     \
    if (st != RE_OK)                 \
      goto done;                     \
  } while (0)

/* ---- logging ---------------------------------------------------------- */

typedef enum re_log_level {
  RE_LOG_ERROR = 0,
  RE_LOG_WARN = 1,
  RE_LOG_INFO = 2,
  RE_LOG_DEBUG = 3
} re_log_level;

/* Set the level from REPEVAL_LOG (error|warn|info|debug); default warn. */
void re_log_init_from_env(void);
/* Set the level explicitly. */
void re_log_set_level(re_log_level level);
/* Current level. */
re_log_level re_log_get_level(void);
/* Tag every line with an MPI rank (negative: no tag). */
void re_log_set_rank(int rank);
/* Print one line to stderr if `level` is enabled. */
void re_log(re_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checked sizes and allocation -------------------------------------- */

/* *out = a * b for non-negative a, b; RE_ENOMEM (with message) on overflow. */
re_status re_mul_i64(int64_t a, int64_t b, int64_t *out);
/* *out = a + b for non-negative a, b; RE_ENOMEM on overflow. */
re_status re_add_i64(int64_t a, int64_t b, int64_t *out);

/* Allocate count * size bytes (overflow-checked, zeroed). *out is NULL on failure. */
re_status re_calloc(int64_t count, int64_t size, void *out);
/* Allocate count * size bytes (overflow-checked, not zeroed). */
re_status re_malloc(int64_t count, int64_t size, void *out);
/* As re_malloc, for a buffer that will be written whole: one of 8 MiB or more is backed
 * by transparent huge pages where the kernel offers them (a page fault per 2 MiB, not per
 * 4 KiB; a hint, nothing changes where it is refused). */
re_status re_malloc_whole(int64_t count, int64_t size, void *out);
/* re_calloc with re_malloc_whole's huge-page hint. */
re_status re_calloc_whole(int64_t count, int64_t size, void *out);
/* Resize *p to count * size bytes (overflow-checked); *p unchanged on failure. */
re_status re_realloc(void *p, int64_t count, int64_t size);
/* Free *p (may be NULL) and set it to NULL. `p` is the address of a pointer. */
void re_free(void *p);
/* strdup that reports RE_ENOMEM. */
re_status re_strdup(const char *s, char **out);

/* ---- input files ------------------------------------------------------ */

/* Open a regular file for reading (O_CLOEXEC); a FIFO, device, socket or folder is
 * refused at once with its kind named, never waited on. */
re_status re_open_regular(const char *path, int *fd);
/* The same as a stdio stream ("rb"). */
re_status re_fopen_regular(const char *path, FILE **out);
/* Drop the whole pages inside [p, p + len) of a read-only file map (MAP_PRIVATE, never
 * written) from this process: they fault back from the file when read again, so the
 * resident set does not grow with what a streaming reader has read. Only for maps. */
void re_release_map_pages(const void *p, int64_t len);
/* RE_OK when path names a regular file (after links), else the refusal above. */
re_status re_check_regular(const char *path);

/* ---- hashing -------------------------------------------------------- */

#define RE_FNV1A64_INIT 0xcbf29ce484222325ULL /* the FNV-1a 64 offset basis */

/* FNV-1a 64 of n bytes, continuing from h (start with RE_FNV1A64_INIT). */
uint64_t re_fnv1a64(uint64_t h, const void *p, size_t n);
/* FNV-1a 64 of a file's bytes continuing from h; *bytes (may be NULL) gets its size. */
re_status re_fnv1a64_file(uint64_t h, const char *path, uint64_t *out, int64_t *bytes);

/* SHA-256 (FIPS 180-4), incrementally: init, update with any pieces, final. */
typedef struct re_sha256 {
  uint32_t h[8];
  uint64_t len;     /* bytes so far */
  uint8_t buf[64];  /* a partial block */
  unsigned fill;
} re_sha256;
void re_sha256_init(re_sha256 *s);
void re_sha256_update(re_sha256 *s, const void *p, size_t n);
/* The 32-byte digest; s must be initialised again before reuse. */
void re_sha256_final(re_sha256 *s, uint8_t out[32]);
/* A digest as 64 lowercase hex digits and a NUL. */
void re_sha256_hex(const uint8_t digest[32], char hex[65]);
/* SHA-256 of a regular file's bytes as hex; *bytes (may be NULL) gets its size. */
re_status re_sha256_file(const char *path, char hex[65], int64_t *bytes);

#ifdef __cplusplus
}
#endif
#endif
