/* Pre-tokenizers: ByteLevel, Split, Metaspace, BertPreTokenizer, Whitespace,
 * WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit and Sequence, as the
 * tokenizers library defines them (the pre_tokenizers/ folder and the split behaviours
 * of NormalizedString::split there). Added-token pieces pass through. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* GPT-2's split pattern, which the ByteLevel pre-tokenizer uses with use_regex. */
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- the byte-level alphabet (GPT-2 encoder.py bytes_to_unicode) ---------------------- */

/* byte -> code point: printable bytes keep theirs, the others get 256, 257, ...
 * in byte order */
static const uint16_t BYTE_CHAR[256] = {
    256, 257, 258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271,
    272, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 283, 284, 285, 286, 287,
    288, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
    48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
    64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
    80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95,
    96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
    112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 289,
    290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300, 301, 302, 303, 304, 305,
    306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321,
    322, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 323, 174, 175,
    176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191,
    192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207,
    208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223,
    224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
    240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255,
};

uint32_t tok_bytelevel_char(unsigned char b) { return BYTE_CHAR[b]; }

int tok_bytelevel_byte(uint32_t cp) {
  if (cp < 256)
    return BYTE_CHAR[cp] == cp ? (int)cp : -1;
  if (cp >= 256 + 68)
    return -1;
  for (int b = 0; b < 256; b++) /* 68 candidates: the non-printable bytes */
    if (BYTE_CHAR[b] == cp)
      return b;
  return -1;
}

/* ---- parsing ------------------------------------------------------------------------ */

static re_status parse_behavior(const tok_ctx *c, const re_json_node *obj, const char *path, int required,
                                tok_split_behavior def, tok_split_behavior *out) {
  const char *s;
  RE_TRY(tok_get_str(c, obj, path, "behavior", required, &s, NULL));
  if (!s) {
    *out = def;
    return RE_OK;
  }
  static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(s, names[i])) {
      *out = (tok_split_behavior)i;
      return RE_OK;
    }
  return tok_fail(c, RE_EUNSUPPORTED, path, tok_member(c, obj, "behavior"), "unknown split behavior \"%s\"", s);
}

re_status tok_parse_metaspace(const tok_ctx *c, const re_json_node *obj, const char *path, uint32_t *rep,
                              tok_prepend *scheme, int *split) {
  static const char *const k[] = {"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep",
                                  NULL};
  RE_TRY(tok_known_keys(c, obj, path, k));
  RE_TRY(tok_get_char(c, obj, path, "replacement", rep));
  const char *s;
  RE_TRY(tok_get_str(c, obj, path, "prepend_scheme", 0, &s, NULL));
  *scheme = TOK_PREPEND_ALWAYS;
  if (s) {
    if (!strcmp(s, "always"))
      *scheme = TOK_PREPEND_ALWAYS;
    else if (!strcmp(s, "first"))
      *scheme = TOK_PREPEND_FIRST;
    else if (!strcmp(s, "never"))
      *scheme = TOK_PREPEND_NEVER;
    else
      return tok_fail(c, RE_EUNSUPPORTED, path, tok_member(c, obj, "prepend_scheme"),
                      "unknown prepend_scheme \"%s\" (always, first or never)", s);
  }
  int aps;
  RE_TRY(tok_get_bool(c, obj, path, "add_prefix_space", -1, &aps));
  if (aps == 0) { /* the older field: false means never, and must agree */
    if (s && *scheme != TOK_PREPEND_NEVER)
      return tok_fail(c, RE_EFORMAT, path, obj, "add_prefix_space false does not match prepend_scheme \"%s\"", s);
    *scheme = TOK_PREPEND_NEVER;
  }
  return tok_get_bool(c, obj, path, "split", 1, split);
}

