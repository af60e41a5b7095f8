/* Text to token samples (see ds_seq.h and docs/formats.md, "Sequencing").
 *
 * A document's tokens are P + body + S: body is the tokenizer's encoding of the
 * text without special tokens, P and S the special tokens the post-processor puts
 * before and after any text (found at open by encoding a probe with and without
 * them), with BOS put in front of P when add_bos asks for it and P does not begin
 * with it. Truncate mode: sample k is document k's P + body[: T - |P| - |S|] + S,
 * padded to T (what tokenizer(text, truncation=True, max_length=T) gives, plus the
 * padding). Pack mode: documents, each followed by EOS unless it already ends with
 * it, make one stream; sample k is stream positions [k T, (k + 1) T), the last
 * partial sample dropped. */
#include "ds_seq.h"

#include "../jsonparse.h"
#include "repeval/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SEQ_MAX_SPECIAL 16 /* special tokens around a sequence: [CLS] ... [SEP] is 2 */

struct re_ds_seq {
  char *what;
  re_tokenizer *tok;
  int own_tok;
  int64_t T;
  int pack, pad_left;
  int32_t eos, pad;
  int32_t pre[SEQ_MAX_SPECIAL + 1], suf[SEQ_MAX_SPECIAL];
  int npre, nsuf;
  int labelled;
  int64_t ndocs, cap;
  int32_t *labels; /* ndocs (labelled) */
  int64_t *end;    /* pack: stream position after document k (ndocs) */
  /* read state */
  const re_ds_docs_ops *ops;
  void *impl;
  int32_t *ids; /* encode buffer */
  int64_t nids, ids_cap;
  int64_t cached; /* pack: document whose tokens are in seqbuf, -1 none */
  int32_t *seqbuf;
  int64_t nseq, seq_cap;
};

int re_ds_text_blank(const char *text, int64_t len) {
  for (int64_t k = 0; k < len; k++)
    if (text[k] != ' ' && text[k] != '\t' && text[k] != '\r' && text[k] != '\n')
      return 0;
  return 1;
}

void re_ds_seq_free(re_ds_seq **ps) {
  re_ds_seq *s = *ps;
  if (!s)
    return;
  if (s->ops)
    s->ops->close(s->impl);
  if (s->own_tok)
    re_tokenizer_destroy(&s->tok);
  free(s->what);
  free(s->labels);
  free(s->end);
  free(s->ids);
  free(s->seqbuf);
  free(s);
  *ps = NULL;
}

int64_t re_ds_seq_docs(const re_ds_seq *s) { return s->ndocs; }

/* ---- the tokenizer file's own truncation and padding ------------------------------ */

/* Skip one JSON string starting at s[i] == '"'; returns the index after it. The
 * text was validated by the tokenizer loader, so only its structure is followed. */
static int64_t skip_string(const char *s, int64_t n, int64_t i) {
  for (i++; i < n && s[i] != '"'; i++)
    if (s[i] == '\\')
      i++;
  return i + 1;
}

static int64_t skip_ws(const char *s, int64_t n, int64_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
    i++;
  return i;
}

/* The top-level member `key` of a JSON object text: its value's bytes [*b, *e). */
static int top_member(const char *s, int64_t n, const char *key, int64_t *b, int64_t *e) {
  int64_t i = skip_ws(s, n, 0), klen = (int64_t)strlen(key);
  if (i >= n || s[i] != '{')
    return 0;
  i++;
  while (i < n) {
    i = skip_ws(s, n, i);
    if (i >= n || s[i] != '"')
      return 0;
    int64_t k0 = i + 1;
    i = skip_string(s, n, i);
    int match = i - 1 - k0 == klen && !memcmp(s + k0, key, (size_t)klen);
    i = skip_ws(s, n, i);
    if (i >= n || s[i] != ':')
      return 0;
    i = skip_ws(s, n, i + 1);
    int64_t v0 = i;
    int depth = 0;
    while (i < n) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, n, i);
        continue;
      }
      if (c == '{' || c == '[')
        depth++;
      else if (c == '}' || c == ']') {
        if (depth == 0)
          break;
        depth--;
      } else if (c == ',' && depth == 0)
        break;
      i++;
    }
    if (match) {
      *b = v0, *e = i;
      while (*e > *b && (s[*e - 1] == ' ' || s[*e - 1] == '\n' || s[*e - 1] == '\r' || s[*e - 1] == '\t'))
        (*e)--;
      return 1;
    }
    if (i >= n || s[i] == '}')
      return 0;
    i++;
  }
  return 0;
}

