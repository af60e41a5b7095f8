/* Configuration trees from YAML (and therefore JSON) files, parsed with libyaml.
 * Every node remembers its file, line and column so that validation errors can
 * point at the exact place ("job.yaml:12:5: unknown key 'kernal'"). */
#ifndef REPEVAL_CFG_H
#define REPEVAL_CFG_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RE_CFG_MAX_BYTES (16 << 20)
#define RE_CFG_MAX_DEPTH 64

typedef enum re_cfg_kind { RE_CFG_SCALAR = 0, RE_CFG_SEQ = 1, RE_CFG_MAP = 2 } re_cfg_kind;

typedef struct re_cfg re_cfg;
struct re_cfg {
  re_cfg_kind kind;
  const char *file; /* shared by every node of a document */
  int line, col;    /* 1-based */
  char *scalar;     /* RE_CFG_SCALAR: the text */
  int quoted;       /* scalar was quoted (then never a number/bool/null) */
  int64_t n;        /* items (seq) or entries (map) */
  re_cfg **items;   /* seq items, or map values */
  char **keys;      /* map keys */
  re_cfg **keynodes; /* map key nodes (for positions) */
};

/* Parse a YAML file (at most RE_CFG_MAX_BYTES, one document). */
re_status re_cfg_parse_file(const char *path, re_cfg **out);
/* Parse YAML text; `name` is used as the file in messages. */
re_status re_cfg_parse_string(const char *text, int64_t len, const char *name, re_cfg **out);
/* Free a tree returned by a parse function (NULL allowed); sets *c to NULL. */
void re_cfg_free(re_cfg **c);

/* Value of `key` in a map, or NULL (also NULL if c is not a map). */
const re_cfg *re_cfg_get(const re_cfg *c, const char *key);
/* Error prefix "file:line:col: " for a node, written into buf. */
const char *re_cfg_where(const re_cfg *c, char *buf, int cap);
/* Record an error at a node: "file:line:col: <message>". */
re_status re_cfg_error(const re_cfg *c, re_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Require a map whose keys are all in `allowed` (NULL-terminated). */
re_status re_cfg_expect_map(const re_cfg *c, const char *what, const char *const *allowed);
/* Typed scalar readers; errors name the position and what was expected. */
re_status re_cfg_int(const re_cfg *c, int64_t *v);
re_status re_cfg_double(const re_cfg *c, double *v);
re_status re_cfg_bool(const re_cfg *c, int *v);
re_status re_cfg_string(const re_cfg *c, const char **v);
/* A scalar that is YAML null (~, null, empty unquoted). */
int re_cfg_is_null(const re_cfg *c);

/* Optional typed members of a map: leave *v unchanged when the key is absent. */
re_status re_cfg_get_int(const re_cfg *map, const char *key, int64_t *v);
re_status re_cfg_get_double(const re_cfg *map, const char *key, double *v);
re_status re_cfg_get_bool(const re_cfg *map, const char *key, int *v);
re_status re_cfg_get_string(const re_cfg *map, const char *key, const char **v);

#ifdef __cplusplus
}
#endif
#endif
