/* Tokenizer building blocks: buffers, UTF-8, Unicode classes, hash maps,
 * piece and string lists. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

/* ---- buffers --------------------------------------------------------------- */

re_status tok_buf_reserve(tok_buf *b, int64_t extra) {
  int64_t need;
  RE_TRY(re_add_i64(b->n, extra, &need));
  if (need + 1 <= b->cap)
    return RE_OK;
  int64_t cap = b->cap ? b->cap : 64;
  while (cap < need + 1) {
    if (cap > INT64_MAX / 2)
      return re_err(RE_ENOMEM, "text buffer of %lld bytes is too large", (long long)need);
    cap *= 2;
  }
  RE_TRY(re_realloc(&b->p, cap, 1));
  b->cap = cap;
  return RE_OK;
}

re_status tok_buf_add(tok_buf *b, const void *s, int64_t n) {
  RE_TRY(tok_buf_reserve(b, n));
  if (n)
    memcpy(b->p + b->n, s, (size_t)n);
  b->n += n;
  b->p[b->n] = '\0';
  return RE_OK;
}

re_status tok_buf_add_cp(tok_buf *b, uint32_t cp) {
  char u[4];
  return tok_buf_add(b, u, tok_utf8_put(cp, u));
}

re_status tok_strndup(const char *s, int64_t n, char **out) {
  RE_TRY(re_malloc(n + 1, 1, out));
  memcpy(*out, s, (size_t)n);
  (*out)[n] = '\0';
  return RE_OK;
}

void tok_buf_free(tok_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static re_status grow(void *pp, int64_t *cap, int64_t need, int64_t size) {
  if (need <= *cap)
    return RE_OK;
  int64_t c = *cap ? *cap : 16;
  while (c < need) {
    if (c > INT64_MAX / 4)
      return re_err(RE_ENOMEM, "list of %lld elements is too large", (long long)need);
    c *= 2;
  }
  RE_TRY(re_realloc(pp, c, size));
  *cap = c;
  return RE_OK;
}

re_status tok_ids_push(tok_ids *a, int32_t id) {
  RE_TRY(grow(&a->v, &a->cap, a->n + 1, sizeof *a->v));
  a->v[a->n++] = id;
  return RE_OK;
}

re_status tok_ids_add(tok_ids *a, const int32_t *ids, int64_t n) {
  RE_TRY(grow(&a->v, &a->cap, a->n + n, sizeof *a->v));
  if (n)
    memmove(a->v + a->n, ids, (size_t)n * sizeof *ids);
  a->n += n;
  return RE_OK;
}

re_status tok_spans_push(tok_spans *s, int64_t start, int64_t end, int match) {
  RE_TRY(grow(&s->v, &s->cap, s->n + 1, sizeof *s->v));
  s->v[s->n++] = (tok_span){start, end, match};
  return RE_OK;
}

/* ---- UTF-8 ------------------------------------------------------------------ */

int tok_utf8_put(uint32_t cp, char *o) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
int64_t tok_utf8_check(const char *str, int64_t n) {
  const unsigned char *s = (const unsigned char *)str;
  int64_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0)
        lo = 0xA0;
      if (c == 0xED)
        hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0)
        lo = 0x90;
      if (c == 0xF4)
        hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
      return i;
    for (int k = 2; k < len; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF)
        return i;
    i += len;
  }
  return -1;
}

int64_t tok_utf8_count(const char *s, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++)
    c += ((unsigned char)s[i] & 0xC0) != 0x80;
  return c;
}

/* ---- Unicode classes -------------------------------------------------------- */

int tok_uni_is_space(uint32_t c) {
  if (c < 0x80)
    return c == ' ' || (c >= 0x09 && c <= 0x0D);
  switch (c) {
  case 0x85:
  case 0xA0:
  case 0x1680:
  case 0x2028:
  case 0x2029:
  case 0x202F:
  case 0x205F:
  case 0x3000:
    return 1;
  default:
    return c >= 0x2000 && c <= 0x200A;
  }
}

