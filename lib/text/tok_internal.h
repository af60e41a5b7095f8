/* Private pieces of the tokenizer (lib/text): buffers, UTF-8 and Unicode
 * classes, hash maps, regexes, the piece list that flows through the pipeline,
 * and the components (normalizers, pre-tokenizers, models, post-processors,
 * decoders) with their JSON readers. See repeval/tokenizer.h for the API. */
#ifndef REPEVAL_TOK_INTERNAL_H
#define REPEVAL_TOK_INTERNAL_H

#include <stdint.h>

#include "../io/jsonparse.h"
#include "repeval/tokenizer.h"

/* ---- growable byte buffer (always NUL-terminated once used) ------------- */

typedef struct tok_buf {
  char *p;
  int64_t n, cap;
} tok_buf;

re_status tok_buf_reserve(tok_buf *b, int64_t extra);
re_status tok_buf_add(tok_buf *b, const void *s, int64_t n);
re_status tok_buf_add_cp(tok_buf *b, uint32_t cp);
void tok_buf_free(tok_buf *b);

/* growable int32 array */
typedef struct tok_ids {
  int32_t *v;
  int64_t n, cap;
} tok_ids;

re_status tok_ids_push(tok_ids *a, int32_t id);
re_status tok_ids_add(tok_ids *a, const int32_t *ids, int64_t n);

/* ---- UTF-8 ------------------------------------------------------------- */

/* Decode the valid UTF-8 sequence at s (callers have validated the text); *len gets its bytes. */
static inline uint32_t tok_utf8_get(const char *s, int *len) {
  const unsigned char *u = (const unsigned char *)s;
  if (u[0] < 0x80) {
    *len = 1;
    return u[0];
  }
  if (u[0] < 0xE0) {
    *len = 2;
    return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
  }
  if (u[0] < 0xF0) {
    *len = 3;
    return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
  }
  *len = 4;
  return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
         (u[3] & 0x3F);
}

/* Bytes of the sequence whose lead byte is c (valid text). */
static inline int tok_utf8_seqlen(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* Encode cp (at most U+10FFFF) into out; returns the bytes written (1..4). */
int tok_utf8_put(uint32_t cp, char *out);

/* Offset of the first byte that is not valid UTF-8, or -1 if s[0, n) is valid. */
int64_t tok_utf8_check(const char *s, int64_t n);

/* Number of code points of valid UTF-8. */
int64_t tok_utf8_count(const char *s, int64_t n);

/* ---- Unicode classes (utf8proc tables) --------------------------------- */

int tok_uni_is_space(uint32_t c);   /* White_Space: Rust char::is_whitespace, Oniguruma \s */
int tok_uni_is_word(uint32_t c);    /* the Rust regex crate's \w */
int tok_uni_is_punct(uint32_t c);   /* ASCII punctuation or a P* category (Bert, Punctuation) */
int tok_uni_is_numeric(uint32_t c); /* Nd, Nl, No (Rust char::is_numeric) */
int tok_uni_is_other(uint32_t c);   /* C* categories (control, format, unassigned, private) */
int tok_uni_is_mark(uint32_t c);    /* M* categories */
int tok_uni_is_mn(uint32_t c);      /* Mn */
uint32_t tok_uni_lower1(uint32_t c); /* simple lowercase mapping */

/* ---- hash maps ----------------------------------------------------------- */

/* byte string -> int32, keys copied into a pool (NUL-terminated) */
typedef struct tok_strmap {
  struct tok_strent {
    uint64_t hash;
    int64_t off; /* into pool; -1: empty slot */
    int32_t len, val;
  } *slots;
  int64_t cap, count; /* cap: power of two */
  tok_buf pool;
} tok_strmap;

uint64_t tok_hash_bytes(const char *s, int64_t n);
/* Value of key s[0, n), or -1. */
int32_t tok_strmap_get(const tok_strmap *m, const char *s, int64_t n);
/* Insert or overwrite; *old (may be NULL) gets the previous value or -1. */
re_status tok_strmap_put(tok_strmap *m, const char *s, int64_t n, int32_t val, int32_t *old);
void tok_strmap_clear(tok_strmap *m);
void tok_strmap_free(tok_strmap *m);

/* (a, b) -> (rank, new id) for BPE merges */
typedef struct tok_pairmap {
  struct tok_pairent {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, id;
  } *slots;
  int64_t cap, count;
} tok_pairmap;

/* Returns 1 and fills rank and id if the pair is there. */
int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);
/* Insert or overwrite (a later merge of the same pair replaces the earlier one, as in the library). */
re_status tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
void tok_pairmap_free(tok_pairmap *m);

