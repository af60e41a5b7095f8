/* Models: BPE (merges applied by rank, lowest first, leftmost among equals;
 * byte_fallback, unk_token with fuse_unk, continuing_subword_prefix,
 * end_of_word_suffix, ignore_merges; a cache of words) and WordPiece (greedy
 * longest match first), as models/bpe and models/wordpiece of the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define TOK_MAX_ID 0x7FFFFFFE    /* ids are int32 */
#define TOK_MAX_VOCAB 16000000   /* entries of a vocabulary */
#define TOK_CACHE_MAX_WORD 256   /* longer words are not cached (the library's MAX_LENGTH) */
#define TOK_CACHE_MAX_WORDS 65536

struct tok_sym {
  int32_t c, prev, next;
  int alive;
};

struct tok_heapent {
  int32_t rank, pos, id;
};

/* ---- parsing ---------------------------------------------------------------------- */

/* vocab: {"token": id, ...}; ids unique, tokens unique */
static re_status parse_vocab(const tok_ctx *c, const re_json_node *obj, const char *path, tok_model *m) {
  const re_json_node *v = tok_member(c, obj, "vocab");
  if (!v || v->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, path, v ? v : obj, "\"vocab\" must be an object {token: id}");
  if (v->count > TOK_MAX_VOCAB)
    return tok_fail(c, RE_EUNSUPPORTED, path, v, "vocab has %lld entries, more than the limit of %d",
                    (long long)v->count, TOK_MAX_VOCAB);
  int64_t max_id = -1;
  for (const re_json_node *e = tok_node(c, v->first); e; e = tok_node(c, e->next)) {
    if (e->type != RE_JSON_NUMBER || e->num_kind != RE_JSON_NUM_UINT || e->num > TOK_MAX_ID)
      return tok_fail(c, RE_EFORMAT, path, e, "vocab id of \"%s\" must be an integer from 0 to %d", e->key,
                      TOK_MAX_ID);
    int32_t old;
    RE_TRY(tok_strmap_put(&m->vocab, e->key, e->key_len, (int32_t)e->num, &old));
    if (old >= 0)
      return tok_fail(c, RE_EFORMAT, path, e, "vocab token \"%s\" appears twice", e->key);
    if (e->num > max_id)
      max_id = e->num;
  }
  m->count = v->count;
  /* ids may have holes, but not so many that the id table dwarfs the vocabulary */
  if (max_id >= 4 * (m->count + 1024))
    return tok_fail(c, RE_EUNSUPPORTED, path, v, "vocab ids go up to %lld for %lld tokens (too sparse)",
                    (long long)max_id, (long long)m->count);
  m->n_ids = max_id + 1;
  RE_TRY(re_calloc(m->n_ids ? m->n_ids : 1, sizeof *m->names, &m->names));
  RE_TRY(re_calloc(m->n_ids ? m->n_ids : 1, sizeof *m->name_len, &m->name_len));
  for (int64_t k = 0; k < m->vocab.cap; k++) {
    const struct tok_strent *s = &m->vocab.slots[k];
    if (s->off < 0)
      continue;
    if (m->names[s->val]) {
      const re_json_node *at = NULL;
      for (const re_json_node *e = tok_node(c, v->first); e && !at; e = tok_node(c, e->next))
        if (e->num == s->val)
          at = e;
      return tok_fail(c, RE_EFORMAT, path, at, "vocab id %d is given to two tokens (\"%s\" and \"%s\")", s->val,
                      m->names[s->val], m->vocab.pool.p + s->off);
    }
    m->names[s->val] = m->vocab.pool.p + s->off;
    m->name_len[s->val] = s->len;
  }
  return RE_OK;
}

/* errors name model.merges[i]; the path is only formatted then */
#define MERGE_FAIL(...)                                                               \
  do {                                                                                \
    char sub_[128];                                                                   \
    snprintf(sub_, sizeof sub_, "%s.merges[%lld]", path, (long long)i);               \
    st = tok_fail(c, RE_EFORMAT, sub_, e, __VA_ARGS__);                               \
  } while (0)