static const re_json_node *member(const re_json *j, const re_json_node *o, const char *key) {
  for (int64_t c = o->first; c >= 0; c = j->nodes[c].next)
    if (!strcmp(j->nodes[c].key, key))
      return &j->nodes[c];
  return NULL;
}

/* A tokenizer.json may set truncation and padding, which encode applies. A dataset
 * cuts and pads to seq_len itself, so only settings that cannot change its samples
 * are accepted: padding BatchLongest without pad_to_multiple_of (nothing to pad for
 * one sequence) and, in truncate mode, right truncation to at least seq_len. */
static re_status check_file_settings(const re_ds_seq *s, const char *path) {
  char *file = NULL;
  struct stat sb;
  size_t n = strlen(path) + sizeof "/tokenizer.json";
  RE_TRY(re_malloc((int64_t)n, 1, &file));
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    snprintf(file, n, "%s/tokenizer.json", path);
  else
    snprintf(file, n, "%s", path);
  re_ds_map m;
  re_status st = re_ds_map_file(file, &m);
  if (st != RE_OK) {
    free(file);
    return st;
  }
  const char *txt = (const char *)m.base;
  int64_t b, e;
  re_json j = {0};
  if (txt && top_member(txt, m.len, "padding", &b, &e) && !(e - b == 4 && !memcmp(txt + b, "null", 4))) {
    st = re_json_parse(txt + b, e - b, 8, 64, file, b, &j);
    const re_json_node *strat = st == RE_OK ? member(&j, &j.nodes[0], "strategy") : NULL;
    const re_json_node *mult = st == RE_OK ? member(&j, &j.nodes[0], "pad_to_multiple_of") : NULL;
    int noop = strat && strat->type == RE_JSON_STRING && !strcmp(strat->str, "BatchLongest") &&
               (!mult || mult->type == RE_JSON_NULL || (mult->type == RE_JSON_NUMBER && mult->num <= 1));
    re_json_free(&j);
    if (st == RE_OK && !noop)
      st = re_err(RE_EUNSUPPORTED,
                  "%s: the tokenizer's \"padding\" (byte %lld) would pad inside the samples; %s pads to seq_len "
                  "itself: set \"padding\" to null in a copy of the file",
                  file, (long long)b, s->what);
  }
  if (st == RE_OK && txt && top_member(txt, m.len, "truncation", &b, &e) &&
      !(e - b == 4 && !memcmp(txt + b, "null", 4))) {
    st = re_json_parse(txt + b, e - b, 8, 64, file, b, &j);
    const re_json_node *max = st == RE_OK ? member(&j, &j.nodes[0], "max_length") : NULL;
    const re_json_node *dir = st == RE_OK ? member(&j, &j.nodes[0], "direction") : NULL;
    int harmless = !s->pack && max && max->type == RE_JSON_NUMBER && max->num_kind == RE_JSON_NUM_UINT &&
                   max->num >= s->T && (!dir || (dir->type == RE_JSON_STRING && !strcmp(dir->str, "Right")));
    re_json_free(&j);
    if (st == RE_OK && !harmless)
      st = re_err(RE_EUNSUPPORTED,
                  "%s: the tokenizer's \"truncation\" (byte %lld) would cut documents before %s does%s: set "
                  "\"truncation\" to null in a copy of the file",
                  file, (long long)b, s->what,
                  s->pack ? " (pack mode joins whole documents)" : " (only right truncation to seq_len or more is kept)");
  }
  re_ds_unmap(&m);
  free(file);
  return st;
}

/* ---- special tokens around a sequence ------------------------------------------------ */

static re_status encode(re_ds_seq *s, const char *text, int64_t len, int special) {
  return re_tokenizer_encode(s->tok, text, len, special, &s->ids, &s->nids, &s->ids_cap);
}

/* P and S from a probe text: encode(probe, special) == P + encode(probe) + S. */
static re_status probe_specials(re_ds_seq *s, const char *probe, int *found, int32_t *pre, int *npre, int32_t *suf,
                                int *nsuf) {
  *found = 0;
  RE_TRY(encode(s, probe, (int64_t)strlen(probe), 0));
  int64_t nb = s->nids;
  int32_t body[64];
  if (nb < 1 || nb > 64)
    return RE_OK;
  memcpy(body, s->ids, sizeof *body * (size_t)nb);
  RE_TRY(encode(s, probe, (int64_t)strlen(probe), 1));
  int64_t nw = s->nids;
  for (int64_t i = 0; i + nb <= nw; i++) {
    if (memcmp(s->ids + i, body, sizeof *body * (size_t)nb))
      continue;
    if (i > SEQ_MAX_SPECIAL || nw - i - nb > SEQ_MAX_SPECIAL)
      return re_err(RE_EUNSUPPORTED, "%s: the post-processor adds more than %d special tokens on one side",
                    s->what, SEQ_MAX_SPECIAL);
    *npre = (int)i, *nsuf = (int)(nw - i - nb);
    memcpy(pre, s->ids, sizeof *pre * (size_t)i);
    memcpy(suf, s->ids + i + nb, sizeof *suf * (size_t)*nsuf);
    *found = 1;
    return RE_OK;
  }
  return RE_OK;
}