/* ---- regular expressions (PCRE2, Oniguruma syntax translated) ----------- */

typedef struct tok_regex tok_regex;

/* A span of a split: [start, end) and whether it is a match of the pattern. */
typedef struct tok_span {
  int64_t start, end;
  int match;
} tok_span;

typedef struct tok_spans {
  tok_span *v;
  int64_t n, cap;
} tok_spans;

re_status tok_spans_push(tok_spans *s, int64_t start, int64_t end, int match);

/* Compile a pattern: literal (a "String" pattern) or an Oniguruma regex; `where`
 * names it in messages. */
re_status tok_regex_new(const char *pattern, int64_t len, int literal, const char *where, tok_regex **out);
void tok_regex_free(tok_regex **re);
/* Cover s[0, n) with alternating non-match / match spans, as the library's
 * find_matches does (empty matches split too; none after the previous match end). */
re_status tok_regex_spans(tok_regex *re, const char *s, int64_t n, tok_spans *out);

/* ---- pieces flowing through the pipeline --------------------------------- */

typedef struct tok_piece {
  int64_t off, len; /* text in the list's buffer */
  int32_t id;       /* >= 0: an added token, final */
  int32_t zlen;     /* leading bytes aligned with offset 0 of the input text (Metaspace "first") */
} tok_piece;

typedef struct tok_pieces {
  tok_piece *v;
  int64_t n, cap;
  tok_buf text;
} tok_pieces;

void tok_pieces_reset(tok_pieces *p);
void tok_pieces_free(tok_pieces *p);
/* Append a piece whose text is copied in. */
re_status tok_pieces_add(tok_pieces *p, const char *s, int64_t len, int32_t id, int32_t zlen);

/* ---- JSON reading helpers -------------------------------------------------- */

typedef struct tok_ctx {
  const re_json *j;
  const char *label; /* file name for messages */
  const char *raw;   /* the JSON text (numbers other than integers are read from it) */
  int64_t raw_len;
} tok_ctx;

/* "<label>: <path> (byte N): <message>" as RE_EFORMAT or `st`. */
re_status tok_fail(const tok_ctx *c, re_status st, const char *path, const re_json_node *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const re_json_node *tok_node(const tok_ctx *c, int64_t idx);
/* Member `key` of object obj, or NULL. */
const re_json_node *tok_member(const tok_ctx *c, const re_json_node *obj, const char *key);
/* Refuse members of obj not listed in `known` (NULL-terminated). */
re_status tok_known_keys(const tok_ctx *c, const re_json_node *obj, const char *path, const char *const *known);
/* Optional bool (missing or null: def). */
re_status tok_get_bool(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, int def,
                       int *out);
/* String member; required: refuse if missing or null, else *s = NULL. */
re_status tok_get_str(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, int required,
                      const char **s, int64_t *n);
/* Non-negative integer member up to max; missing or null: def (or refused if def < 0). */
re_status tok_get_uint(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, int64_t def,
                       int64_t max, int64_t *out);
/* A number member as a double (missing or null: def). */
re_status tok_get_double(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, double def,
                         double *out);
/* The "type" string of a component object. */
re_status tok_get_type(const tok_ctx *c, const re_json_node *obj, const char *path, const char **type);
/* A string holding exactly one character; *cp gets it. */
re_status tok_get_char(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key, uint32_t *cp);

/* Copy n bytes of s into a new NUL-terminated string. */
re_status tok_strndup(const char *s, int64_t n, char **out);
/* A Split / Replace "pattern": {"String": ...} (literal) or {"Regex": ...}. */
re_status tok_parse_pattern(const tok_ctx *c, const re_json_node *obj, const char *path, tok_regex **re);

/* ---- normalizers ------------------------------------------------------------ */

typedef enum tok_norm_kind {
  TOK_NORM_BERT,
  TOK_NORM_STRIP,
  TOK_NORM_STRIP_ACCENTS,
  TOK_NORM_NFC,
  TOK_NORM_NFD,
  TOK_NORM_NFKC,
  TOK_NORM_NFKD,
  TOK_NORM_LOWERCASE,
  TOK_NORM_REPLACE,
  TOK_NORM_PREPEND,
  TOK_NORM_SEQUENCE
} tok_norm_kind;

typedef struct tok_norm {
  tok_norm_kind kind;
  int clean_text, chinese, strip_accents, lowercase; /* Bert */
  int left, right;                                    /* Strip */
  tok_regex *re;                                      /* Replace */
  char *str;                                          /* Replace content, Prepend text */
  int64_t str_len;
  struct tok_norm *items; /* Sequence */
  int n_items;
} tok_norm;

re_status tok_norm_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_norm *out);
void tok_norm_free(tok_norm *n);
/* Normalize s[0, n) into out (reset first); zlen in, *zout out: see tok_piece.zlen. */
re_status tok_norm_apply(const tok_norm *nm, const char *s, int64_t n, int32_t zlen, tok_buf *out, int32_t *zout);