static re_status parse_merges(const tok_ctx *c, const re_json_node *obj, const char *path, tok_model *m) {
  const re_json_node *list = tok_member(c, obj, "merges");
  if (!list || list->type != RE_JSON_ARRAY)
    return tok_fail(c, RE_EFORMAT, path, list ? list : obj, "\"merges\" must be an array");
  tok_buf cat = {0};
  re_status st = RE_OK;
  int32_t rank = 0;
  int64_t i = 0;
  for (const re_json_node *e = tok_node(c, list->first); e && st == RE_OK; e = tok_node(c, e->next), i++) {
    const char *a = NULL, *b = NULL;
    int64_t al = 0, bl = 0;
    if (e->type == RE_JSON_STRING) {
      if (e->str_len >= 8 && !memcmp(e->str, "#version", 8))
        continue; /* a merges.txt header line, skipped by the library too */
      const char *sp = memchr(e->str, ' ', (size_t)e->str_len);
      if (!sp || memchr(sp + 1, ' ', (size_t)(e->str + e->str_len - sp - 1))) {
        MERGE_FAIL("a merge string must be two tokens separated by one space");
        break;
      }
      a = e->str, al = sp - e->str, b = sp + 1, bl = e->str + e->str_len - sp - 1;
    } else if (e->type == RE_JSON_ARRAY && e->count == 2 && tok_node(c, e->first)->type == RE_JSON_STRING &&
               tok_node(c, tok_node(c, e->first)->next)->type == RE_JSON_STRING) {
      const re_json_node *x = tok_node(c, e->first), *y = tok_node(c, x->next);
      a = x->str, al = x->str_len, b = y->str, bl = y->str_len;
    } else {
      MERGE_FAIL("a merge must be \"a b\" or [\"a\", \"b\"]");
      break;
    }
    int32_t ia = tok_strmap_get(&m->vocab, a, al), ib = tok_strmap_get(&m->vocab, b, bl), inew = -1;
    if (ia < 0 || ib < 0) {
      const char *u = ia < 0 ? a : b;
      int64_t ul = ia < 0 ? al : bl;
      MERGE_FAIL("merge token \"%.*s\" is not in the vocab", (int)(ul > 200 ? 200 : ul), u);
      break;
    }
    /* the merged token is a + b without b's continuing_subword_prefix bytes */
    if (bl < m->prefix_len) {
      MERGE_FAIL("merge token \"%.*s\" is shorter than the continuing_subword_prefix", (int)bl, b);
      break;
    }
    cat.n = 0;
    if ((st = tok_buf_add(&cat, a, al)) != RE_OK || (st = tok_buf_add(&cat, b + m->prefix_len, bl - m->prefix_len)) != RE_OK)
      break;
    inew = tok_strmap_get(&m->vocab, cat.p, cat.n);
    if (inew < 0) {
      MERGE_FAIL("merged token \"%.*s\" is not in the vocab", (int)(cat.n > 200 ? 200 : cat.n), cat.p);
      break;
    }
    if (rank == INT32_MAX) {
      MERGE_FAIL("too many merges");
      break;
    }
    st = tok_pairmap_put(&m->merges, ia, ib, rank++, inew);
  }
  tok_buf_free(&cat);
  return st;
}

static re_status opt_string(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, char **out,
                            int64_t *len) {
  const char *s;
  int64_t n;
  RE_TRY(tok_get_str(c, obj, path, key, 0, &s, &n));
  if (len)
    *len = n;
  return s ? tok_strndup(s, n, out) : RE_OK;
}