static re_status find_specials(re_ds_seq *s) {
  static const char *const probes[] = {"a", "Hello world", "x", "1", "The"};
  int32_t pre[SEQ_MAX_SPECIAL], suf[SEQ_MAX_SPECIAL];
  int npre = 0, nsuf = 0, have = 0;
  for (size_t p = 0; p < sizeof probes / sizeof *probes; p++) {
    int32_t pre2[SEQ_MAX_SPECIAL], suf2[SEQ_MAX_SPECIAL];
    int npre2, nsuf2, found;
    RE_TRY(probe_specials(s, probes[p], &found, pre2, &npre2, suf2, &nsuf2));
    if (!found)
      continue;
    if (!have) {
      memcpy(pre, pre2, sizeof pre), memcpy(suf, suf2, sizeof suf);
      npre = npre2, nsuf = nsuf2, have = 1;
    } else if (npre != npre2 || nsuf != nsuf2 || memcmp(pre, pre2, sizeof *pre * (size_t)npre) ||
               memcmp(suf, suf2, sizeof *suf * (size_t)nsuf)) {
      return re_err(RE_EUNSUPPORTED, "%s: the post-processor's special tokens change with the text (\"%s\")",
                    s->what, probes[p]);
    }
  }
  if (!have)
    return re_err(RE_EUNSUPPORTED,
                  "%s: cannot tell the post-processor's special tokens from the text (no probe text encodes to "
                  "tokens); use no special tokens",
                  s->what);
  memcpy(s->pre + s->npre, pre, sizeof *pre * (size_t)npre);
  s->npre += npre;
  memcpy(s->suf, suf, sizeof *suf * (size_t)nsuf);
  s->nsuf = nsuf;
  return RE_OK;
}

/* ---- open --------------------------------------------------------------------------- */

re_status re_ds_seq_new(const re_text_options *o, const char *what, int labelled, re_ds_seq **out) {
  re_status st = RE_OK;
  re_ds_seq *s = NULL;
  *out = NULL;
  if (!o)
    return re_err(RE_EINVAL, "%s: no text options (tokenizer, seq_len)", what);
  if (!o->tokenizer_handle && !o->tokenizer)
    return re_err(RE_EINVAL, "%s: a tokenizer is needed (tokenizer.json or its folder)", what);
  if (o->seq_len < 1)
    return re_err(RE_EINVAL, "%s: seq_len %lld must be positive", what, (long long)o->seq_len);
  if (o->mode != RE_SEQ_TRUNCATE && o->mode != RE_SEQ_PACK)
    return re_err(RE_EINVAL, "%s: unknown sequencing mode %d", what, (int)o->mode);
  if (o->mode == RE_SEQ_PACK && labelled)
    return re_err(RE_EINVAL, "%s: mode pack has no labels (a sample spans documents); drop the labels or use mode "
                  "truncate", what);
  if (o->mode == RE_SEQ_PACK && o->pad_left)
    return re_err(RE_EINVAL, "%s: mode pack fills every sample, so there is no padding side to choose", what);
  RE_CHECK(re_calloc(1, sizeof *s, &s));
  RE_CHECK(re_strdup(what, &s->what));
  s->T = o->seq_len;
  s->pack = o->mode == RE_SEQ_PACK;
  s->pad_left = o->pad_left;
  s->labelled = labelled;
  s->cached = -1;
  if (o->tokenizer_handle) {
    s->tok = o->tokenizer_handle;
  } else {
    RE_CHECK(re_tokenizer_load(o->tokenizer, &s->tok));
    s->own_tok = 1;
    RE_CHECK(check_file_settings(s, o->tokenizer));
  }
  int32_t bos = re_tokenizer_special_id(s->tok, RE_TOKEN_BOS);
  if (!o->no_special)
    RE_CHECK(find_specials(s)); /* fills pre after a possible BOS, below */
  if (o->add_bos) {
    if (bos < 0) {
      st = re_err(RE_EINVAL, "%s: add_bos: the tokenizer names no BOS token", what);
      goto done;
    }
    if (s->npre == 0 || s->pre[0] != bos) {
      memmove(s->pre + 1, s->pre, sizeof *s->pre * (size_t)s->npre);
      s->pre[0] = bos;
      s->npre++;
    }
  }
  s->eos = re_tokenizer_special_id(s->tok, RE_TOKEN_EOS);
  if (o->eos_token) {
    s->eos = re_tokenizer_token_to_id(s->tok, o->eos_token, (int64_t)strlen(o->eos_token));
    if (s->eos < 0) {
      st = re_err(RE_EINVAL, "%s: eos_token \"%s\" is not a token of the tokenizer", what, o->eos_token);
      goto done;
    }
  }
  if (s->pack && s->eos < 0) {
    st = re_err(RE_EINVAL, "%s: mode pack joins documents with EOS, but the tokenizer names none (give eos_token)",
                what);
    goto done;
  }
  s->pad = re_tokenizer_special_id(s->tok, RE_TOKEN_PAD);
  if (s->pad < 0)
    s->pad = s->eos >= 0 ? s->eos : 0;
  if (!s->pack && s->T - s->npre - s->nsuf < 1) {
    st = re_err(RE_EINVAL, "%s: seq_len %lld leaves no room for text next to the %d special tokens", what,
                (long long)s->T, s->npre + s->nsuf);
    goto done;
  }
  *out = s;
  return RE_OK;
done:
  re_ds_seq_free(&s);
  return st;
}

