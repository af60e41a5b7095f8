/* Hugging Face `tokenizer.json` tokenizers: load, encode text to token ids,
 * decode ids to text. Follows the tokenizers library (Rust, 0.2x): added tokens
 * are cut out of the raw text first, then each remaining piece is normalized,
 * pre-tokenized and given to the model (BPE or WordPiece); the post-processor
 * adds special tokens; truncation and padding from the file are applied.
 * What is supported and refused is listed in docs/formats.md ("Tokenizers").
 *
 * A tokenizer keeps a cache and scratch buffers: it is not thread-safe; give each
 * thread its own (loading is cheap next to a model). */
#ifndef REPEVAL_TOKENIZER_H
#define REPEVAL_TOKENIZER_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re_tokenizer re_tokenizer;

/* Well-known special tokens, for re_tokenizer_special_id. */
typedef enum re_special_token {
  RE_TOKEN_BOS = 0, /* beginning of sequence (or [CLS]) */
  RE_TOKEN_EOS,     /* end of sequence (or [SEP]) */
  RE_TOKEN_PAD,     /* padding */
  RE_TOKEN_UNK      /* unknown */
} re_special_token;

/* Load `path`: a tokenizer.json file or a folder holding one (the folder's
 * tokenizer_config.json, if any, names the bos/eos/pad/unk tokens). Everything is
 * validated; an unsupported component is refused with the file, JSON key and type. */
re_status re_tokenizer_load(const char *path, re_tokenizer **out);

/* Load from len bytes of tokenizer.json text; `label` names it in messages. */
re_status re_tokenizer_load_buffer(const char *json, int64_t len, const char *label, re_tokenizer **out);

/* Free the tokenizer (NULL is fine) and set *tok to NULL. */
void re_tokenizer_destroy(re_tokenizer **tok);

/* Encode len bytes of UTF-8 text (invalid UTF-8 is refused with its byte offset).
 * add_special_tokens: let the post-processor add its tokens ([CLS] ... [SEP], <s>).
 * The ids go to *ids, an array of *cap elements that is grown with realloc as needed
 * (start with *ids = NULL, *cap = 0 and free(*ids) at the end); *n gets the count. */
re_status re_tokenizer_encode(re_tokenizer *tok, const char *text, int64_t len, int add_special_tokens,
                              int32_t **ids, int64_t *n, int64_t *cap);

/* Decode n ids to UTF-8 text through the file's decoder (ids outside the vocabulary are
 * refused); skip_special drops special added tokens. *text is malloc'ed and
 * NUL-terminated, *len its length in bytes (the text may contain NUL bytes). */
re_status re_tokenizer_decode(re_tokenizer *tok, const int32_t *ids, int64_t n, int skip_special, char **text,
                              int64_t *len);

/* One past the largest id of the model's vocabulary and the added tokens. */
int64_t re_tokenizer_vocab_size(const re_tokenizer *tok);

/* Id of a token string (added tokens first, then the model), or -1 if there is none. */
int32_t re_tokenizer_token_to_id(const re_tokenizer *tok, const char *token, int64_t len);

/* The token string of an id (NUL-terminated; *len its bytes if len is not NULL), or NULL. */
const char *re_tokenizer_id_to_token(const re_tokenizer *tok, int32_t id, int64_t *len);

/* Id of a special token, or -1 where the files do not say it. Sources, in order:
 * tokenizer_config.json, the post-processor (its first / last special token for
 * bos / eos), the padding settings (pad) and the model (unk). */
int32_t re_tokenizer_special_id(const re_tokenizer *tok, re_special_token which);

/* Whether id is an added token marked special (skipped by decode with skip_special). */
int re_tokenizer_is_special(const re_tokenizer *tok, int32_t id);

#ifdef __cplusplus
}
#endif
#endif
