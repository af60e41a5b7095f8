/* Normalizers: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, StripAccents,
 * BertNormalizer, Prepend, Replace, Strip and Sequence, as the tokenizers
 * library defines them (its normalizers/ folder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

/* ---- parsing ------------------------------------------------------------------ */

re_status tok_parse_pattern(const tok_ctx *c, const re_json_node *obj, const char *path, tok_regex **re) {
  const re_json_node *p = tok_member(c, obj, "pattern");
  if (!p || p->type != RE_JSON_OBJECT || p->count != 1)
    return tok_fail(c, RE_EFORMAT, path, p ? p : obj,
                    "\"pattern\" must be an object {\"String\": ...} or {\"Regex\": ...}");
  const re_json_node *v = tok_node(c, p->first);
  int literal = !strcmp(v->key, "String");
  if ((!literal && strcmp(v->key, "Regex")) || v->type != RE_JSON_STRING)
    return tok_fail(c, RE_EUNSUPPORTED, path, v, "pattern kind \"%s\" is not String or Regex (with a string)",
                    v->key);
  char where[600];
  snprintf(where, sizeof where, "%s: %s.pattern (byte %lld)", c->label, path, (long long)v->pos);
  return tok_regex_new(v->str, v->str_len, literal, where, re);
}

re_status tok_norm_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_norm *out) {
  memset(out, 0, sizeof *out);
  const char *type;
  RE_TRY(tok_get_type(c, obj, path, &type));
  static const char *const only_type[] = {"type", NULL};
  if (!strcmp(type, "BertNormalizer") || !strcmp(type, "Bert")) {
    static const char *const k[] = {"type", "clean_text", "handle_chinese_chars", "strip_accents", "lowercase", NULL};
    out->kind = TOK_NORM_BERT;
    RE_TRY(tok_known_keys(c, obj, path, k));
    RE_TRY(tok_get_bool(c, obj, path, "clean_text", 1, &out->clean_text));
    RE_TRY(tok_get_bool(c, obj, path, "handle_chinese_chars", 1, &out->chinese));
    RE_TRY(tok_get_bool(c, obj, path, "lowercase", 1, &out->lowercase));
    /* strip_accents: null follows lowercase */
    RE_TRY(tok_get_bool(c, obj, path, "strip_accents", out->lowercase, &out->strip_accents));
    return RE_OK;
  }
  if (!strcmp(type, "Strip")) {
    static const char *const k[] = {"type", "strip_left", "strip_right", NULL};
    out->kind = TOK_NORM_STRIP;
    RE_TRY(tok_known_keys(c, obj, path, k));
    RE_TRY(tok_get_bool(c, obj, path, "strip_left", 1, &out->left));
    return tok_get_bool(c, obj, path, "strip_right", 1, &out->right);
  }
  static const struct {
    const char *name;
    tok_norm_kind kind;
  } simple[] = {{"StripAccents", TOK_NORM_STRIP_ACCENTS}, {"NFC", TOK_NORM_NFC},   {"NFD", TOK_NORM_NFD},
                {"NFKC", TOK_NORM_NFKC},                  {"NFKD", TOK_NORM_NFKD}, {"Lowercase", TOK_NORM_LOWERCASE}};
  for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
    if (!strcmp(type, simple[i].name)) {
      out->kind = simple[i].kind;
      return tok_known_keys(c, obj, path, only_type);
    }
  if (!strcmp(type, "Replace")) {
    static const char *const k[] = {"type", "pattern", "content", NULL};
    out->kind = TOK_NORM_REPLACE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const char *s;
    int64_t n;
    RE_TRY(tok_get_str(c, obj, path, "content", 1, &s, &n));
    RE_TRY(tok_strndup(s, n, &out->str));
    out->str_len = n;
    return tok_parse_pattern(c, obj, path, &out->re);
  }
  if (!strcmp(type, "Prepend")) {
    static const char *const k[] = {"type", "prepend", NULL};
    out->kind = TOK_NORM_PREPEND;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const char *s;
    int64_t n;
    RE_TRY(tok_get_str(c, obj, path, "prepend", 1, &s, &n));
    RE_TRY(tok_strndup(s, n, &out->str));
    out->str_len = n;
    return RE_OK;
  }
  if (!strcmp(type, "Sequence")) {
    static const char *const k[] = {"type", "normalizers", NULL};
    out->kind = TOK_NORM_SEQUENCE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const re_json_node *list = tok_member(c, obj, "normalizers");
    if (!list || list->type != RE_JSON_ARRAY)
      return tok_fail(c, RE_EFORMAT, path, list ? list : obj, "\"normalizers\" must be an array");
    if (list->count > 64)
      return tok_fail(c, RE_EUNSUPPORTED, path, list, "more than 64 normalizers in a sequence");
    RE_TRY(re_calloc(list->count ? list->count : 1, sizeof *out->items, &out->items));
    int i = 0;
    for (const re_json_node *e = tok_node(c, list->first); e; e = tok_node(c, e->next), i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.normalizers[%d]", path, i);
      out->n_items = i + 1;
      RE_TRY(tok_norm_parse(c, e, sub, &out->items[i]));
    }
    return RE_OK;
  }
  return tok_fail(c, RE_EUNSUPPORTED, path, obj, "normalizer type \"%s\" is not supported", type);
}