re_status tok_model_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_model *m) {
  memset(m, 0, sizeof *m);
  m->unk_id = -1;
  for (int b = 0; b < 256; b++)
    m->byte_ids[b] = -1;
  if (obj->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, path, obj, "the model must be an object");
  const char *type = NULL;
  RE_TRY(tok_get_str(c, obj, path, "type", 0, &type, NULL));
  if (!type) /* files from before the "type" field: a model with merges is BPE */
    type = tok_member(c, obj, "merges") ? "BPE" : tok_member(c, obj, "max_input_chars_per_word") ? "WordPiece" : "?";
  if (!strcmp(type, "BPE")) {
    static const char *const k[] = {"type",          "dropout",        "unk_token", "continuing_subword_prefix",
                                    "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges",
                                    "vocab",         "merges",         NULL};
    m->kind = TOK_MODEL_BPE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    double dropout;
    RE_TRY(tok_get_double(c, obj, path, "dropout", 0, &dropout));
    if (dropout != 0)
      return tok_fail(c, RE_EUNSUPPORTED, path, tok_member(c, obj, "dropout"),
                      "BPE dropout %g makes encoding random; only null or 0 is supported", dropout);
    RE_TRY(opt_string(c, obj, path, "unk_token", &m->unk, NULL));
    RE_TRY(opt_string(c, obj, path, "continuing_subword_prefix", &m->prefix, &m->prefix_len));
    RE_TRY(opt_string(c, obj, path, "end_of_word_suffix", &m->suffix, &m->suffix_len));
    RE_TRY(tok_get_bool(c, obj, path, "fuse_unk", 0, &m->fuse_unk));
    RE_TRY(tok_get_bool(c, obj, path, "byte_fallback", 0, &m->byte_fallback));
    RE_TRY(tok_get_bool(c, obj, path, "ignore_merges", 0, &m->ignore_merges));
    RE_TRY(parse_vocab(c, obj, path, m));
    RE_TRY(parse_merges(c, obj, path, m));
    for (int b = 0; b < 256; b++) {
      char name[8];
      snprintf(name, sizeof name, "<0x%02X>", b);
      m->byte_ids[b] = tok_strmap_get(&m->vocab, name, 6);
    }
  } else if (!strcmp(type, "WordPiece")) {
    static const char *const k[] = {"type", "unk_token", "continuing_subword_prefix", "max_input_chars_per_word",
                                    "vocab", NULL};
    m->kind = TOK_MODEL_WORDPIECE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    RE_TRY(opt_string(c, obj, path, "unk_token", &m->unk, NULL));
    if (!m->unk)
      RE_TRY(tok_strndup("[UNK]", 5, &m->unk));
    RE_TRY(opt_string(c, obj, path, "continuing_subword_prefix", &m->prefix, &m->prefix_len));
    if (!m->prefix) {
      RE_TRY(tok_strndup("##", 2, &m->prefix));
      m->prefix_len = 2;
    }
    RE_TRY(tok_get_uint(c, obj, path, "max_input_chars_per_word", 100, INT64_MAX, &m->max_chars));
    RE_TRY(parse_vocab(c, obj, path, m));
  } else if (!strcmp(type, "Unigram") || !strcmp(type, "WordLevel")) {
    return tok_fail(c, RE_EUNSUPPORTED, path, obj, "model type \"%s\" is not supported (BPE and WordPiece are)", type);
  } else {
    return tok_fail(c, RE_EUNSUPPORTED, path, obj, "model type \"%s\" is not supported", type);
  }
  if (m->unk)
    m->unk_id = tok_strmap_get(&m->vocab, m->unk, (int64_t)strlen(m->unk));
  return RE_OK;
}

void tok_model_free(tok_model *m) {
  if (!m)
    return;
  tok_strmap_free(&m->vocab);
  tok_strmap_free(&m->cache);
  free(m->cache_ids.v);
  free(m->names);
  free(m->name_len);
  free(m->unk);
  free(m->prefix);
  free(m->suffix);
  tok_pairmap_free(&m->merges);
  free(m->syms);
  free(m->heap);
  tok_buf_free(&m->word);
  memset(m, 0, sizeof *m);
}

/* ---- BPE ------------------------------------------------------------------------------- */

static re_status unk_missing(const tok_model *m) {
  return re_err(RE_EFORMAT, "the text needs the unknown token \"%s\", which is not in the vocab", m->unk);
}

static re_status sym_push(tok_model *m, int64_t *ns, int32_t id) {
  if (*ns == m->syms_cap) {
    int64_t cap = m->syms_cap ? 2 * m->syms_cap : 64;
    RE_TRY(re_realloc(&m->syms, cap, sizeof *m->syms));
    m->syms_cap = cap;
  }
  m->syms[*ns] = (struct tok_sym){id, (int32_t)(*ns - 1), -1, 1};
  if (*ns > 0)
    m->syms[*ns - 1].next = (int32_t)*ns;
  (*ns)++;
  return RE_OK;
}

