/* JSON Lines corpora: one JSON object per line (LF or CRLF; blank lines are
 * skipped; a UTF-8 byte-order mark at the start of a file is ignored), parsed
 * strictly (lib/io/jsonparse.c). The string member `field` is a document; the
 * optional member `label_field` is its class: a non-negative integer, or a string
 * (classes numbered in order of first appearance); the first label fixes which.
 * Open parses every line once and keeps each line's offset; a read parses the
 * line again and hands the text to the sequencer (ds_seq.c). */
#include "ds_corpus.h"
#include "ds_seq.h"
#include "../jsonparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSONL_MAX_DEPTH 64
#define JSONL_MAX_VALUES (1 << 20) /* per line */

typedef struct jsonl_ds {
  re_ds_corpus c;
  char *field, *label_field;
  re_json j;            /* the line last parsed: the text points into it */
  int label_kind;       /* 0 none yet, 1 integers, 2 strings */
  char **names;         /* string labels by class */
  int64_t nnames, names_cap;
  int64_t *slots;       /* open-addressing table of class indices + 1 (0 empty) */
  int64_t nslots;
} jsonl_ds;

static void jsonl_close(void *impl) {
  jsonl_ds *d = (jsonl_ds *)impl;
  re_ds_corpus_free(&d->c);
  re_json_free(&d->j);
  free(d->field);
  free(d->label_field);
  for (int64_t k = 0; k < d->nnames; k++)
    free(d->names[k]);
  free(d->names);
  free(d->slots);
  free(d);
}

static const re_json_node *find_member(const re_json *j, const char *key, int *twice) {
  const re_json_node *hit = NULL;
  *twice = 0;
  for (int64_t c = j->nodes[0].first; c >= 0; c = j->nodes[c].next) {
    const re_json_node *n = &j->nodes[c];
    if ((size_t)n->key_len == strlen(key) && !memcmp(n->key, key, (size_t)n->key_len)) {
      if (hit)
        *twice = 1;
      hit = n;
    }
  }
  return hit;
}

static const char *type_name(re_json_type t) {
  switch (t) {
  case RE_JSON_NULL: return "null";
  case RE_JSON_FALSE:
  case RE_JSON_TRUE: return "a boolean";
  case RE_JSON_NUMBER: return "a number";
  case RE_JSON_STRING: return "a string";
  case RE_JSON_ARRAY: return "an array";
  default: return "an object";
  }
}

/* Parse line [a, a + n) of the mapped file into d->j and find the text member. */
static re_status parse_line(jsonl_ds *d, const char *where, const char *line, int64_t a, int64_t n,
                            const re_json_node **text) {
  re_json_free(&d->j);
  RE_TRY(re_json_parse(line, n, JSONL_MAX_DEPTH, JSONL_MAX_VALUES, where, a, &d->j));
  if (d->j.nodes[0].type != RE_JSON_OBJECT)
    return re_err(RE_EFORMAT, "%s: the line is %s, not a JSON object", where, type_name(d->j.nodes[0].type));
  int twice;
  const re_json_node *t = find_member(&d->j, d->field, &twice);
  if (!t)
    return re_err(RE_EFORMAT, "%s: the object has no \"%s\" member (the text field)", where, d->field);
  if (twice)
    return re_err(RE_EFORMAT, "%s: the object has \"%s\" twice", where, d->field);
  if (t->type != RE_JSON_STRING)
    return re_err(RE_EFORMAT, "%s, byte %lld: \"%s\" is %s, not a string", where, (long long)(a + t->pos), d->field,
                  type_name(t->type));
  *text = t;
  return RE_OK;
}

static uint64_t hash(const char *s, int64_t n) { return re_fnv1a64(RE_FNV1A64_INIT, s, (size_t)n); }

/* Class index of a string label, adding it when new. */
static re_status class_of(jsonl_ds *d, const char *s, int64_t n, int32_t *out) {
  if (2 * (d->nnames + 1) > d->nslots) {
    int64_t ns = d->nslots ? 2 * d->nslots : 64;
    int64_t *slots = NULL;
    RE_TRY(re_calloc(ns, sizeof *slots, &slots));
    for (int64_t k = 0; k < d->nnames; k++) {
      uint64_t h = hash(d->names[k], (int64_t)strlen(d->names[k]));
      int64_t at = (int64_t)(h & (uint64_t)(ns - 1));
      while (slots[at])
        at = (at + 1) & (ns - 1);
      slots[at] = k + 1;
    }
    free(d->slots);
    d->slots = slots, d->nslots = ns;
  }
  int64_t at = (int64_t)(hash(s, n) & (uint64_t)(d->nslots - 1));
  for (; d->slots[at]; at = (at + 1) & (d->nslots - 1)) {
    const char *name = d->names[d->slots[at] - 1];
    if ((int64_t)strlen(name) == n && !memcmp(name, s, (size_t)n)) {
      *out = (int32_t)(d->slots[at] - 1);
      return RE_OK;
    }
  }
  if (d->nnames >= RE_DS_MAX_LABEL)
    return re_err(RE_EUNSUPPORTED, "more than %d distinct labels", RE_DS_MAX_LABEL);
  if (d->nnames == d->names_cap) {
    int64_t cap = d->names_cap ? 2 * d->names_cap : 16;
    RE_TRY(re_realloc(&d->names, cap, sizeof *d->names));
    d->names_cap = cap;
  }
  char *copy = NULL;
  RE_TRY(re_malloc(n + 1, 1, &copy));
  memcpy(copy, s, (size_t)n);
  copy[n] = '\0';
  d->names[d->nnames] = copy;
  d->slots[at] = ++d->nnames;
  *out = (int32_t)(d->nnames - 1);
  return RE_OK;
}