/* Tokens of a document in pack mode: P + body + S, then EOS unless it ends with it. */
static re_status doc_tokens(re_ds_seq *s, const char *text, int64_t len) {
  RE_TRY(encode(s, text, len, 0));
  int64_t n = s->npre + s->nids + s->nsuf + 1;
  if (n > s->seq_cap) {
    RE_TRY(re_realloc(&s->seqbuf, n, sizeof *s->seqbuf));
    s->seq_cap = n;
  }
  int32_t *q = s->seqbuf;
  memcpy(q, s->pre, sizeof *q * (size_t)s->npre);
  if (s->nids)
    memcpy(q + s->npre, s->ids, sizeof *q * (size_t)s->nids);
  memcpy(q + s->npre + s->nids, s->suf, sizeof *q * (size_t)s->nsuf);
  n--;
  if (n == 0 || q[n - 1] != s->eos)
    q[n++] = s->eos;
  s->nseq = n;
  return RE_OK;
}

re_status re_ds_seq_doc(re_ds_seq *s, const char *text, int64_t len, int32_t label, const char *where) {
  if (s->ndocs == s->cap) {
    int64_t cap = s->cap ? 2 * s->cap : 1024;
    if (s->labelled)
      RE_TRY(re_realloc(&s->labels, cap, sizeof *s->labels));
    if (s->pack)
      RE_TRY(re_realloc(&s->end, cap, sizeof *s->end));
    s->cap = cap;
  }
  if (s->labelled)
    s->labels[s->ndocs] = label;
  if (s->pack) {
    re_status st = doc_tokens(s, text, len);
    if (st != RE_OK)
      return re_err_context(st, "%s: ", where);
    s->end[s->ndocs] = (s->ndocs ? s->end[s->ndocs - 1] : 0) + s->nseq;
  }
  s->ndocs++;
  return RE_OK;
}

/* ---- read ----------------------------------------------------------------------------- */

static re_status with_where(re_ds_seq *s, int64_t k, re_status st) {
  char where[1200];
  s->ops->where(s->impl, k, where, sizeof where);
  return re_err_context(st, "%s: ", where);
}

static re_status read_truncate(re_ds_seq *s, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels) {
  const int64_t T = s->T, room = T - s->npre - s->nsuf;
  for (int64_t k = i; k < j; k++) {
    const char *text;
    int64_t len;
    re_status st = s->ops->text(s->impl, k, &text, &len);
    if (st == RE_OK)
      st = encode(s, text, len, 0);
    if (st != RE_OK)
      return with_where(s, k, st);
    int64_t nb = s->nids < room ? s->nids : room, n = s->npre + nb + s->nsuf;
    if (n == 0)
      return with_where(s, k, re_err(RE_EDATA, "the document encodes to no token"));
    int64_t *row = ids + (k - i) * T, at = s->pad_left ? T - n : 0;
    uint8_t *m = mask + (k - i) * T;
    for (int64_t t = 0; t < T; t++)
      row[t] = s->pad;
    memset(m, 0, (size_t)T);
    memset(m + at, 1, (size_t)n);
    for (int p = 0; p < s->npre; p++)
      row[at++] = s->pre[p];
    for (int64_t t = 0; t < nb; t++)
      row[at++] = s->ids[t];
    for (int p = 0; p < s->nsuf; p++)
      row[at++] = s->suf[p];
  }
  if (labels)
    memcpy(labels, s->labels + i, sizeof *labels * (size_t)(j - i));
  return RE_OK;
}