re_status tok_pre_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_pre *out) {
  memset(out, 0, sizeof *out);
  const char *type;
  RE_TRY(tok_get_type(c, obj, path, &type));
  static const char *const only_type[] = {"type", NULL};
  if (!strcmp(type, "ByteLevel")) {
    static const char *const k[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
    out->kind = TOK_PRE_BYTELEVEL;
    RE_TRY(tok_known_keys(c, obj, path, k));
    int trim;
    RE_TRY(tok_get_bool(c, obj, path, "trim_offsets", 1, &trim)); /* offsets only */
    RE_TRY(tok_get_bool(c, obj, path, "add_prefix_space", 1, &out->add_prefix_space));
    RE_TRY(tok_get_bool(c, obj, path, "use_regex", 1, &out->use_regex));
    if (out->use_regex)
      RE_TRY(tok_regex_new(GPT2_PATTERN, (int64_t)strlen(GPT2_PATTERN), 0, "the GPT-2 pattern", &out->re));
    return RE_OK;
  }
  if (!strcmp(type, "Split")) {
    static const char *const k[] = {"type", "pattern", "behavior", "invert", NULL};
    out->kind = TOK_PRE_SPLIT;
    RE_TRY(tok_known_keys(c, obj, path, k));
    RE_TRY(parse_behavior(c, obj, path, 1, TOK_SPLIT_REMOVED, &out->behavior));
    RE_TRY(tok_get_bool(c, obj, path, "invert", 0, &out->invert));
    return tok_parse_pattern(c, obj, path, &out->re);
  }
  if (!strcmp(type, "Metaspace")) {
    out->kind = TOK_PRE_METASPACE;
    return tok_parse_metaspace(c, obj, path, &out->replacement, &out->prepend, &out->split);
  }
  if (!strcmp(type, "BertPreTokenizer") || !strcmp(type, "Whitespace") || !strcmp(type, "WhitespaceSplit")) {
    out->kind = !strcmp(type, "BertPreTokenizer") ? TOK_PRE_BERT
                : !strcmp(type, "Whitespace")     ? TOK_PRE_WHITESPACE
                                                  : TOK_PRE_WHITESPACE_SPLIT;
    return tok_known_keys(c, obj, path, only_type);
  }
  if (!strcmp(type, "Digits")) {
    static const char *const k[] = {"type", "individual_digits", NULL};
    out->kind = TOK_PRE_DIGITS;
    RE_TRY(tok_known_keys(c, obj, path, k));
    return tok_get_bool(c, obj, path, "individual_digits", 0, &out->individual_digits);
  }
  if (!strcmp(type, "Punctuation")) {
    static const char *const k[] = {"type", "behavior", NULL};
    out->kind = TOK_PRE_PUNCTUATION;
    RE_TRY(tok_known_keys(c, obj, path, k));
    return parse_behavior(c, obj, path, 0, TOK_SPLIT_ISOLATED, &out->behavior);
  }
  if (!strcmp(type, "CharDelimiterSplit")) {
    static const char *const k[] = {"type", "delimiter", NULL};
    out->kind = TOK_PRE_DELIMITER;
    RE_TRY(tok_known_keys(c, obj, path, k));
    return tok_get_char(c, obj, path, "delimiter", &out->delimiter);
  }
  if (!strcmp(type, "Sequence")) {
    static const char *const k[] = {"type", "pretokenizers", NULL};
    out->kind = TOK_PRE_SEQUENCE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const re_json_node *list = tok_member(c, obj, "pretokenizers");
    if (!list || list->type != RE_JSON_ARRAY)
      return tok_fail(c, RE_EFORMAT, path, list ? list : obj, "\"pretokenizers\" must be an array");
    if (list->count > 64)
      return tok_fail(c, RE_EUNSUPPORTED, path, list, "more than 64 pre-tokenizers in a sequence");
    RE_TRY(re_calloc(list->count ? list->count : 1, sizeof *out->items, &out->items));
    int i = 0;
    for (const re_json_node *e = tok_node(c, list->first); e; e = tok_node(c, e->next), i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", path, i);
      out->n_items = i + 1;
      RE_TRY(tok_pre_parse(c, e, sub, &out->items[i]));
    }
    return RE_OK;
  }
  return tok_fail(c, RE_EUNSUPPORTED, path, obj, "pre-tokenizer type \"%s\" is not supported", type);
}

void tok_pre_free(tok_pre *p) {
  if (!p)
    return;
  for (int i = 0; i < p->n_items; i++)
    tok_pre_free(&p->items[i]);
  free(p->items);
  tok_regex_free(&p->re);
  memset(p, 0, sizeof *p);
}

/* ---- splitting ------------------------------------------------------------------------ */

/* Spans where each character satisfying pred is a match of its own (the library's
 * Pattern for Fn(char) -> bool). */
typedef int (*char_pred)(uint32_t c, uint32_t arg);

static re_status char_spans(const char *s, int64_t n, char_pred pred, uint32_t arg, tok_spans *out) {
  out->n = 0;
  if (n == 0)
    return tok_spans_push(out, 0, 0, 0);
  int64_t last = 0;
  for (int64_t i = 0; i < n;) {
    int l;
    uint32_t c = tok_utf8_get(s + i, &l);
    if (pred(c, arg)) {
      if (last < i)
        RE_TRY(tok_spans_push(out, last, i, 0));
      RE_TRY(tok_spans_push(out, i, i + l, 1));
      last = i + l;
    }
    i += l;
  }
  if (last < n)
    RE_TRY(tok_spans_push(out, last, n, 0));
  return RE_OK;
}

static int pred_space(uint32_t c, uint32_t arg) { return tok_uni_is_space(c); }
static int pred_punct(uint32_t c, uint32_t arg) { return tok_uni_is_punct(c); }
static int pred_numeric(uint32_t c, uint32_t arg) { return tok_uni_is_numeric(c); }
static int pred_equal(uint32_t c, uint32_t arg) { return c == arg; }

/* Apply a split behaviour to spans (in place; the result's `match` flags mean
 * "removed"), following NormalizedString::split. */
static void apply_behavior(tok_spans *sp, tok_split_behavior b) {
  int64_t n = sp->n, w = 0;
  tok_span *v = sp->v;
  switch (b) {
  case TOK_SPLIT_ISOLATED:
    for (int64_t i = 0; i < n; i++)
      v[i].match = 0;
    return;
  case TOK_SPLIT_REMOVED:
    return;
  case TOK_SPLIT_CONTIGUOUS: {
    int prev = 0;
    for (int64_t i = 0; i < n; i++) {
      int m = v[i].match;
      if (m == prev && w > 0)
        v[w - 1].end = v[i].end;
      else
        v[w++] = (tok_span){v[i].start, v[i].end, 0};
      prev = m;
    }
    break;
  }
  case TOK_SPLIT_MERGED_PREV: {
    int prev = 0;
    for (int64_t i = 0; i < n; i++) {
      int m = v[i].match;
      if (m && !prev && w > 0)
        v[w - 1].end = v[i].end;
      else
        v[w++] = (tok_span){v[i].start, v[i].end, 0};
      prev = m;
    }
    break;
  }
  case TOK_SPLIT_MERGED_NEXT: {
    /* walk backwards, growing the later piece to the left, then reverse */
    int prev = 0;
    for (int64_t i = n - 1; i >= 0; i--) {
      int m = v[i].match;
      tok_span cur = v[i];
      if (m && !prev && w > 0)
        v[n - w].start = cur.start; /* the last kept span sits at v[n - w] */
      else {
        w++;
        v[n - w] = (tok_span){cur.start, cur.end, 0};
      }
      prev = m;
    }
    memmove(v, v + n - w, (size_t)w * sizeof *v);
    break;
  }
  }
  sp->n = w;
}

/* Add the kept, non-empty spans of piece p (text t) to out. */
static re_status add_spans(const tok_piece *p, const char *t, const tok_spans *sp, tok_pieces *out) {
  for (int64_t k = 0; k < sp->n; k++) {
    const tok_span *e = &sp->v[k];
    if (e->match || e->end <= e->start)
      continue;
    int32_t z = p->zlen > e->start ? (int32_t)(p->zlen - e->start) : 0;
    RE_TRY(tok_pieces_add(out, t + e->start, e->end - e->start, -1, z));
  }
  return RE_OK;
}

/* Whitespace: \w+|[^\w\s]+ kept, the rest removed. */
static re_status split_whitespace(const tok_piece *p, const char *t, tok_pieces *out) {
  int64_t i = 0, n = p->len;
  while (i < n) {
    int l;
    uint32_t c = tok_utf8_get(t + i, &l);
    if (tok_uni_is_space(c) && !tok_uni_is_word(c)) {
      i += l;
      continue;
    }
    int word = tok_uni_is_word(c);
    int64_t j = i + l;
    while (j < n) {
      uint32_t d = tok_utf8_get(t + j, &l);
      int dw = tok_uni_is_word(d);
      if (dw != word || (!dw && tok_uni_is_space(d)))
        break;
      j += l;
    }
    int32_t z = p->zlen > i ? (int32_t)(p->zlen - i) : 0;
    RE_TRY(tok_pieces_add(out, t + i, j - i, -1, z));
    i = j;
  }
  return RE_OK;
}

/* Map every byte to its byte-level character. */
static re_status bytelevel_map(const char *s, int64_t n, int32_t zlen, tok_buf *o, int32_t *zout) {
  o->n = 0;
  RE_TRY(tok_buf_reserve(o, 2 * n));
  int64_t zo = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t cp = tok_bytelevel_char((unsigned char)s[i]);
    o->n += tok_utf8_put(cp, o->p + o->n);
    if (i + 1 <= zlen)
      zo = o->n;
  }
  o->p[o->n] = '\0';
  *zout = (int32_t)zo;
  return RE_OK;
}

