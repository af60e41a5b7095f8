/* Added tokens: cut out of the text before normalization (or, for
 * `normalized` ones, out of each normalized piece), leftmost-longest, with the
 * single_word, lstrip and rstrip rules of the library's AddedVocabulary. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static re_status new_node(tok_trie *t, unsigned char byte, int32_t *idx) {
  if (t->n == t->cap) {
    int64_t cap = t->cap ? 2 * t->cap : 64;
    RE_TRY(re_realloc(&t->nodes, cap, sizeof *t->nodes));
    t->cap = cap;
  }
  if (t->n >= INT32_MAX)
    return re_err(RE_ENOMEM, "too many added-token characters");
  t->nodes[t->n] = (struct tok_trienode){-1, -1, -1, byte};
  *idx = (int32_t)t->n++;
  return RE_OK;
}

re_status tok_trie_add(tok_trie *t, const char *s, int64_t n, int32_t tok) {
  int32_t cur;
  if (t->n == 0) {
    RE_TRY(new_node(t, 0, &cur));
    for (int b = 0; b < 256; b++)
      t->root[b] = -1;
  }
  cur = 0;
  for (int64_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)s[i];
    int32_t ch = t->nodes[cur].child, found = -1;
    for (; ch >= 0; ch = t->nodes[ch].sibling)
      if (t->nodes[ch].byte == b) {
        found = ch;
        break;
      }
    if (found < 0) {
      RE_TRY(new_node(t, b, &found));
      t->nodes[found].sibling = t->nodes[cur].child;
      t->nodes[cur].child = found;
      if (cur == 0)
        t->root[b] = found;
    }
    cur = found;
  }
  if (t->nodes[cur].tok < 0) /* a repeated pattern keeps its first token */
    t->nodes[cur].tok = tok;
  return RE_OK;
}

void tok_trie_free(tok_trie *t) {
  free(t->nodes);
  memset(t, 0, sizeof *t);
}

/* Longest pattern starting at s[i]: its token index (or -1) and end. */
static int32_t longest_at(const tok_trie *t, const char *s, int64_t n, int64_t i, int64_t *end) {
  int32_t cur = t->root[(unsigned char)s[i]], best = -1;
  int64_t j = i + 1;
  while (cur >= 0) {
    if (t->nodes[cur].tok >= 0) {
      best = t->nodes[cur].tok;
      *end = j;
    }
    if (j >= n)
      break;
    unsigned char b = (unsigned char)s[j];
    int32_t ch = t->nodes[cur].child;
    while (ch >= 0 && t->nodes[ch].byte != b)
      ch = t->nodes[ch].sibling;
    cur = ch;
    j++;
  }
  return best;
}

/* Code point ending just before s[i] (i > 0). */
static uint32_t cp_before(const char *s, int64_t i) {
  int64_t q = i - 1;
  while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80)
    q--;
  int l;
  return tok_utf8_get(s + q, &l);
}

re_status tok_added_split(const tok_trie *t, const tok_added *added, const char *s, int64_t n, int32_t zlen,
                          tok_pieces *out) {
  if (n == 0)
    return RE_OK;
  if (t->n == 0)
    return tok_pieces_add(out, s, n, -1, zlen);
  int64_t start_offset = 0, pos = 0;
  while (pos < n) {
    int64_t end = 0;
    int32_t k = longest_at(t, s, n, pos, &end);
    if (k < 0) {
      pos += tok_utf8_seqlen((unsigned char)s[pos]);
      continue;
    }
    int64_t start = pos, stop = end;
    pos = end; /* the next search starts after this match, kept or not */
    const tok_added *a = &added[k];
    if (a->single_word) {
      int l;
      int start_space = start == 0 || !tok_uni_is_word(cp_before(s, start));
      int stop_space = stop == n || !tok_uni_is_word(tok_utf8_get(s + stop, &l));
      if (!start_space || !stop_space)
        continue;
    }
    if (a->lstrip) {
      int64_t q = start;
      while (q > 0) {
        uint32_t c = cp_before(s, q);
        if (!tok_uni_is_space(c))
          break;
        q--;
        while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80)
          q--;
      }
      start = q > start_offset ? q : start_offset;
    }
    if (a->rstrip) {
      while (stop < n) {
        int l;
        uint32_t c = tok_utf8_get(s + stop, &l);
        if (!tok_uni_is_space(c))
          break;
        stop += l;
      }
    }
    if (start_offset < start)
      RE_TRY(tok_pieces_add(out, s + start_offset, start - start_offset, -1,
                            zlen > start_offset ? (int32_t)(zlen - start_offset) : 0));
    RE_TRY(tok_pieces_add(out, s + start, stop - start, a->id, 0));
    start_offset = stop;
  }
  if (start_offset < n)
    RE_TRY(tok_pieces_add(out, s + start_offset, n - start_offset, -1,
                          zlen > start_offset ? (int32_t)(zlen - start_offset) : 0));
  return RE_OK;
}
