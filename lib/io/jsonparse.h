/* Private: a strict JSON parser (RFC 8259) into a flat node table, for file
 * headers that are JSON (safetensors). Strict means: exactly one value, only
 * JSON whitespace around it, valid UTF-8, no control characters inside strings,
 * \uXXXX escapes with correctly paired surrogates, no leading zeros, and a
 * nesting depth limit. Numbers are kept as non-negative int64 when they are
 * such integers; any other number is only flagged (callers that need it refuse it). */
#ifndef REPEVAL_JSONPARSE_H
#define REPEVAL_JSONPARSE_H

#include "repeval/core.h"

typedef enum re_json_type {
  RE_JSON_NULL = 0,
  RE_JSON_FALSE,
  RE_JSON_TRUE,
  RE_JSON_NUMBER,
  RE_JSON_STRING,
  RE_JSON_ARRAY,
  RE_JSON_OBJECT
} re_json_type;

typedef enum re_json_num {
  RE_JSON_NUM_UINT = 0, /* a non-negative integer that fits int64: `num` holds it */
  RE_JSON_NUM_BIG,      /* a non-negative integer above INT64_MAX */
  RE_JSON_NUM_OTHER     /* negative, fraction or exponent */
} re_json_num;

typedef struct re_json_node {
  re_json_type type;
  int64_t pos;         /* byte offset of the value in the input */
  const char *key;     /* member name (NUL-terminated UTF-8) inside an object, else NULL */
  int64_t key_len;     /* bytes, without the NUL; a name may contain an escaped NUL */
  const char *str;     /* strings: decoded UTF-8, NUL-terminated */
  int64_t str_len;     /* bytes, without the NUL */
  re_json_num num_kind;
  int64_t num;         /* numbers of kind RE_JSON_NUM_UINT */
  int64_t count;       /* arrays and objects: number of children */
  int64_t first;       /* index of the first child, -1 if none */
  int64_t next;        /* index of the next sibling, -1 if none */
} re_json_node;

typedef struct re_json {
  re_json_node *nodes; /* nodes[0] is the root */
  int64_t count, cap;
  char *strings;       /* decoded strings, one block sized from the input */
  int64_t slen, scap;
} re_json;

/* Parse buf[0, len) as one JSON value with at most max_nodes values (memory is
 * about 100 bytes per value). Errors are RE_EFORMAT and read
 * "<label>, byte N: <what>" with N = base_offset + position in buf. */
re_status re_json_parse(const char *buf, int64_t len, int max_depth, int64_t max_nodes, const char *label,
                        int64_t base_offset, re_json *out);
/* Release the node table and strings (the struct itself is the caller's). */
void re_json_free(re_json *j);

#endif