/* Metaspace: spaces become the replacement, the prefix per the scheme. */
static re_status metaspace_text(const tok_pre *pt, const char *s, int64_t n, int32_t zlen, tok_buf *o,
                                int32_t *zout) {
  char rep[4];
  int rl = tok_utf8_put(pt->replacement, rep);
  o->n = 0;
  int64_t zo = 0;
  for (int64_t i = 0; i < n; i++) {
    if (s[i] == ' ')
      RE_TRY(tok_buf_add(o, rep, rl));
    else
      RE_TRY(tok_buf_add(o, s + i, 1));
    if (i + 1 <= zlen)
      zo = o->n;
  }
  int starts = o->n >= rl && !memcmp(o->p, rep, (size_t)rl);
  int prepend = !starts && (pt->prepend == TOK_PREPEND_ALWAYS || (pt->prepend == TOK_PREPEND_FIRST && zlen > 0));
  if (prepend && o->n > 0) {
    RE_TRY(tok_buf_reserve(o, rl));
    memmove(o->p + rl, o->p, (size_t)o->n + 1);
    memcpy(o->p, rep, (size_t)rl);
    o->n += rl;
    if (zo > 0)
      zo += rl;
  }
  RE_TRY(tok_buf_add(o, "", 0));
  *zout = (int32_t)zo;
  return RE_OK;
}