/* The first document whose tokens reach past stream position pos. */
static int64_t doc_at(const re_ds_seq *s, int64_t pos) {
  int64_t lo = 0, hi = s->ndocs - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (s->end[mid] > pos)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

static re_status load_doc(re_ds_seq *s, int64_t d) {
  if (s->cached == d)
    return RE_OK;
  s->cached = -1;
  const char *text;
  int64_t len;
  re_status st = s->ops->text(s->impl, d, &text, &len);
  if (st == RE_OK)
    st = doc_tokens(s, text, len);
  if (st != RE_OK)
    return with_where(s, d, st);
  int64_t want = s->end[d] - (d ? s->end[d - 1] : 0);
  if (s->nseq != want)
    return with_where(s, d, re_err(RE_EFORMAT, "%lld tokens, %lld when the dataset was opened (changed since?)",
                                   (long long)s->nseq, (long long)want));
  s->cached = d;
  return RE_OK;
}

static re_status read_pack(re_ds_seq *s, int64_t i, int64_t j, int64_t *ids, uint8_t *mask) {
  int64_t pos = i * s->T, stop = j * s->T, o = 0;
  int64_t d = doc_at(s, pos);
  while (pos < stop) {
    RE_TRY(load_doc(s, d));
    int64_t start = d ? s->end[d - 1] : 0, take = s->end[d] - pos;
    if (take > stop - pos)
      take = stop - pos;
    for (int64_t t = 0; t < take; t++)
      ids[o++] = s->seqbuf[pos - start + t];
    pos += take;
    if (pos == s->end[d])
      d++;
  }
  memset(mask, 1, (size_t)((j - i) * s->T));
  return RE_OK;
}

static re_status seq_read(void *impl, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels) {
  re_ds_seq *s = (re_ds_seq *)impl;
  return s->pack ? read_pack(s, i, j, ids, mask) : read_truncate(s, i, j, ids, mask, labels);
}

static void seq_close(void *impl) {
  re_ds_seq *s = (re_ds_seq *)impl;
  re_ds_seq_free(&s);
}

static const re_ds_ops seq_ops = {NULL, seq_close, seq_read};

re_status re_ds_seq_finish(re_ds_seq **ps, const re_ds_docs_ops *ops, void *impl, char **class_names, int64_t nclass,
                           re_dataset **out) {
  re_ds_seq *s = *ps;
  *ps = NULL;
  *out = NULL;
  s->ops = ops, s->impl = impl;
  re_status st = RE_OK;
  re_dataset_info info = {0};
  info.tokens = 1;
  info.seq_len = s->T;
  info.vocab = re_tokenizer_vocab_size(s->tok);
  info.sample_dim = s->T;
  info.channels = 1, info.height = 1;
  info.width = s->T > INT32_MAX ? INT32_MAX : (int)s->T;
  if (s->ndocs == 0) {
    st = re_err(RE_EDATA, "%s: no document (an empty corpus: every text is empty or blank)", s->what);
    goto fail;
  }
  if (s->pack) {
    info.count = s->end[s->ndocs - 1] / s->T;
    if (info.count == 0) {
      st = re_err(RE_EDATA, "%s: %lld tokens in %lld document%s, fewer than seq_len %lld: no sample (mode pack "
                  "drops the last partial sample)", s->what, (long long)s->end[s->ndocs - 1], (long long)s->ndocs,
                  s->ndocs == 1 ? "" : "s", (long long)s->T);
      goto fail;
    }
  } else {
    info.count = s->ndocs;
  }
  if (s->labelled) {
    info.has_labels = 1;
    for (int64_t k = 0; k < s->ndocs; k++)
      if (s->labels[k] + (int64_t)1 > info.num_classes)
        info.num_classes = s->labels[k] + (int64_t)1;
    if (class_names && nclass > info.num_classes)
      info.num_classes = nclass;
  }
  st = re_ds_wrap(&seq_ops, s, &info, out); /* closes s on failure */
  if (st != RE_OK)
    goto names;
  re_ds_set_class_names(*out, class_names, nclass);
  return RE_OK;
fail:
  re_ds_seq_free(&s);
names:
  for (int64_t c = 0; c < nclass; c++)
    free(class_names[c]);
  free(class_names);
  return st;
}
