/* Helpers of the tokenizer unit tests: build small tokenizer.json texts from
 * C arrays, encode and compare ids, and run single components (a normalizer,
 * a pre-tokenizer, a regex) through the private API to see their pieces. */
#ifndef REPEVAL_TOK_TESTUTIL_H
#define REPEVAL_TOK_TESTUTIL_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/text/tok_internal.h"
#include "check.h"
#include "repeval/tokenizer.h"

/* A growing text for JSON building. */
typedef struct tt_str {
  char *p;
  size_t n, cap;
} tt_str;

static inline void tt_cat(tt_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void tt_cat(tt_str *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (s->n + (size_t)need + 1 > s->cap) {
    s->cap = (s->n + (size_t)need + 1) * 2;
    s->p = realloc(s->p, s->cap);
    if (!s->p)
      abort();
  }
  va_start(ap, fmt);
  vsnprintf(s->p + s->n, s->cap - s->n, fmt, ap);
  va_end(ap);
  s->n += (size_t)need;
}

/* JSON string literal of s (escapes quotes, backslashes and control characters). */
static inline void tt_json_str(tt_str *s, const char *t) {
  tt_cat(s, "\"");
  for (; *t; t++) {
    unsigned char c = (unsigned char)*t;
    if (c == '"' || c == '\\')
      tt_cat(s, "\\%c", c);
    else if (c < 0x20)
      tt_cat(s, "\\u%04x", c);
    else
      tt_cat(s, "%c", c);
  }
  tt_cat(s, "\"");
}

/* {"tok0": 0, "tok1": 1, ...} */
static inline void tt_vocab(tt_str *s, const char *const *vocab, int n) {
  tt_cat(s, "{");
  for (int i = 0; i < n; i++) {
    tt_cat(s, i ? ", " : "");
    tt_json_str(s, vocab[i]);
    tt_cat(s, ": %d", i);
  }
  tt_cat(s, "}");
}

/* ["a b", ...] */
static inline void tt_merges(tt_str *s, const char *const *merges, int n) {
  tt_cat(s, "[");
  for (int i = 0; i < n; i++) {
    tt_cat(s, i ? ", " : "");
    tt_json_str(s, merges[i]);
  }
  tt_cat(s, "]");
}

/* Added tokens: vocab[ids[k]] for each listed id, special, not normalized. */
static inline void tt_specials(tt_str *s, const char *const *vocab, const int *ids, int n) {
  tt_cat(s, "[");
  for (int i = 0; i < n; i++) {
    tt_cat(s, "%s{\"id\": %d, \"content\": ", i ? ", " : "", ids[i]);
    tt_json_str(s, vocab[ids[i]]);
    tt_cat(s, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
              "\"special\": true}");
  }
  tt_cat(s, "]");
}

static inline re_tokenizer *tt_load(const tt_str *s) {
  re_tokenizer *t = NULL;
  re_status st = re_tokenizer_load_buffer(s->p, (int64_t)s->n, "test.json", &t);
  if (st != RE_OK) {
    fprintf(stderr, "load failed: %s\n", re_errmsg());
    CHECK(st == RE_OK);
  }
  return t;
}

/* Encode text and compare with the expected ids (terminated by -1). */
#define EXPECT_IDS(tok, text, special, ...)                                              \
  do {                                                                                   \
    static const int32_t want_[] = {__VA_ARGS__, -1};                                    \
    tt_expect_ids(tok, text, special, want_, __FILE__, __LINE__);                        \
  } while (0)

static inline void tt_expect_ids(re_tokenizer *tok, const char *text, int special, const int32_t *want, const char *file,
                          int line) {
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0, nw = 0;
  while (want[nw] >= 0)
    nw++;
  if (!tok) {
    check_failed_++;
    return;
  }
  re_status st = re_tokenizer_encode(tok, text, (int64_t)strlen(text), special, &ids, &n, &cap);
  int ok = st == RE_OK && n == nw && (n == 0 || !memcmp(ids, want, (size_t)n * sizeof *ids));
  if (ok) {
    check_passed_++;
  } else {
    check_failed_++;
    fprintf(stderr, "%s:%d: encode \"%s\": got", file, line, text);
    for (int64_t i = 0; i < n; i++)
      fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, " (%s), want", st == RE_OK ? "ok" : re_errmsg());
    for (int64_t i = 0; i < nw; i++)
      fprintf(stderr, " %d", want[i]);
    fprintf(stderr, "\n");
  }
  free(ids);
}