/* ---- pre-tokenizers ------------------------------------------------------------ */

typedef enum tok_split_behavior {
  TOK_SPLIT_REMOVED,
  TOK_SPLIT_ISOLATED,
  TOK_SPLIT_MERGED_PREV,
  TOK_SPLIT_MERGED_NEXT,
  TOK_SPLIT_CONTIGUOUS
} tok_split_behavior;

typedef enum tok_pre_kind {
  TOK_PRE_BYTELEVEL,
  TOK_PRE_SPLIT,
  TOK_PRE_METASPACE,
  TOK_PRE_BERT,
  TOK_PRE_WHITESPACE,
  TOK_PRE_WHITESPACE_SPLIT,
  TOK_PRE_DIGITS,
  TOK_PRE_PUNCTUATION,
  TOK_PRE_DELIMITER,
  TOK_PRE_SEQUENCE
} tok_pre_kind;

typedef enum tok_prepend { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER } tok_prepend;

typedef struct tok_pre {
  tok_pre_kind kind;
  int add_prefix_space, use_regex; /* ByteLevel */
  tok_regex *re;                   /* ByteLevel (GPT-2 pattern), Split */
  tok_split_behavior behavior;     /* Split, Punctuation */
  int invert;                      /* Split */
  uint32_t replacement;            /* Metaspace */
  tok_prepend prepend;             /* Metaspace */
  int split;                       /* Metaspace */
  int individual_digits;           /* Digits */
  uint32_t delimiter;              /* CharDelimiterSplit */
  struct tok_pre *items;           /* Sequence */
  int n_items;
} tok_pre;

re_status tok_pre_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_pre *out);
void tok_pre_free(tok_pre *p);
/* Run on *cur (pieces with id >= 0 pass through); the result is left in *cur, *spare is scratch. */
re_status tok_pre_apply(const tok_pre *p, tok_pieces **cur, tok_pieces **spare, tok_spans *scratch);

/* Metaspace's fields (shared by the pre-tokenizer and the decoder). */
re_status tok_parse_metaspace(const tok_ctx *c, const re_json_node *obj, const char *path, uint32_t *rep,
                              tok_prepend *scheme, int *split);

/* the byte-level alphabet: byte -> code point, and back (-1 if none) */
uint32_t tok_bytelevel_char(unsigned char b);
int tok_bytelevel_byte(uint32_t cp);

/* ---- models ---------------------------------------------------------------------- */

typedef enum tok_model_kind { TOK_MODEL_BPE, TOK_MODEL_WORDPIECE } tok_model_kind;

typedef struct tok_model {
  tok_model_kind kind;
  tok_strmap vocab;   /* token -> id */
  const char **names; /* id -> token (into vocab's pool, rebased after load), NULL for holes */
  int32_t *name_len;
  int64_t n_ids;      /* max id + 1 */
  int64_t count;      /* entries */
  char *unk;          /* unk token (NULL: none) */
  int32_t unk_id;     /* -1 if unk is NULL or not in the vocabulary */
  char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (BPE) */
  int64_t prefix_len, suffix_len;
  /* BPE */
  tok_pairmap merges;
  int byte_fallback, fuse_unk, ignore_merges;
  int32_t byte_ids[256]; /* <0xNN> tokens, -1 if missing */
  /* WordPiece */
  int64_t max_chars;
  /* cache: word -> offset in cache_ids (count, then ids) */
  tok_strmap cache;
  tok_ids cache_ids;
  /* scratch */
  struct tok_sym *syms;
  int64_t syms_cap;
  struct tok_heapent *heap;
  int64_t heap_cap;
  tok_buf word;
} tok_model;