/* \w of the regex crate: Alphabetic, M, Nd, Pc, Join_Control. Alphabetic is L,
 * Nl and Other_Alphabetic, whose members outside L and M are the circled and
 * squared Latin letters (So) listed here. */
int tok_uni_is_word(uint32_t c) {
  if (c < 0x80)
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  switch (utf8proc_category((utf8proc_int32_t)c)) {
  case UTF8PROC_CATEGORY_LU:
  case UTF8PROC_CATEGORY_LL:
  case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM:
  case UTF8PROC_CATEGORY_LO:
  case UTF8PROC_CATEGORY_MN:
  case UTF8PROC_CATEGORY_MC:
  case UTF8PROC_CATEGORY_ME:
  case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL:
  case UTF8PROC_CATEGORY_PC:
    return 1;
  default:
    return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
           (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
  }
}

int tok_uni_is_punct(uint32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int tok_uni_is_numeric(uint32_t c) {
  if (c < 0x80)
    return c >= '0' && c <= '9';
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int tok_uni_is_other(uint32_t c) {
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_CN || k >= UTF8PROC_CATEGORY_CC;
}

int tok_uni_is_mark(uint32_t c) {
  if (c < 0x300)
    return 0;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

int tok_uni_is_mn(uint32_t c) { return c >= 0x300 && utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN; }

uint32_t tok_uni_lower1(uint32_t c) {
  if (c < 0x80)
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

/* ---- string map -------------------------------------------------------------- */

uint64_t tok_hash_bytes(const char *s, int64_t n) {
  /* FNV-1a with a final avalanche, so the low bits used for slots are mixed */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

static re_status strmap_rehash(tok_strmap *m, int64_t cap) {
  struct tok_strent *slots;
  RE_TRY(re_malloc(cap, sizeof *slots, &slots));
  for (int64_t i = 0; i < cap; i++)
    slots[i].off = -1;
  for (int64_t i = 0; i < m->cap; i++) {
    if (m->slots[i].off < 0)
      continue;
    int64_t k = (int64_t)(m->slots[i].hash & (uint64_t)(cap - 1));
    while (slots[k].off >= 0)
      k = (k + 1) & (cap - 1);
    slots[k] = m->slots[i];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return RE_OK;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *s, int64_t n) {
  if (!m->cap)
    return -1;
  uint64_t h = tok_hash_bytes(s, n);
  int64_t k = (int64_t)(h & (uint64_t)(m->cap - 1));
  for (;;) {
    const struct tok_strent *e = &m->slots[k];
    if (e->off < 0)
      return -1;
    if (e->hash == h && e->len == n && !memcmp(m->pool.p + e->off, s, (size_t)n))
      return e->val;
    k = (k + 1) & (m->cap - 1);
  }
}

re_status tok_strmap_put(tok_strmap *m, const char *s, int64_t n, int32_t val, int32_t *old) {
  if (old)
    *old = -1;
  if (n > INT32_MAX)
    return re_err(RE_EFORMAT, "a token of %lld bytes is too long", (long long)n);
  if ((m->count + 1) * 2 > m->cap)
    RE_TRY(strmap_rehash(m, m->cap ? m->cap * 2 : 64));
  uint64_t h = tok_hash_bytes(s, n);
  int64_t k = (int64_t)(h & (uint64_t)(m->cap - 1));
  for (;;) {
    struct tok_strent *e = &m->slots[k];
    if (e->off < 0)
      break;
    if (e->hash == h && e->len == n && !memcmp(m->pool.p + e->off, s, (size_t)n)) {
      if (old)
        *old = e->val;
      e->val = val;
      return RE_OK;
    }
    k = (k + 1) & (m->cap - 1);
  }
  int64_t off = m->pool.n;
  RE_TRY(tok_buf_add(&m->pool, s, n));
  RE_TRY(tok_buf_add(&m->pool, "", 1)); /* keys stay NUL-terminated in the pool */
  m->slots[k] = (struct tok_strent){h, off, (int32_t)n, val};
  m->count++;
  return RE_OK;
}

void tok_strmap_clear(tok_strmap *m) {
  for (int64_t i = 0; i < m->cap; i++)
    m->slots[i].off = -1;
  m->count = 0;
  m->pool.n = 0;
}

void tok_strmap_free(tok_strmap *m) {
  free(m->slots);
  tok_buf_free(&m->pool);
  memset(m, 0, sizeof *m);
}

/* ---- pair map ------------------------------------------------------------------- */

static uint64_t pair_hash(uint64_t key) {
  key ^= key >> 31;
  key *= 0x9e3779b97f4a7c15ULL;
  key ^= key >> 29;
  return key;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
  if (!m->cap)
    return 0;
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  int64_t k = (int64_t)(pair_hash(key) & (uint64_t)(m->cap - 1));
  for (;;) {
    const struct tok_pairent *e = &m->slots[k];
    if (e->key == UINT64_MAX)
      return 0;
    if (e->key == key) {
      *rank = e->rank;
      *id = e->id;
      return 1;
    }
    k = (k + 1) & (m->cap - 1);
  }
}

static re_status pairmap_rehash(tok_pairmap *m, int64_t cap) {
  struct tok_pairent *slots;
  RE_TRY(re_malloc(cap, sizeof *slots, &slots));
  for (int64_t i = 0; i < cap; i++)
    slots[i].key = UINT64_MAX;
  for (int64_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key == UINT64_MAX)
      continue;
    int64_t k = (int64_t)(pair_hash(m->slots[i].key) & (uint64_t)(cap - 1));
    while (slots[k].key != UINT64_MAX)
      k = (k + 1) & (cap - 1);
    slots[k] = m->slots[i];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return RE_OK;
}

re_status tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
  if ((m->count + 1) * 2 > m->cap)
    RE_TRY(pairmap_rehash(m, m->cap ? m->cap * 2 : 64));
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  int64_t k = (int64_t)(pair_hash(key) & (uint64_t)(m->cap - 1));
  while (m->slots[k].key != UINT64_MAX && m->slots[k].key != key)
    k = (k + 1) & (m->cap - 1);
  if (m->slots[k].key == UINT64_MAX)
    m->count++;
  m->slots[k] = (struct tok_pairent){key, rank, id};
  return RE_OK;
}

void tok_pairmap_free(tok_pairmap *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

/* ---- pieces and strings ----------------------------------------------------------- */

void tok_pieces_reset(tok_pieces *p) {
  p->n = 0;
  p->text.n = 0;
}

void tok_pieces_free(tok_pieces *p) {
  free(p->v);
  tok_buf_free(&p->text);
  memset(p, 0, sizeof *p);
}

re_status tok_pieces_add(tok_pieces *p, const char *s, int64_t len, int32_t id, int32_t zlen) {
  RE_TRY(grow(&p->v, &p->cap, p->n + 1, sizeof *p->v));
  int64_t off = p->text.n;
  RE_TRY(tok_buf_add(&p->text, s, len));
  p->v[p->n++] = (tok_piece){off, len, id, zlen < 0 ? 0 : zlen > len ? (int32_t)len : zlen};
  return RE_OK;
}

re_status tok_strs_add(tok_strs *s, const char *p, int64_t n) {
  if (s->n + 1 > s->cap) {
    int64_t cap = s->cap;
    int64_t cap2 = cap;
    RE_TRY(grow(&s->off, &cap, s->n + 1, sizeof *s->off));
    RE_TRY(grow(&s->len, &cap2, s->n + 1, sizeof *s->len));
    s->cap = cap < cap2 ? cap : cap2;
  }
  s->off[s->n] = s->text.n;
  s->len[s->n] = n;
  RE_TRY(tok_buf_add(&s->text, p, n));
  s->n++;
  return RE_OK;
}

void tok_strs_reset(tok_strs *s) {
  s->n = 0;
  s->text.n = 0;
}

void tok_strs_free(tok_strs *s) {
  free(s->off);
  free(s->len);
  tok_buf_free(&s->text);
  memset(s, 0, sizeof *s);
}
