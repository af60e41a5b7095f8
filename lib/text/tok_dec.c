/* Decoders: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, WordPiece,
 * Replace, BPEDecoder and Sequence, as the decoders/ folder of the library. Each
 * maps the list of token strings to a new list; decode joins the result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

re_status tok_dec_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_dec *d) {
  memset(d, 0, sizeof *d);
  const char *type;
  RE_TRY(tok_get_type(c, obj, path, &type));
  static const char *const only_type[] = {"type", NULL};
  if (!strcmp(type, "ByteLevel")) {
    static const char *const k[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
    d->kind = TOK_DEC_BYTELEVEL;
    return tok_known_keys(c, obj, path, k);
  }
  if (!strcmp(type, "Metaspace")) {
    int split;
    d->kind = TOK_DEC_METASPACE;
    return tok_parse_metaspace(c, obj, path, &d->ch, &d->prepend, &split);
  }
  if (!strcmp(type, "ByteFallback") || !strcmp(type, "Fuse")) {
    d->kind = type[0] == 'B' ? TOK_DEC_BYTE_FALLBACK : TOK_DEC_FUSE;
    return tok_known_keys(c, obj, path, only_type);
  }
  if (!strcmp(type, "Strip")) {
    static const char *const k[] = {"type", "content", "start", "stop", NULL};
    d->kind = TOK_DEC_STRIP;
    RE_TRY(tok_known_keys(c, obj, path, k));
    RE_TRY(tok_get_char(c, obj, path, "content", &d->ch));
    RE_TRY(tok_get_uint(c, obj, path, "start", -1, INT32_MAX, &d->start));
    return tok_get_uint(c, obj, path, "stop", -1, INT32_MAX, &d->stop);
  }
  if (!strcmp(type, "WordPiece")) {
    static const char *const k[] = {"type", "prefix", "cleanup", NULL};
    d->kind = TOK_DEC_WORDPIECE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const char *s;
    int64_t n;
    RE_TRY(tok_get_str(c, obj, path, "prefix", 0, &s, &n));
    if (!s)
      s = "##", n = 2;
    RE_TRY(tok_strndup(s, n, &d->str));
    d->str_len = n;
    return tok_get_bool(c, obj, path, "cleanup", 1, &d->cleanup);
  }
  if (!strcmp(type, "Replace") || !strcmp(type, "BPEDecoder")) {
    static const char *const kr[] = {"type", "pattern", "content", NULL};
    static const char *const kb[] = {"type", "suffix", NULL};
    int rep = type[0] == 'R';
    d->kind = rep ? TOK_DEC_REPLACE : TOK_DEC_BPE;
    RE_TRY(tok_known_keys(c, obj, path, rep ? kr : kb));
    const char *s;
    int64_t n;
    RE_TRY(tok_get_str(c, obj, path, rep ? "content" : "suffix", rep, &s, &n));
    if (!s)
      s = "</w>", n = 4;
    RE_TRY(tok_strndup(s, n, &d->str));
    d->str_len = n;
    return rep ? tok_parse_pattern(c, obj, path, &d->re) : RE_OK;
  }
  if (!strcmp(type, "Sequence")) {
    static const char *const k[] = {"type", "decoders", NULL};
    d->kind = TOK_DEC_SEQUENCE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const re_json_node *list = tok_member(c, obj, "decoders");
    if (!list || list->type != RE_JSON_ARRAY)
      return tok_fail(c, RE_EFORMAT, path, list ? list : obj, "\"decoders\" must be an array");
    if (list->count > 64)
      return tok_fail(c, RE_EUNSUPPORTED, path, list, "more than 64 decoders in a sequence");
    RE_TRY(re_calloc(list->count ? list->count : 1, sizeof *d->items, &d->items));
    int i = 0;
    for (const re_json_node *e = tok_node(c, list->first); e; e = tok_node(c, e->next), i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.decoders[%d]", path, i);
      d->n_items = i + 1;
      RE_TRY(tok_dec_parse(c, e, sub, &d->items[i]));
    }
    return RE_OK;
  }
  return tok_fail(c, RE_EUNSUPPORTED, path, obj, "decoder type \"%s\" is not supported", type);
}

void tok_dec_free(tok_dec *d) {
  if (!d)
    return;
  for (int i = 0; i < d->n_items; i++)
    tok_dec_free(&d->items[i]);
  free(d->items);
  free(d->str);
  tok_regex_free(&d->re);
  memset(d, 0, sizeof *d);
}

/* ---- applying ---------------------------------------------------------------------- */