void tok_norm_free(tok_norm *n) {
  if (!n)
    return;
  for (int i = 0; i < n->n_items; i++)
    tok_norm_free(&n->items[i]);
  free(n->items);
  free(n->str);
  tok_regex_free(&n->re);
  memset(n, 0, sizeof *n);
}

/* ---- applying ------------------------------------------------------------------- */

static int is_chinese(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Rust's char::to_lowercase: the simple mapping, except U+0130, the only
 * unconditional multi-character lowercase mapping (SpecialCasing.txt). */
static re_status add_lower(tok_buf *o, uint32_t c) {
  if (c == 0x130)
    return tok_buf_add(o, "i\xcc\x87", 3);
  return tok_buf_add_cp(o, tok_uni_lower1(c));
}

enum charwise { CW_LOWER, CW_STRIP_ACCENTS, CW_BERT_CLEAN, CW_BERT_CHINESE, CW_DROP_MN };

/* Character by character transforms; *zout: output of the input bytes before zlen. */
static re_status charwise(enum charwise mode, const char *s, int64_t n, int32_t zlen, tok_buf *o, int32_t *zout) {
  o->n = 0;
  RE_TRY(tok_buf_reserve(o, n + n / 4 + 4));
  int64_t zo = 0;
  for (int64_t i = 0; i < n;) {
    int l;
    uint32_t c = tok_utf8_get(s + i, &l);
    switch (mode) {
    case CW_LOWER:
      if (c < 0x80) {
        char b = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        RE_TRY(tok_buf_add(o, &b, 1));
      } else {
        RE_TRY(add_lower(o, c));
      }
      break;
    case CW_STRIP_ACCENTS:
      if (!tok_uni_is_mark(c))
        RE_TRY(tok_buf_add(o, s + i, l));
      break;
    case CW_DROP_MN:
      if (!tok_uni_is_mn(c))
        RE_TRY(tok_buf_add(o, s + i, l));
      break;
    case CW_BERT_CLEAN: {
      /* removed: NUL, U+FFFD and every C* character but \t \n \r (so NEL, VT and FF
       * go too, although they are white space); then white space becomes ' ' */
      int keep_ctl = c == '\t' || c == '\n' || c == '\r';
      if (c == 0 || c == 0xFFFD || (!keep_ctl && tok_uni_is_other(c)))
        break;
      if (keep_ctl || tok_uni_is_space(c))
        RE_TRY(tok_buf_add(o, " ", 1));
      else
        RE_TRY(tok_buf_add(o, s + i, l));
      break;
    }
    case CW_BERT_CHINESE:
      if (is_chinese(c)) {
        RE_TRY(tok_buf_add(o, " ", 1));
        RE_TRY(tok_buf_add(o, s + i, l));
        RE_TRY(tok_buf_add(o, " ", 1));
      } else {
        RE_TRY(tok_buf_add(o, s + i, l));
      }
      break;
    }
    i += l;
    if (i <= zlen)
      zo = o->n;
  }
  RE_TRY(tok_buf_add(o, "", 0));
  *zout = (int32_t)zo;
  return RE_OK;
}

/* NFC / NFD / NFKC / NFKD of s into o. */
static re_status unicode_form(tok_norm_kind kind, const char *s, int64_t n, tok_buf *o) {
  int opt = UTF8PROC_STABLE;
  switch (kind) {
  case TOK_NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
  case TOK_NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
  case TOK_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
  default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  o->n = 0;
  if (n == 0)
    return tok_buf_add(o, "", 0);
  utf8proc_uint8_t *dst = NULL;
  utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
  if (r < 0)
    return re_err(RE_EDATA, "Unicode normalization failed: %s", utf8proc_errmsg(r));
  re_status st = tok_buf_add(o, dst, (int64_t)r);
  free(dst);
  return st;
}

static re_status apply_form(tok_norm_kind kind, const char *s, int64_t n, int32_t zlen, tok_buf *o, int32_t *zout) {
  RE_TRY(unicode_form(kind, s, n, o));
  *zout = 0;
  if (zlen <= 0 || o->n == 0)
    return RE_OK;
  /* the output of the first input character(s) keeps the alignment to offset 0 */
  tok_buf pre = {0};
  re_status st = unicode_form(kind, s, zlen, &pre);
  if (st == RE_OK) {
    if (pre.n <= o->n && !memcmp(pre.p, o->p, (size_t)pre.n))
      *zout = (int32_t)pre.n;
    else
      *zout = tok_utf8_seqlen((unsigned char)o->p[0]);
  }
  tok_buf_free(&pre);
  return st;
}

static re_status apply_one(const tok_norm *nm, const char *s, int64_t n, int32_t zlen, tok_buf *o, int32_t *zout,
                           tok_buf *tmp);

static re_status apply_replace(const tok_norm *nm, const char *s, int64_t n, int32_t zlen, tok_buf *o, int32_t *zout) {
  tok_spans sp = {0};
  re_status st = tok_regex_spans(nm->re, s, n, &sp);
  o->n = 0;
  int64_t zo = 0;
  for (int64_t k = 0; k < sp.n && st == RE_OK; k++) {
    const tok_span *e = &sp.v[k];
    if (e->match)
      st = tok_buf_add(o, nm->str, nm->str_len);
    else
      st = tok_buf_add(o, s + e->start, e->end - e->start);
    if (e->start < zlen)
      zo = e->match ? o->n : o->n - (e->end - (e->end < zlen ? e->end : zlen));
  }
  if (st == RE_OK)
    st = tok_buf_add(o, "", 0);
  free(sp.v);
  *zout = (int32_t)(zo < 0 ? 0 : zo);
  return st;
}

static re_status apply_one(const tok_norm *nm, const char *s, int64_t n, int32_t zlen, tok_buf *o, int32_t *zout,
                           tok_buf *tmp) {
  switch (nm->kind) {
  case TOK_NORM_NFC:
  case TOK_NORM_NFD:
  case TOK_NORM_NFKC:
  case TOK_NORM_NFKD:
    return apply_form(nm->kind, s, n, zlen, o, zout);
  case TOK_NORM_LOWERCASE:
    return charwise(CW_LOWER, s, n, zlen, o, zout);
  case TOK_NORM_STRIP_ACCENTS:
    return charwise(CW_STRIP_ACCENTS, s, n, zlen, o, zout);
  case TOK_NORM_PREPEND:
    o->n = 0;
    if (n > 0)
      RE_TRY(tok_buf_add(o, nm->str, nm->str_len));
    RE_TRY(tok_buf_add(o, s, n));
    *zout = (zlen > 0 && n > 0) ? zlen + (int32_t)nm->str_len : 0;
    return RE_OK;
  case TOK_NORM_REPLACE:
    return apply_replace(nm, s, n, zlen, o, zout);
  case TOK_NORM_STRIP: {
    int64_t a = 0, b = n;
    while (nm->left && a < b) {
      int l;
      uint32_t c = tok_utf8_get(s + a, &l);
      if (!tok_uni_is_space(c))
        break;
      a += l;
    }
    while (nm->right && b > a) {
      int64_t q = b - 1;
      while (q > a && ((unsigned char)s[q] & 0xC0) == 0x80)
        q--;
      int l;
      uint32_t c = tok_utf8_get(s + q, &l);
      if (!tok_uni_is_space(c))
        break;
      b = q;
    }
    o->n = 0;
    RE_TRY(tok_buf_add(o, s + a, b - a));
    int64_t z = a > 0 ? 0 : (zlen < b ? zlen : b);
    *zout = (int32_t)z;
    return RE_OK;
  }
  case TOK_NORM_BERT: {
    /* each step reads the previous one's output; two buffers alternate */
    const char *cur = s;
    int64_t cn = n;
    int32_t z = zlen;
    tok_buf *bufs[2] = {o, tmp};
    int w = 0;
    if (nm->clean_text) {
      RE_TRY(charwise(CW_BERT_CLEAN, cur, cn, z, bufs[w], &z));
      cur = bufs[w]->p, cn = bufs[w]->n, w ^= 1;
    }
    if (nm->chinese) {
      RE_TRY(charwise(CW_BERT_CHINESE, cur, cn, z, bufs[w], &z));
      cur = bufs[w]->p, cn = bufs[w]->n, w ^= 1;
    }
    if (nm->strip_accents) {
      RE_TRY(apply_form(TOK_NORM_NFD, cur, cn, z, bufs[w], &z));
      cur = bufs[w]->p, cn = bufs[w]->n, w ^= 1;
      RE_TRY(charwise(CW_DROP_MN, cur, cn, z, bufs[w], &z));
      cur = bufs[w]->p, cn = bufs[w]->n, w ^= 1;
    }
    if (nm->lowercase) {
      RE_TRY(charwise(CW_LOWER, cur, cn, z, bufs[w], &z));
      cur = bufs[w]->p, cn = bufs[w]->n, w ^= 1;
    }
    if (cur != o->p) {
      o->n = 0;
      RE_TRY(tok_buf_add(o, cur, cn));
    }
    *zout = z;
    return RE_OK;
  }
  case TOK_NORM_SEQUENCE:
    break;
  }
  return RE_OK;
}

re_status tok_norm_apply(const tok_norm *nm, const char *s, int64_t n, int32_t zlen, tok_buf *out, int32_t *zout) {
  tok_buf a = {0}, b = {0};
  re_status st = RE_OK;
  if (nm->kind != TOK_NORM_SEQUENCE) {
    st = apply_one(nm, s, n, zlen, out, zout, &a);
    tok_buf_free(&a);
    return st;
  }
  /* a sequence: results alternate between a and b, then go to out */
  const char *cur = s;
  int64_t cn = n;
  int32_t z = zlen;
  tok_buf *bufs[2] = {&a, &b};
  int w = 0;
  for (int i = 0; i < nm->n_items && st == RE_OK; i++) {
    st = tok_norm_apply(&nm->items[i], cur, cn, z, bufs[w], &z);
    cur = bufs[w]->p ? bufs[w]->p : "", cn = bufs[w]->n, w ^= 1;
  }
  if (st == RE_OK) {
    out->n = 0;
    st = tok_buf_add(out, cur, cn);
    *zout = z;
  }
  tok_buf_free(&a);
  tok_buf_free(&b);
  return st;
}