/* min-heap on (rank, pos) */
static int heap_less(const struct tok_heapent *a, const struct tok_heapent *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static re_status heap_push(tok_model *m, int64_t *nh, struct tok_heapent e) {
  if (*nh == m->heap_cap) {
    int64_t cap = m->heap_cap ? 2 * m->heap_cap : 64;
    RE_TRY(re_realloc(&m->heap, cap, sizeof *m->heap));
    m->heap_cap = cap;
  }
  int64_t i = (*nh)++;
  while (i > 0) {
    int64_t p = (i - 1) / 2;
    if (!heap_less(&e, &m->heap[p]))
      break;
    m->heap[i] = m->heap[p];
    i = p;
  }
  m->heap[i] = e;
  return RE_OK;
}

static struct tok_heapent heap_pop(tok_model *m, int64_t *nh) {
  struct tok_heapent top = m->heap[0], last = m->heap[--(*nh)];
  int64_t i = 0, n = *nh;
  for (;;) {
    int64_t l = 2 * i + 1, r = l + 1, s = i;
    const struct tok_heapent *best = &last;
    if (l < n && heap_less(&m->heap[l], best))
      s = l, best = &m->heap[l];
    if (r < n && heap_less(&m->heap[r], best))
      s = r;
    if (s == i)
      break;
    m->heap[i] = m->heap[s];
    i = s;
  }
  if (n > 0)
    m->heap[i] = last;
  return top;
}

static re_status push_pair(tok_model *m, int64_t *nh, int32_t pos) {
  int32_t rank, id;
  if (tok_pairmap_get(&m->merges, m->syms[pos].c, m->syms[m->syms[pos].next].c, &rank, &id))
    return heap_push(m, nh, (struct tok_heapent){rank, pos, id});
  return RE_OK;
}

/* The library's Word::merge_all: pop the lowest (rank, position); skip entries
 * made stale by earlier merges; merge and queue the two new neighbouring pairs. */
static re_status merge_all(tok_model *m, int64_t ns) {
  int64_t nh = 0;
  for (int64_t i = 0; i + 1 < ns; i++)
    RE_TRY(push_pair(m, &nh, (int32_t)i));
  while (nh > 0) {
    struct tok_heapent top = heap_pop(m, &nh);
    struct tok_sym *s = &m->syms[top.pos];
    if (!s->alive || s->next < 0)
      continue;
    int32_t np = s->next;
    int32_t rank, id;
    if (!tok_pairmap_get(&m->merges, s->c, m->syms[np].c, &rank, &id) || id != top.id)
      continue;
    s->c = top.id;
    s->next = m->syms[np].next;
    m->syms[np].alive = 0;
    if (s->next >= 0)
      m->syms[s->next].prev = top.pos;
    if (s->prev >= 0)
      RE_TRY(push_pair(m, &nh, s->prev));
    if (s->next >= 0)
      RE_TRY(push_pair(m, &nh, top.pos));
  }
  return RE_OK;
}

static re_status bpe_word(tok_model *m, const char *w, int64_t n, tok_ids *out) {
  int64_t ns = 0;
  int32_t unk = -1; /* a pending unknown token (fused with the next ones if fuse_unk) */
  for (int64_t i = 0; i < n;) {
    int l = tok_utf8_seqlen((unsigned char)w[i]);
    int first = i == 0, last = i + l >= n;
    const char *s = w + i;
    int64_t sl = l;
    if ((!first && m->prefix) || (last && m->suffix)) {
      m->word.n = 0;
      if (!first && m->prefix)
        RE_TRY(tok_buf_add(&m->word, m->prefix, m->prefix_len));
      RE_TRY(tok_buf_add(&m->word, w + i, l));
      if (last && m->suffix)
        RE_TRY(tok_buf_add(&m->word, m->suffix, m->suffix_len));
      s = m->word.p, sl = m->word.n;
    }
    i += l;
    int32_t id = tok_strmap_get(&m->vocab, s, sl);
    if (id >= 0) {
      if (unk >= 0) {
        RE_TRY(sym_push(m, &ns, unk));
        unk = -1;
      }
      RE_TRY(sym_push(m, &ns, id));
      continue;
    }
    if (m->byte_fallback) {
      int all = 1;
      for (int64_t k = 0; k < sl && all; k++)
        all = m->byte_ids[(unsigned char)s[k]] >= 0;
      if (all) { /* as in the library, a pending unknown token stays pending */
        for (int64_t k = 0; k < sl; k++)
          RE_TRY(sym_push(m, &ns, m->byte_ids[(unsigned char)s[k]]));
        continue;
      }
    }
    if (m->unk) {
      if (m->unk_id < 0)
        return unk_missing(m);
      if (unk >= 0 && !m->fuse_unk)
        RE_TRY(sym_push(m, &ns, unk));
      unk = m->unk_id;
    }
    /* no unk token: the character is dropped, as in the library */
  }
  if (unk >= 0)
    RE_TRY(sym_push(m, &ns, unk));
  RE_TRY(merge_all(m, ns));
  for (int64_t i = 0; i < ns; i++)
    if (m->syms[i].alive)
      RE_TRY(tok_ids_push(out, m->syms[i].c));
  return RE_OK;
}

/* ---- WordPiece ------------------------------------------------------------------------ */

static re_status wordpiece_word(tok_model *m, const char *w, int64_t n, tok_ids *out) {
  int64_t mark = out->n;
  if (tok_utf8_count(w, n) > m->max_chars)
    goto unknown;
  for (int64_t start = 0; start < n;) {
    int64_t end = n;
    int32_t id = -1;
    while (start < end) {
      const char *s = w + start;
      int64_t sl = end - start;
      if (start > 0) {
        m->word.n = 0;
        RE_TRY(tok_buf_add(&m->word, m->prefix, m->prefix_len));
        RE_TRY(tok_buf_add(&m->word, w + start, end - start));
        s = m->word.p, sl = m->word.n;
      }
      id = tok_strmap_get(&m->vocab, s, sl);
      if (id >= 0)
        break;
      /* drop the last character */
      end--;
      while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80)
        end--;
    }
    if (id < 0)
      goto unknown;
    RE_TRY(tok_ids_push(out, id));
    start = end;
  }
  return RE_OK;
unknown:
  out->n = mark;
  if (m->unk_id < 0)
    return unk_missing(m);
  return tok_ids_push(out, m->unk_id);
}