/* Decode ids (terminated by -1) and compare with the text. */
#define EXPECT_TEXT(tok, skip, text, ...)                                                \
  do {                                                                                   \
    static const int32_t ids_[] = {__VA_ARGS__, -1};                                     \
    tt_expect_text(tok, skip, text, ids_, __FILE__, __LINE__);                           \
  } while (0)

static inline void tt_expect_text(re_tokenizer *tok, int skip, const char *want, const int32_t *ids, const char *file,
                           int line) {
  int64_t n = 0, len = 0;
  char *text = NULL;
  while (ids[n] >= 0)
    n++;
  if (!tok) {
    check_failed_++;
    return;
  }
  re_status st = re_tokenizer_decode(tok, ids, n, skip, &text, &len);
  if (st == RE_OK && (size_t)len == strlen(want) && !memcmp(text, want, (size_t)len)) {
    check_passed_++;
  } else {
    check_failed_++;
    fprintf(stderr, "%s:%d: decode: got \"%s\" (%s), want \"%s\"\n", file, line, text ? text : "",
            st == RE_OK ? "ok" : re_errmsg(), want);
  }
  free(text);
}

/* Run one component given as JSON on a text; the pieces are joined with '|'. */
typedef enum { TT_NORMALIZER, TT_PRETOKENIZER } tt_kind;

static inline void tt_expect_pieces(tt_kind kind, const char *json, const char *text, const char *want, const char *file,
                             int line) {
  re_json j = {0};
  tt_str got = {0};
  re_status st = re_json_parse(json, (int64_t)strlen(json), 64, 100000, "component", 0, &j);
  tok_ctx c = {&j, "component", json, (int64_t)strlen(json)};
  tt_cat(&got, "%s", "");
  if (st == RE_OK && kind == TT_NORMALIZER) {
    tok_norm nm;
    tok_buf out = {0};
    int32_t z;
    st = tok_norm_parse(&c, &j.nodes[0], "normalizer", &nm);
    if (st == RE_OK)
      st = tok_norm_apply(&nm, text, (int64_t)strlen(text), 0, &out, &z);
    if (st == RE_OK)
      tt_cat(&got, "%.*s", (int)out.n, out.p ? out.p : "");
    tok_norm_free(&nm);
    tok_buf_free(&out);
  } else if (st == RE_OK) {
    tok_pre pt;
    tok_pieces a = {0}, b = {0}, *cur = &a, *spare = &b;
    tok_spans sp = {0};
    st = tok_pre_parse(&c, &j.nodes[0], "pre_tokenizer", &pt);
    if (st == RE_OK)
      st = tok_pieces_add(&a, text, (int64_t)strlen(text), -1, strlen(text) ? 1 : 0);
    if (st == RE_OK)
      st = tok_pre_apply(&pt, &cur, &spare, &sp);
    for (int64_t k = 0; st == RE_OK && k < cur->n; k++)
      tt_cat(&got, "%s%.*s", k ? "|" : "", (int)cur->v[k].len, cur->text.p + cur->v[k].off);
    tok_pre_free(&pt);
    tok_pieces_free(&a);
    tok_pieces_free(&b);
    free(sp.v);
  }
  if (st == RE_OK && !strcmp(got.p, want)) {
    check_passed_++;
  } else {
    check_failed_++;
    fprintf(stderr, "%s:%d: \"%s\" gave \"%s\" (%s), want \"%s\"\n", file, line, text, got.p,
            st == RE_OK ? "ok" : re_errmsg(), want);
  }
  re_json_free(&j);
  free(got.p);
}

#define EXPECT_NORM(json, text, want) tt_expect_pieces(TT_NORMALIZER, json, text, want, __FILE__, __LINE__)
#define EXPECT_PRE(json, text, want) tt_expect_pieces(TT_PRETOKENIZER, json, text, want, __FILE__, __LINE__)

#endif