/* Bytes to text as Rust's String::from_utf8_lossy: each maximal invalid
 * subsequence becomes one U+FFFD. */
static re_status add_lossy(tok_buf *o, const unsigned char *s, int64_t n) {
  for (int64_t i = 0; i < n;) {
    unsigned char c = s[i];
    if (c < 0x80) {
      RE_TRY(tok_buf_add(o, s + i, 1));
      i++;
      continue;
    }
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
      len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
      len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    int k = 1;
    if (len) {
      if (i + 1 < n && s[i + 1] >= lo && s[i + 1] <= hi) {
        k = 2;
        while (k < len && i + k < n && s[i + k] >= 0x80 && s[i + k] <= 0xBF)
          k++;
      }
    }
    if (len && k == len)
      RE_TRY(tok_buf_add(o, s + i, len));
    else
      RE_TRY(tok_buf_add(o, "\xEF\xBF\xBD", 3));
    i += k;
  }
  return RE_OK;
}

static int hexd(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* "<0xNN>": the byte, or -1 (u8::from_str_radix also takes "+N") */
static int fallback_byte(const char *t, int64_t n) {
  if (n != 6 || memcmp(t, "<0x", 3) || t[5] != '>')
    return -1;
  if (t[3] == '+')
    return hexd(t[4]);
  int a = hexd(t[3]), b = hexd(t[4]);
  return a < 0 || b < 0 ? -1 : a * 16 + b;
}

/* Replace every occurrence of `from` by `to` in s into o. */
static re_status replace_all(tok_buf *o, const char *s, int64_t n, const char *from, int64_t fn, const char *to,
                             int64_t tn) {
  if (fn == 0)
    return tok_buf_add(o, s, n);
  for (int64_t i = 0; i < n;) {
    if (i + fn <= n && !memcmp(s + i, from, (size_t)fn)) {
      RE_TRY(tok_buf_add(o, to, tn));
      i += fn;
    } else {
      RE_TRY(tok_buf_add(o, s + i, 1));
      i++;
    }
  }
  return RE_OK;
}

static re_status wordpiece_cleanup(tok_buf *o, tok_buf *t) {
  static const char *const pairs[][2] = {{" .", "."},   {" ?", "?"},   {" !", "!"},   {" ,", ","},
                                         {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"},
                                         {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
    t->n = 0;
    RE_TRY(replace_all(t, o->p ? o->p : "", o->n, pairs[k][0], (int64_t)strlen(pairs[k][0]), pairs[k][1],
                       (int64_t)strlen(pairs[k][1])));
    o->n = 0;
    RE_TRY(tok_buf_add(o, t->p ? t->p : "", t->n));
  }
  return RE_OK;
}

static re_status apply_one(const tok_dec *d, const tok_strs *in, tok_strs *out, tok_spans *sp) {
  tok_buf w = {0}, t = {0};
  re_status st = RE_OK;
  tok_strs_reset(out);
  switch (d->kind) {
  case TOK_DEC_BYTELEVEL:
    for (int64_t i = 0; i < in->n && st == RE_OK; i++) {
      const char *s = in->text.p + in->off[i];
      int64_t n = in->len[i], mark = t.n;
      for (int64_t k = 0; k < n && st == RE_OK;) {
        int l;
        int b = tok_bytelevel_byte(tok_utf8_get(s + k, &l));
        if (b < 0) { /* not all byte-level characters: the token's own bytes */
          t.n = mark;
          st = tok_buf_add(&t, s, n);
          break;
        }
        unsigned char ub = (unsigned char)b;
        st = tok_buf_add(&t, &ub, 1);
        k += l;
      }
    }
    if (st == RE_OK)
      st = add_lossy(&w, (const unsigned char *)(t.p ? t.p : ""), t.n);
    if (st == RE_OK)
      st = tok_strs_add(out, w.p ? w.p : "", w.n);
    break;
  case TOK_DEC_METASPACE:
    for (int64_t i = 0; i < in->n && st == RE_OK; i++) {
      const char *s = in->text.p + in->off[i];
      w.n = 0;
      for (int64_t k = 0; k < in->len[i] && st == RE_OK;) {
        int l;
        uint32_t cp = tok_utf8_get(s + k, &l);
        if (cp != d->ch)
          st = tok_buf_add(&w, s + k, l);
        else if (!(i == 0 && d->prepend != TOK_PREPEND_NEVER))
          st = tok_buf_add(&w, " ", 1);
        k += l;
      }
      if (st == RE_OK)
        st = tok_strs_add(out, w.p ? w.p : "", w.n);
    }
    break;
  case TOK_DEC_BYTE_FALLBACK:
    for (int64_t i = 0; i <= in->n && st == RE_OK; i++) {
      int b = i < in->n ? fallback_byte(in->text.p + in->off[i], in->len[i]) : -1;
      if (b >= 0) {
        unsigned char ub = (unsigned char)b;
        st = tok_buf_add(&t, &ub, 1);
        continue;
      }
      if (t.n > 0) {
        if (tok_utf8_check(t.p, t.n) < 0) {
          st = tok_strs_add(out, t.p, t.n);
        } else {
          for (int64_t k = 0; k < t.n && st == RE_OK; k++)
            st = tok_strs_add(out, "\xEF\xBF\xBD", 3);
        }
        t.n = 0;
      }
      if (i < in->n && st == RE_OK)
        st = tok_strs_add(out, in->text.p + in->off[i], in->len[i]);
    }
    break;
  case TOK_DEC_FUSE:
    st = tok_strs_add(out, in->text.p ? in->text.p : "", in->text.n);
    break;
  case TOK_DEC_STRIP:
    for (int64_t i = 0; i < in->n && st == RE_OK; i++) {
      const char *s = in->text.p + in->off[i];
      int64_t n = in->len[i], a = 0, b = n;
      for (int64_t k = 0; k < d->start && a < n; k++) {
        int l;
        if (tok_utf8_get(s + a, &l) != d->ch)
          break;
        a += l;
      }
      for (int64_t k = 0; k < d->stop && b > 0; k++) {
        int64_t q = b - 1;
        while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80)
          q--;
        int l;
        if (tok_utf8_get(s + q, &l) != d->ch)
          break;
        b = q;
      }
      st = tok_strs_add(out, s + a, b > a ? b - a : 0);
    }
    break;
  case TOK_DEC_WORDPIECE:
    for (int64_t i = 0; i < in->n && st == RE_OK; i++) {
      const char *s = in->text.p + in->off[i];
      int64_t n = in->len[i];
      w.n = 0;
      if (i != 0) {
        if (n >= d->str_len && !memcmp(s, d->str, (size_t)d->str_len))
          s += d->str_len, n -= d->str_len;
        else
          st = tok_buf_add(&w, " ", 1);
      }
      if (st == RE_OK)
        st = tok_buf_add(&w, s, n);
      if (st == RE_OK && d->cleanup)
        st = wordpiece_cleanup(&w, &t);
      if (st == RE_OK)
        st = tok_strs_add(out, w.p ? w.p : "", w.n);
    }
    break;
  case TOK_DEC_REPLACE:
    for (int64_t i = 0; i < in->n && st == RE_OK; i++) {
      const char *s = in->text.p + in->off[i];
      w.n = 0;
      st = tok_regex_spans(d->re, s, in->len[i], sp);
      for (int64_t k = 0; k < sp->n && st == RE_OK; k++)
        st = sp->v[k].match ? tok_buf_add(&w, d->str, d->str_len)
                            : tok_buf_add(&w, s + sp->v[k].start, sp->v[k].end - sp->v[k].start);
      if (st == RE_OK)
        st = tok_strs_add(out, w.p ? w.p : "", w.n);
    }
    break;
  case TOK_DEC_BPE:
    for (int64_t i = 0; i < in->n && st == RE_OK; i++) {
      w.n = 0;
      st = replace_all(&w, in->text.p + in->off[i], in->len[i], d->str, d->str_len, " ", i + 1 == in->n ? 0 : 1);
      if (st == RE_OK)
        st = tok_strs_add(out, w.p ? w.p : "", w.n);
    }
    break;
  case TOK_DEC_SEQUENCE:
    break;
  }
  tok_buf_free(&w);
  tok_buf_free(&t);
  return st;
}

re_status tok_dec_apply(const tok_dec *d, tok_strs **cur, tok_strs **spare, tok_spans *scratch) {
  if (d->kind == TOK_DEC_SEQUENCE) {
    for (int i = 0; i < d->n_items; i++)
      RE_TRY(tok_dec_apply(&d->items[i], cur, spare, scratch));
    return RE_OK;
  }
  RE_TRY(apply_one(d, *cur, *spare, scratch));
  tok_strs *t = *cur;
  *cur = *spare;
  *spare = t;
  return RE_OK;
}