static re_status apply_one(const tok_pre *pt, const tok_pieces *in, tok_pieces *out, tok_spans *sp) {
  tok_buf tmp = {0}, tmp2 = {0};
  re_status st = RE_OK;
  tok_pieces_reset(out);
  for (int64_t k = 0; k < in->n && st == RE_OK; k++) {
    const tok_piece *p = &in->v[k];
    const char *t = in->text.p + p->off;
    if (p->id >= 0) {
      st = tok_pieces_add(out, t, p->len, p->id, p->zlen);
      continue;
    }
    switch (pt->kind) {
    case TOK_PRE_BYTELEVEL: {
      tok_piece q = *p;
      const char *qt = t;
      if (pt->add_prefix_space && (p->len == 0 || t[0] != ' ')) {
        tmp2.n = 0;
        if ((st = tok_buf_add(&tmp2, " ", 1)) != RE_OK || (st = tok_buf_add(&tmp2, t, p->len)) != RE_OK)
          break;
        q.len = p->len + 1;
        q.zlen = p->zlen > 0 ? p->zlen + 1 : 0;
        qt = tmp2.p;
      }
      if (pt->use_regex) {
        st = tok_regex_spans(pt->re, qt, q.len, sp);
      } else {
        sp->n = 0;
        st = tok_spans_push(sp, 0, q.len, 0);
      }
      for (int64_t e = 0; e < sp->n && st == RE_OK; e++) {
        const tok_span *s = &sp->v[e];
        if (s->end <= s->start)
          continue;
        int32_t z = q.zlen > s->start ? (int32_t)(q.zlen - s->start) : 0, zo;
        st = bytelevel_map(qt + s->start, s->end - s->start, z, &tmp, &zo);
        if (st == RE_OK)
          st = tok_pieces_add(out, tmp.p, tmp.n, -1, zo);
      }
      break;
    }
    case TOK_PRE_SPLIT:
      st = tok_regex_spans(pt->re, t, p->len, sp);
      if (st != RE_OK)
        break;
      if (pt->invert)
        for (int64_t e = 0; e < sp->n; e++)
          sp->v[e].match = !sp->v[e].match;
      apply_behavior(sp, pt->behavior);
      st = add_spans(p, t, sp, out);
      break;
    case TOK_PRE_METASPACE: {
      int32_t zo;
      st = metaspace_text(pt, t, p->len, p->zlen, &tmp, &zo);
      if (st != RE_OK)
        break;
      tok_piece q = {0, tmp.n, -1, zo};
      if (pt->split) {
        st = char_spans(tmp.p, tmp.n, pred_equal, pt->replacement, sp);
        if (st != RE_OK)
          break;
        apply_behavior(sp, TOK_SPLIT_MERGED_NEXT);
        st = add_spans(&q, tmp.p, sp, out);
      } else if (tmp.n > 0) {
        st = tok_pieces_add(out, tmp.p, tmp.n, -1, zo);
      }
      break;
    }
    case TOK_PRE_BERT: {
      /* whitespace removed, then punctuation isolated */
      st = char_spans(t, p->len, pred_space, 0, sp);
      if (st != RE_OK)
        break;
      int64_t ns = sp->n;
      tok_span *words = NULL;
      st = re_malloc(ns ? ns : 1, sizeof *words, &words);
      if (st != RE_OK)
        break;
      memcpy(words, sp->v, (size_t)ns * sizeof *words);
      for (int64_t w = 0; w < ns && st == RE_OK; w++) {
        if (words[w].match || words[w].end <= words[w].start)
          continue;
        tok_piece q = {0, words[w].end - words[w].start, -1,
                       p->zlen > words[w].start ? (int32_t)(p->zlen - words[w].start) : 0};
        const char *qt = t + words[w].start;
        st = char_spans(qt, q.len, pred_punct, 0, sp);
        if (st == RE_OK) {
          apply_behavior(sp, TOK_SPLIT_ISOLATED);
          st = add_spans(&q, qt, sp, out);
        }
      }
      free(words);
      break;
    }
    case TOK_PRE_WHITESPACE:
      st = split_whitespace(p, t, out);
      break;
    case TOK_PRE_WHITESPACE_SPLIT:
    case TOK_PRE_DIGITS:
    case TOK_PRE_PUNCTUATION:
    case TOK_PRE_DELIMITER: {
      char_pred pred = pt->kind == TOK_PRE_WHITESPACE_SPLIT ? pred_space
                       : pt->kind == TOK_PRE_DIGITS         ? pred_numeric
                       : pt->kind == TOK_PRE_PUNCTUATION    ? pred_punct
                                                            : pred_equal;
      tok_split_behavior b = pt->kind == TOK_PRE_PUNCTUATION ? pt->behavior
                             : pt->kind == TOK_PRE_DIGITS
                                 ? (pt->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS)
                                 : TOK_SPLIT_REMOVED;
      st = char_spans(t, p->len, pred, pt->delimiter, sp);
      if (st == RE_OK) {
        apply_behavior(sp, b);
        st = add_spans(p, t, sp, out);
      }
      break;
    }
    case TOK_PRE_SEQUENCE:
      break;
    }
  }
  tok_buf_free(&tmp);
  tok_buf_free(&tmp2);
  return st;
}

re_status tok_pre_apply(const tok_pre *p, tok_pieces **cur, tok_pieces **spare, tok_spans *scratch) {
  if (p->kind == TOK_PRE_SEQUENCE) {
    for (int i = 0; i < p->n_items; i++)
      RE_TRY(tok_pre_apply(&p->items[i], cur, spare, scratch));
    return RE_OK;
  }
  RE_TRY(apply_one(p, *cur, *spare, scratch));
  tok_pieces *t = *cur;
  *cur = *spare;
  *spare = t;
  return RE_OK;
}