re_status tok_model_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_model *out);
void tok_model_free(tok_model *m);
/* Append the ids of one pre-tokenized piece. */
re_status tok_model_encode(tok_model *m, const char *s, int64_t n, tok_ids *out);

/* ---- post-processors -------------------------------------------------------------- */

typedef enum tok_post_kind {
  TOK_POST_TEMPLATE,
  TOK_POST_BERT,
  TOK_POST_ROBERTA,
  TOK_POST_BYTELEVEL,
  TOK_POST_SEQUENCE
} tok_post_kind;

typedef struct tok_post {
  tok_post_kind kind;
  /* the single-sequence template, flattened: parts are the sequence or a run of
   * special ids (Bert and Roberta: cls, sequence, sep) */
  struct tok_post_part {
    int seq;         /* 1: the sequence; 0: ids[off, off + n) */
    int64_t off, n;
  } *parts;
  int n_parts;
  int32_t *ids;
  int64_t n_ids;
  struct tok_post *items;
  int n_items;
} tok_post;

re_status tok_post_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_post *out);
void tok_post_free(tok_post *p);
/* Special tokens added to a single sequence. */
int64_t tok_post_added(const tok_post *p);
/* Apply to ids (in place, growing the array). */
re_status tok_post_apply(const tok_post *p, int add_special, tok_ids *ids, tok_ids *scratch);

/* ---- decoders ----------------------------------------------------------------------- */

typedef enum tok_dec_kind {
  TOK_DEC_BYTELEVEL,
  TOK_DEC_METASPACE,
  TOK_DEC_BYTE_FALLBACK,
  TOK_DEC_FUSE,
  TOK_DEC_STRIP,
  TOK_DEC_WORDPIECE,
  TOK_DEC_REPLACE,
  TOK_DEC_BPE,
  TOK_DEC_SEQUENCE
} tok_dec_kind;

typedef struct tok_dec {
  tok_dec_kind kind;
  uint32_t ch;                 /* Metaspace replacement, Strip content */
  tok_prepend prepend;         /* Metaspace */
  int64_t start, stop;         /* Strip */
  char *str;                   /* WordPiece prefix, Replace content, BPE suffix */
  int64_t str_len;
  int cleanup;                 /* WordPiece */
  tok_regex *re;               /* Replace */
  struct tok_dec *items;
  int n_items;
} tok_dec;

/* A list of strings (the tokens being decoded). */
typedef struct tok_strs {
  int64_t *off, *len;
  int64_t n, cap;
  tok_buf text;
} tok_strs;

re_status tok_strs_add(tok_strs *s, const char *p, int64_t n);
void tok_strs_reset(tok_strs *s);
void tok_strs_free(tok_strs *s);

re_status tok_dec_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_dec *out);
void tok_dec_free(tok_dec *d);
/* Transform the list *cur (result left in *cur; *spare is scratch). */
re_status tok_dec_apply(const tok_dec *d, tok_strs **cur, tok_strs **spare, tok_spans *scratch);

/* ---- added tokens ---------------------------------------------------------------------- */

typedef struct tok_added {
  char *content;
  int64_t len;
  char *pattern; /* what is matched: the content, or its normalized form */
  int64_t pattern_len;
  int32_t id;
  uint8_t single_word, lstrip, rstrip, normalized, special;
} tok_added;

/* byte trie of added-token patterns, leftmost-longest matching */
typedef struct tok_trie {
  struct tok_trienode {
    int32_t child, sibling, tok; /* tok: index into the added list, -1 */
    unsigned char byte;
  } *nodes; /* nodes[0] is the root */
  int64_t n, cap;
  int32_t root[256]; /* the root's children by byte (-1: none), filled by tok_trie_add */
} tok_trie;

re_status tok_trie_add(tok_trie *t, const char *s, int64_t n, int32_t tok);
void tok_trie_free(tok_trie *t);

/* Split s[0, n) at the added tokens of trie t (the library's find_matches):
 * appends pieces to out, added ones with their id; zlen as in tok_piece. */
re_status tok_added_split(const tok_trie *t, const tok_added *added, const char *s, int64_t n, int32_t zlen,
                          tok_pieces *out);

#endif