static re_status read_label(jsonl_ds *d, const char *where, int64_t a, int32_t *label) {
  int twice;
  const re_json_node *l = find_member(&d->j, d->label_field, &twice);
  if (!l)
    return re_err(RE_EFORMAT, "%s: the object has no \"%s\" member (the label field)", where, d->label_field);
  if (twice)
    return re_err(RE_EFORMAT, "%s: the object has \"%s\" twice", where, d->label_field);
  int kind = l->type == RE_JSON_NUMBER ? 1 : l->type == RE_JSON_STRING ? 2 : 0;
  if (!kind || (d->label_kind && kind != d->label_kind))
    return re_err(RE_EFORMAT, "%s, byte %lld: label \"%s\" is %s; the labels are %s", where, (long long)(a + l->pos),
                  d->label_field, type_name(l->type),
                  d->label_kind == 1   ? "integers (as the first label)"
                  : d->label_kind == 2 ? "strings (as the first label)"
                                       : "integers or strings");
  d->label_kind = kind;
  if (kind == 2)
    return class_of(d, l->str, l->str_len, label);
  if (l->num_kind != RE_JSON_NUM_UINT || l->num > RE_DS_MAX_LABEL)
    return re_err(RE_EFORMAT, "%s, byte %lld: label \"%s\" is not an integer in 0 .. %d", where,
                  (long long)(a + l->pos), d->label_field, RE_DS_MAX_LABEL);
  *label = (int32_t)l->num;
  return RE_OK;
}

static re_status scan_file(jsonl_ds *d, re_ds_seq *s, int f) {
  const char *data;
  int64_t n, a;
  RE_TRY(re_ds_corpus_map(&d->c, f, &data, &n, &a));
  char where[1200];
  for (int64_t line = 1; a < n; line++) {
    const char *nl = memchr(data + a, '\n', (size_t)(n - a));
    int64_t b = nl ? nl - data : n;
    if (!re_ds_text_blank(data + a, b - a)) {
      snprintf(where, sizeof where, "%s:%lld", d->c.names[f], (long long)line);
      if (b - a > RE_DS_MAX_DOC)
        return re_err(RE_EUNSUPPORTED, "%s: a line of %lld bytes (at most %d)", where, (long long)(b - a),
                      RE_DS_MAX_DOC);
      const re_json_node *t;
      RE_TRY(parse_line(d, where, data + a, a, b - a, &t));
      int32_t label = -1;
      if (d->label_field)
        RE_TRY(read_label(d, where, a, &label));
      if (!re_ds_text_blank(t->str, t->str_len)) {
        RE_TRY(re_ds_corpus_add(&d->c, f, a, b - a));
        RE_TRY(re_ds_seq_doc(s, t->str, t->str_len, label, where));
      }
    }
    a = b + 1;
  }
  re_json_free(&d->j);
  return RE_OK;
}

static re_status jsonl_text(void *impl, int64_t k, const char **text, int64_t *len) {
  jsonl_ds *d = (jsonl_ds *)impl;
  const char *line;
  int64_t n;
  RE_TRY(re_ds_corpus_doc(&d->c, k, &line, &n));
  const re_json_node *t;
  if (parse_line(d, d->c.names[d->c.file[k]], line, d->c.off[k], n, &t) != RE_OK) {
    char where[1200]; /* counting lines costs a pass over the file: only for the message */
    re_ds_corpus_where(&d->c, k, where, sizeof where);
    RE_TRY(parse_line(d, where, line, d->c.off[k], n, &t));
  }
  *text = t->str;
  *len = t->str_len;
  return RE_OK;
}

static void jsonl_where(void *impl, int64_t k, char *buf, size_t cap) {
  re_ds_corpus_where(&((jsonl_ds *)impl)->c, k, buf, cap);
}

static const re_ds_docs_ops jsonl_docs = {jsonl_text, jsonl_where, jsonl_close};

re_status re_dataset_open_jsonl(const char *const *files, int nfiles, const char *field, const char *label_field,
                                const re_text_options *opt, re_dataset **out) {
  re_status st = RE_OK;
  jsonl_ds *d = NULL;
  re_ds_seq *s = NULL;
  *out = NULL;
  if (nfiles < 1)
    return re_err(RE_EINVAL, "jsonl: no files given");
  if (!field || !*field)
    return re_err(RE_EINVAL, "jsonl: the text field must be named");
  if (label_field && !*label_field)
    return re_err(RE_EINVAL, "jsonl: the label field name is empty");
  RE_CHECK(re_ds_seq_new(opt, "jsonl", label_field != NULL, &s));
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  RE_CHECK(re_ds_corpus_init(&d->c, files, nfiles, 1));
  RE_CHECK(re_strdup(field, &d->field));
  if (label_field)
    RE_CHECK(re_strdup(label_field, &d->label_field));
  for (int f = 0; f < nfiles; f++)
    RE_CHECK(scan_file(d, s, f));
  char **names = d->label_kind == 2 ? d->names : NULL;
  int64_t nnames = names ? d->nnames : 0;
  if (names)
    d->names = NULL, d->nnames = 0;
  return re_ds_seq_finish(&s, &jsonl_docs, d, names, nnames, out);
done:
  re_ds_seq_free(&s);
  if (d)
    jsonl_close(d);
  return st;
}
