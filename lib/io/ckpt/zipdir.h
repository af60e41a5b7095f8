/* Private: the central directory of a zip archive held in memory (an mmap),
 * validated, so stored members can be used in place without copying.
 * Follows PKWARE's APPNOTE.TXT: end of central directory record (4.3.16), zip64
 * end record and locator (4.3.14-15), central headers (4.3.12), local headers
 * (4.3.7), zip64 extra field (4.5.3). Single-disk archives only; no encryption. */
#ifndef REPEVAL_ZIPDIR_H
#define REPEVAL_ZIPDIR_H

#include "repeval/core.h"

#define RE_ZIP_MAX_MEMBERS 1000000

typedef struct re_zip_member {
  char *name;          /* NUL-terminated; names with an embedded NUL are refused */
  int method;          /* 0 stored, 8 deflate, ... */
  uint32_t crc32;
  int64_t csize;       /* compressed bytes */
  int64_t usize;       /* uncompressed bytes */
  int64_t data_offset; /* first byte of the member's data (after its local header) */
} re_zip_member;

typedef struct re_zipdir {
  re_zip_member *m;       /* count, in central directory order */
  re_zip_member **byname; /* count, sorted by name for lookups */
  int64_t count;
} re_zipdir;

/* Read and validate the central directory of buf[0, len): every member's local
 * header must match its central entry and its data must lie before the central
 * directory. Duplicate names are refused. Errors (RE_EFORMAT / RE_EUNSUPPORTED)
 * start with `label`. */
re_status re_zipdir_parse(const uint8_t *buf, int64_t len, const char *label, re_zipdir *out);
/* The member called `name`, or NULL. */
const re_zip_member *re_zipdir_find(const re_zipdir *z, const char *name);
/* Release the directory (the struct itself is the caller's). */
void re_zipdir_free(re_zipdir *z);

#endif