/* ---- entry ------------------------------------------------------------------------------ */

re_status tok_model_encode(tok_model *m, const char *s, int64_t n, tok_ids *out) {
  if (n == 0)
    return RE_OK;
  if (m->kind == TOK_MODEL_WORDPIECE)
    return wordpiece_word(m, s, n, out);
  if (m->ignore_merges) {
    int32_t id = tok_strmap_get(&m->vocab, s, n);
    if (id >= 0)
      return tok_ids_push(out, id);
  }
  int cacheable = n < TOK_CACHE_MAX_WORD;
  if (cacheable) {
    int32_t off = tok_strmap_get(&m->cache, s, n);
    if (off >= 0)
      return tok_ids_add(out, m->cache_ids.v + off + 1, m->cache_ids.v[off]);
  }
  int64_t mark = out->n;
  RE_TRY(bpe_word(m, s, n, out));
  if (!cacheable)
    return RE_OK;
  if (m->cache.count >= TOK_CACHE_MAX_WORDS || m->cache_ids.n > INT32_MAX / 2) {
    tok_strmap_clear(&m->cache);
    m->cache_ids.n = 0;
  }
  int32_t off = (int32_t)m->cache_ids.n;
  RE_TRY(tok_ids_push(&m->cache_ids, (int32_t)(out->n - mark)));
  RE_TRY(tok_ids_add(&m->cache_ids, out->v + mark, out->n - mark));
  return tok_strmap_put(&m->cache, s, n, off, NULL);
}
