/* tokenizer.json: loading, the encode pipeline (added tokens, normalizer,
 * pre-tokenizer, model, truncation, post-processor, padding), decoding and
 * lookups. See repeval/tokenizer.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_internal.h"

#define TOK_MAX_FILE (512LL << 20) /* bytes of a tokenizer.json */
#define TOK_MAX_DEPTH 128
#define TOK_MAX_VALUES (32LL << 20)
#define TOK_MAX_ADDED 1000000

typedef struct tok_trunc {
  int on, left, only_second;
  int64_t max_length;
} tok_trunc;

typedef struct tok_pad {
  int on, left;
  int64_t fixed, multiple; /* fixed: 0 for BatchLongest */
  int32_t id;
} tok_pad;

struct re_tokenizer {
  char *label;
  tok_model model;
  int has_norm, has_pre, has_post, has_dec;
  tok_norm norm;
  tok_pre pre;
  tok_post post;
  tok_dec dec;
  tok_added *added;
  int64_t n_added;
  tok_strmap added_map;   /* content -> index into added */
  tok_strmap special_set; /* contents of special added tokens */
  int32_t *added_by_id;   /* id -> index into added, -1 (vocab_size entries) */
  tok_trie trie_raw, trie_norm;
  tok_trunc trunc;
  tok_pad pad;
  int32_t special[4];
  int64_t vocab_size;
  /* encode scratch */
  tok_pieces pa, pb;
  tok_spans spans;
  tok_buf nbuf;
  tok_ids ids, scratch;
};

/* ---- truncation and padding ------------------------------------------------------------- */

static re_status parse_trunc(const tok_ctx *c, const re_json_node *o, tok_trunc *t) {
  const char *path = "truncation";
  if (!o || o->type == RE_JSON_NULL)
    return RE_OK;
  if (o->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, path, o, "must be null or an object");
  static const char *const k[] = {"direction", "max_length", "strategy", "stride", NULL};
  RE_TRY(tok_known_keys(c, o, path, k));
  const char *dir, *strategy;
  int64_t stride;
  RE_TRY(tok_get_str(c, o, path, "direction", 0, &dir, NULL));
  RE_TRY(tok_get_str(c, o, path, "strategy", 1, &strategy, NULL));
  RE_TRY(tok_get_uint(c, o, path, "max_length", -1, INT32_MAX, &t->max_length));
  RE_TRY(tok_get_uint(c, o, path, "stride", 0, INT32_MAX, &stride)); /* overflowing pieces only */
  if (dir && strcmp(dir, "Right") && strcmp(dir, "Left"))
    return tok_fail(c, RE_EUNSUPPORTED, path, tok_member(c, o, "direction"), "unknown direction \"%s\"", dir);
  if (strcmp(strategy, "LongestFirst") && strcmp(strategy, "OnlyFirst") && strcmp(strategy, "OnlySecond"))
    return tok_fail(c, RE_EUNSUPPORTED, path, tok_member(c, o, "strategy"), "unknown strategy \"%s\"", strategy);
  t->on = 1;
  t->left = dir && !strcmp(dir, "Left");
  t->only_second = !strcmp(strategy, "OnlySecond");
  return RE_OK;
}

static re_status parse_pad(const tok_ctx *c, const re_json_node *o, tok_pad *p) {
  const char *path = "padding";
  if (!o || o->type == RE_JSON_NULL)
    return RE_OK;
  if (o->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, path, o, "must be null or an object");
  static const char *const k[] = {"strategy", "direction", "pad_to_multiple_of", "pad_id", "pad_type_id",
                                  "pad_token", NULL};
  RE_TRY(tok_known_keys(c, o, path, k));
  const re_json_node *s = tok_member(c, o, "strategy");
  if (s && s->type == RE_JSON_STRING && !strcmp(s->str, "BatchLongest")) {
    p->fixed = 0;
  } else if (s && s->type == RE_JSON_OBJECT && s->count == 1 && !strcmp(tok_node(c, s->first)->key, "Fixed")) {
    RE_TRY(tok_get_uint(c, s, "padding.strategy", "Fixed", -1, INT32_MAX, &p->fixed));
  } else {
    return tok_fail(c, RE_EUNSUPPORTED, path, s ? s : o, "strategy must be \"BatchLongest\" or {\"Fixed\": n}");
  }
  const char *dir, *tok;
  int64_t id, type_id;
  RE_TRY(tok_get_str(c, o, path, "direction", 0, &dir, NULL));
  RE_TRY(tok_get_str(c, o, path, "pad_token", 0, &tok, NULL));
  if (dir && strcmp(dir, "Right") && strcmp(dir, "Left"))
    return tok_fail(c, RE_EUNSUPPORTED, path, tok_member(c, o, "direction"), "unknown direction \"%s\"", dir);
  RE_TRY(tok_get_uint(c, o, path, "pad_to_multiple_of", 0, INT32_MAX, &p->multiple));
  RE_TRY(tok_get_uint(c, o, path, "pad_id", 0, INT32_MAX, &id));
  RE_TRY(tok_get_uint(c, o, path, "pad_type_id", 0, INT32_MAX, &type_id));
  p->on = 1;
  p->left = dir && !strcmp(dir, "Left");
  p->id = (int32_t)id;
  return RE_OK;
}

/* ---- added tokens -------------------------------------------------------------------------- */

static re_status parse_added(const tok_ctx *c, const re_json_node *list, re_tokenizer *t) {
  const char *path = "added_tokens";
  if (!list || list->type == RE_JSON_NULL)
    return RE_OK;
  if (list->type != RE_JSON_ARRAY)
    return tok_fail(c, RE_EFORMAT, path, list, "must be an array");
  if (list->count > TOK_MAX_ADDED)
    return tok_fail(c, RE_EUNSUPPORTED, path, list, "more than %d added tokens", TOK_MAX_ADDED);
  RE_TRY(re_calloc(list->count ? list->count : 1, sizeof *t->added, &t->added));
  /* ids as the library assigns them on load: an existing token keeps its id,
   * a new one gets the next id after the model's vocabulary */
  int64_t next_id = t->model.count, i = 0;
  for (const re_json_node *e = tok_node(c, list->first); e; e = tok_node(c, e->next), i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "added_tokens[%lld]", (long long)i);
    if (e->type != RE_JSON_OBJECT)
      return tok_fail(c, RE_EFORMAT, sub, e, "an added token must be an object");
    static const char *const k[] = {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special",
                                    NULL};
    RE_TRY(tok_known_keys(c, e, sub, k));
    const char *content;
    int64_t len, id;
    int sw, ls, rs, norm, special;
    RE_TRY(tok_get_str(c, e, sub, "content", 1, &content, &len));
    RE_TRY(tok_get_uint(c, e, sub, "id", -1, 0x7FFFFFFE, &id));
    RE_TRY(tok_get_bool(c, e, sub, "single_word", 0, &sw));
    RE_TRY(tok_get_bool(c, e, sub, "lstrip", 0, &ls));
    RE_TRY(tok_get_bool(c, e, sub, "rstrip", 0, &rs));
    RE_TRY(tok_get_bool(c, e, sub, "special", 0, &special));
    RE_TRY(tok_get_bool(c, e, sub, "normalized", !special, &norm));
    if (len == 0)
      continue; /* ignored by the library */
    int32_t idx = tok_strmap_get(&t->added_map, content, len);
    int64_t lib_id = idx >= 0 ? t->added[idx].id : tok_strmap_get(&t->model.vocab, content, len);
    if (lib_id < 0)
      lib_id = next_id++;
    if (lib_id != id)
      return tok_fail(c, RE_EFORMAT, sub, e,
                      "added token \"%s\" has id %lld, but loading gives it id %lld (the vocab has it, or the ids "
                      "of new added tokens do not follow the vocab)",
                      content, (long long)id, (long long)lib_id);
    if (idx < 0) {
      idx = (int32_t)t->n_added++;
      RE_TRY(tok_strndup(content, len, &t->added[idx].content));
      t->added[idx].len = len;
      RE_TRY(tok_strmap_put(&t->added_map, content, len, idx, NULL));
    }
    tok_added *a = &t->added[idx]; /* a repeated content: the later flags win */
    a->id = (int32_t)id;
    a->single_word = (uint8_t)sw, a->lstrip = (uint8_t)ls, a->rstrip = (uint8_t)rs;
    a->normalized = (uint8_t)norm, a->special = (uint8_t)special;
    if (special)
      RE_TRY(tok_strmap_put(&t->special_set, content, len, (int32_t)id, NULL));
  }
  /* patterns: normalized tokens are matched in normalized text by their normalized form */
  tok_buf nb = {0};
  re_status st = RE_OK;
  for (int64_t k = 0; k < t->n_added && st == RE_OK; k++) {
    tok_added *a = &t->added[k];
    const char *pat = a->content;
    int64_t pl = a->len;
    if (a->normalized && t->has_norm) {
      int32_t z;
      st = tok_norm_apply(&t->norm, a->content, a->len, 0, &nb, &z);
      if (st != RE_OK)
        break;
      pat = nb.p ? nb.p : "", pl = nb.n;
    }
    st = tok_strndup(pat, pl, &a->pattern);
    a->pattern_len = pl;
    if (st == RE_OK && pl > 0)
      st = tok_trie_add(a->normalized ? &t->trie_norm : &t->trie_raw, pat, pl, (int32_t)k);
  }
  tok_buf_free(&nb);
  return st;
}

/* ---- loading --------------------------------------------------------------------------------- */

static re_status check_id(const re_tokenizer *t, int64_t id, const char *what) {
  if (id < 0 || id >= t->vocab_size)
    return re_err(RE_EFORMAT, "%s: %s id %lld is outside the vocabulary (size %lld)", t->label, what, (long long)id,
                  (long long)t->vocab_size);
  if (!re_tokenizer_id_to_token(t, (int32_t)id, NULL))
    return re_err(RE_EFORMAT, "%s: %s id %lld is no token of the vocabulary", t->label, what, (long long)id);
  return RE_OK;
}

static re_status check_post_ids(const re_tokenizer *t, const tok_post *p) {
  for (int64_t i = 0; i < p->n_ids; i++)
    RE_TRY(check_id(t, p->ids[i], "post_processor special token"));
  for (int i = 0; i < p->n_items; i++)
    RE_TRY(check_post_ids(t, &p->items[i]));
  return RE_OK;
}

/* first and last special ids the post-processor adds around the sequence */
static void post_ends(const tok_post *p, int32_t *bos, int32_t *eos) {
  if (p->kind == TOK_POST_SEQUENCE) {
    for (int i = 0; i < p->n_items; i++)
      post_ends(&p->items[i], bos, eos);
    return;
  }
  if (p->n_parts > 0 && !p->parts[0].seq && p->parts[0].n > 0)
    *bos = p->ids[p->parts[0].off];
  if (p->n_parts > 1 && !p->parts[p->n_parts - 1].seq && p->parts[p->n_parts - 1].n > 0) {
    const struct tok_post_part *q = &p->parts[p->n_parts - 1];
    *eos = p->ids[q->off + q->n - 1];
  }
}

static re_status parse_root(re_tokenizer *t, const tok_ctx *c) {
  const re_json_node *root = tok_node(c, 0);
  if (root->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, "(top level)", root, "a tokenizer.json is a JSON object");
  static const char *const k[] = {"version",       "truncation", "padding", "added_tokens", "normalizer",
                                  "pre_tokenizer", "post_processor", "decoder", "model", NULL};
  RE_TRY(tok_known_keys(c, root, "(top level)", k));
  const char *version;
  RE_TRY(tok_get_str(c, root, "(top level)", "version", 0, &version, NULL));
  if (version && strcmp(version, "1.0"))
    return tok_fail(c, RE_EUNSUPPORTED, "version", tok_member(c, root, "version"),
                    "unknown tokenizer version \"%s\" (1.0 is supported)", version);
  const re_json_node *model = tok_member(c, root, "model");
  if (!model)
    return tok_fail(c, RE_EFORMAT, "(top level)", root, "missing \"model\"");
  RE_TRY(tok_model_parse(c, model, "model", &t->model));
  const re_json_node *v;
  if ((v = tok_member(c, root, "normalizer")) && v->type != RE_JSON_NULL) {
    t->has_norm = 1;
    RE_TRY(tok_norm_parse(c, v, "normalizer", &t->norm));
  }
  if ((v = tok_member(c, root, "pre_tokenizer")) && v->type != RE_JSON_NULL) {
    t->has_pre = 1;
    RE_TRY(tok_pre_parse(c, v, "pre_tokenizer", &t->pre));
  }
  if ((v = tok_member(c, root, "post_processor")) && v->type != RE_JSON_NULL) {
    t->has_post = 1;
    RE_TRY(tok_post_parse(c, v, "post_processor", &t->post));
  }
  if ((v = tok_member(c, root, "decoder")) && v->type != RE_JSON_NULL) {
    t->has_dec = 1;
    RE_TRY(tok_dec_parse(c, v, "decoder", &t->dec));
  }
  RE_TRY(parse_trunc(c, tok_member(c, root, "truncation"), &t->trunc));
  RE_TRY(parse_pad(c, tok_member(c, root, "padding"), &t->pad));
  RE_TRY(parse_added(c, tok_member(c, root, "added_tokens"), t));

  t->vocab_size = t->model.n_ids;
  for (int64_t i = 0; i < t->n_added; i++)
    if (t->added[i].id >= t->vocab_size)
      t->vocab_size = (int64_t)t->added[i].id + 1;
  if (t->vocab_size > 4 * (t->model.count + t->n_added + 1024))
    return re_err(RE_EUNSUPPORTED, "%s: added_tokens: ids go up to %lld for %lld tokens (too sparse)", t->label,
                  (long long)t->vocab_size - 1, (long long)(t->model.count + t->n_added));
  RE_TRY(re_malloc(t->vocab_size ? t->vocab_size : 1, sizeof *t->added_by_id, &t->added_by_id));
  for (int64_t i = 0; i < t->vocab_size; i++)
    t->added_by_id[i] = -1;
  for (int64_t i = 0; i < t->n_added; i++)
    t->added_by_id[t->added[i].id] = (int32_t)i;
  for (int i = 0; i < 4; i++)
    t->special[i] = -1;
  if (t->has_post)
    post_ends(&t->post, &t->special[RE_TOKEN_BOS], &t->special[RE_TOKEN_EOS]);
  if (t->pad.on)
    t->special[RE_TOKEN_PAD] = t->pad.id;
  t->special[RE_TOKEN_UNK] = t->model.unk_id;
  if (t->has_post)
    RE_TRY(check_post_ids(t, &t->post));
  if (t->pad.on)
    RE_TRY(check_id(t, t->pad.id, "padding pad_id"));
  return RE_OK;
}

re_status re_tokenizer_load_buffer(const char *json, int64_t len, const char *label, re_tokenizer **out) {
  *out = NULL;
  re_tokenizer *t = NULL;
  re_json j = {0};
  re_status st;
  if (len > TOK_MAX_FILE)
    return re_err(RE_EUNSUPPORTED, "%s: %lld bytes, more than the limit of %lld for a tokenizer.json", label,
                  (long long)len, (long long)TOK_MAX_FILE);
  RE_CHECK(re_calloc(1, sizeof *t, &t));
  RE_CHECK(re_strdup(label, &t->label));
  RE_CHECK(re_json_parse(json, len, TOK_MAX_DEPTH, TOK_MAX_VALUES, label, 0, &j));
  tok_ctx c = {&j, label, json, len};
  RE_CHECK(parse_root(t, &c));
  *out = t;
  t = NULL;
done:
  re_json_free(&j);
  re_tokenizer_destroy(&t);
  return st;
}

static re_status read_file(const char *path, char **buf, int64_t *len) {
  *buf = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return re_err(RE_EIO, "cannot open %s: %s", path, strerror(errno));
  re_status st = RE_OK;
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0) {
    st = re_err(RE_EIO, "cannot stat %s: %s", path, strerror(errno));
  } else if (sb.st_size > TOK_MAX_FILE) {
    st = re_err(RE_EUNSUPPORTED, "%s: %lld bytes, more than the limit of %lld for a tokenizer file", path,
                (long long)sb.st_size, (long long)TOK_MAX_FILE);
  } else if ((st = re_malloc((int64_t)sb.st_size + 1, 1, buf)) == RE_OK) {
    size_t got = fread(*buf, 1, (size_t)sb.st_size, f);
    if (got != (size_t)sb.st_size)
      st = re_err(RE_EIO, "%s: read %zu of %lld bytes", path, got, (long long)sb.st_size);
    *len = (int64_t)got;
  }
  fclose(f);
  if (st != RE_OK) {
    free(*buf);
    *buf = NULL;
  }
  return st;
}

/* tokenizer_config.json: the names of bos/eos/pad/unk, as strings or {"content": ...} */
static re_status read_config(re_tokenizer *t, const char *path) {
  char *buf;
  int64_t len;
  RE_TRY(read_file(path, &buf, &len));
  re_json j = {0};
  re_status st = re_json_parse(buf, len, TOK_MAX_DEPTH, TOK_MAX_VALUES, path, 0, &j);
  if (st == RE_OK) {
    tok_ctx c = {&j, path, buf, len};
    static const char *const keys[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    const re_json_node *root = tok_node(&c, 0);
    for (int i = 0; i < 4 && st == RE_OK; i++) {
      const re_json_node *v = tok_member(&c, root, keys[i]);
      if (v && v->type == RE_JSON_OBJECT)
        v = tok_member(&c, v, "content");
      if (!v || v->type == RE_JSON_NULL)
        continue;
      if (v->type != RE_JSON_STRING) {
        st = tok_fail(&c, RE_EFORMAT, keys[i], v, "must be a token string or {\"content\": token}");
        break;
      }
      int32_t id = re_tokenizer_token_to_id(t, v->str, v->str_len);
      if (id < 0)
        st = tok_fail(&c, RE_EFORMAT, keys[i], v, "\"%s\" is not a token of the tokenizer", v->str);
      t->special[i] = id;
    }
  }
  re_json_free(&j);
  free(buf);
  return st;
}

re_status re_tokenizer_load(const char *path, re_tokenizer **out) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) != 0)
    return re_err(RE_EIO, "cannot open %s: %s", path, strerror(errno));
  char *file = NULL, *dir = NULL, *buf = NULL, *cfg = NULL;
  int64_t len = 0;
  re_status st;
  size_t pl = strlen(path);
  RE_CHECK(re_malloc((int64_t)pl + 32, 1, &file));
  RE_CHECK(re_malloc((int64_t)pl + 32, 1, &dir));
  if (S_ISDIR(sb.st_mode)) {
    snprintf(dir, pl + 32, "%s", path);
    snprintf(file, pl + 32, "%s/tokenizer.json", path);
  } else {
    snprintf(file, pl + 32, "%s", path);
    snprintf(dir, pl + 32, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
      *slash = '\0';
    else
      snprintf(dir, pl + 32, ".");
  }
  RE_CHECK(read_file(file, &buf, &len));
  RE_CHECK(re_tokenizer_load_buffer(buf, len, file, out));
  RE_CHECK(re_malloc((int64_t)strlen(dir) + 32, 1, &cfg));
  snprintf(cfg, strlen(dir) + 32, "%s/tokenizer_config.json", dir);
  if (stat(cfg, &sb) == 0)
    RE_CHECK(read_config(*out, cfg));
done:
  if (st != RE_OK)
    re_tokenizer_destroy(out);
  free(file);
  free(dir);
  free(buf);
  free(cfg);
  return st;
}

void re_tokenizer_destroy(re_tokenizer **pt) {
  re_tokenizer *t = *pt;
  if (!t)
    return;
  free(t->label);
  tok_model_free(&t->model);
  tok_norm_free(&t->norm);
  tok_pre_free(&t->pre);
  tok_post_free(&t->post);
  tok_dec_free(&t->dec);
  for (int64_t i = 0; i < t->n_added; i++) {
    free(t->added[i].content);
    free(t->added[i].pattern);
  }
  free(t->added);
  free(t->added_by_id);
  tok_strmap_free(&t->added_map);
  tok_strmap_free(&t->special_set);
  tok_trie_free(&t->trie_raw);
  tok_trie_free(&t->trie_norm);
  tok_pieces_free(&t->pa);
  tok_pieces_free(&t->pb);
  free(t->spans.v);
  tok_buf_free(&t->nbuf);
  free(t->ids.v);
  free(t->scratch.v);
  free(t);
  *pt = NULL;
}

/* ---- encoding --------------------------------------------------------------------------------- */

static re_status encode_ids(re_tokenizer *t, const char *text, int64_t len, int add_special) {
  int64_t bad = tok_utf8_check(text, len);
  if (bad >= 0)
    return re_err(RE_EINVAL, "the text is not valid UTF-8 at byte %lld", (long long)bad);
  tok_pieces *cur = &t->pa, *spare = &t->pb;
  tok_pieces_reset(cur);
  tok_pieces_reset(spare);
  /* 1. added tokens that are not normalized, in the raw text; 2. the normalizer on
   * the rest, then the normalized added tokens */
  RE_TRY(tok_added_split(&t->trie_raw, t->added, text, len, len > 0 ? tok_utf8_seqlen((unsigned char)text[0]) : 0,
                         spare));
  for (int64_t k = 0; k < spare->n; k++) {
    tok_piece p = spare->v[k];
    const char *s = spare->text.p + p.off;
    if (p.id >= 0) {
      RE_TRY(tok_pieces_add(cur, s, p.len, p.id, 0));
      continue;
    }
    int32_t z = p.zlen;
    if (t->has_norm) {
      RE_TRY(tok_norm_apply(&t->norm, s, p.len, p.zlen, &t->nbuf, &z));
      s = t->nbuf.p ? t->nbuf.p : "";
      p.len = t->nbuf.n;
    }
    RE_TRY(tok_added_split(&t->trie_norm, t->added, s, p.len, z, cur));
  }
  /* 3. pre-tokenizer, 4. model */
  if (t->has_pre)
    RE_TRY(tok_pre_apply(&t->pre, &cur, &spare, &t->spans));
  t->ids.n = 0;
  for (int64_t k = 0; k < cur->n; k++) {
    const tok_piece *p = &cur->v[k];
    if (p->id >= 0)
      RE_TRY(tok_ids_push(&t->ids, p->id));
    else
      RE_TRY(tok_model_encode(&t->model, cur->text.p + p->off, p->len, &t->ids));
  }
  /* 5. truncation, leaving room for the special tokens */
  if (t->trunc.on) {
    int64_t max = t->trunc.max_length, added = t->has_post && add_special ? tok_post_added(&t->post) : 0;
    if (added > 0) {
      if (max < added)
        return re_err(RE_EINVAL, "%s: truncation max_length %lld is shorter than the %lld special tokens", t->label,
                      (long long)max, (long long)added);
      max -= added;
    }
    if (t->ids.n > max) {
      if (t->trunc.only_second)
        return re_err(RE_EINVAL, "%s: truncation strategy OnlySecond needs a second sequence", t->label);
      if (t->trunc.left)
        memmove(t->ids.v, t->ids.v + (t->ids.n - max), (size_t)max * sizeof *t->ids.v);
      t->ids.n = max;
    }
  }
  /* 6. post-processor, 7. padding */
  if (t->has_post)
    RE_TRY(tok_post_apply(&t->post, add_special, &t->ids, &t->scratch));
  if (t->pad.on) {
    int64_t target = t->pad.fixed ? t->pad.fixed : t->ids.n;
    if (t->pad.multiple > 0 && target % t->pad.multiple)
      target += t->pad.multiple - target % t->pad.multiple;
    int64_t extra = target - t->ids.n;
    for (int64_t k = 0; k < extra; k++)
      RE_TRY(tok_ids_push(&t->ids, t->pad.id));
    if (extra > 0 && t->pad.left) {
      memmove(t->ids.v + extra, t->ids.v, (size_t)(t->ids.n - extra) * sizeof *t->ids.v);
      for (int64_t k = 0; k < extra; k++)
        t->ids.v[k] = t->pad.id;
    }
  }
  return RE_OK;
}

re_status re_tokenizer_encode(re_tokenizer *t, const char *text, int64_t len, int add_special_tokens, int32_t **ids,
                              int64_t *n, int64_t *cap) {
  *n = 0;
  if (len < 0 || (!text && len > 0))
    return re_err(RE_EINVAL, "encode: invalid text length %lld", (long long)len);
  RE_TRY(encode_ids(t, text ? text : "", len, add_special_tokens));
  if (t->ids.n > *cap) {
    RE_TRY(re_realloc(ids, t->ids.n, sizeof **ids));
    *cap = t->ids.n;
  }
  if (t->ids.n)
    memcpy(*ids, t->ids.v, (size_t)t->ids.n * sizeof **ids);
  *n = t->ids.n;
  return RE_OK;
}

/* ---- decoding and lookups ----------------------------------------------------------------------- */

static const tok_added *added_of(const re_tokenizer *t, int32_t id) {
  if (id < 0 || id >= t->vocab_size || !t->added_by_id || t->added_by_id[id] < 0)
    return NULL;
  return &t->added[t->added_by_id[id]];
}

re_status re_tokenizer_decode(re_tokenizer *t, const int32_t *ids, int64_t n, int skip_special, char **text,
                              int64_t *len) {
  *text = NULL;
  *len = 0;
  tok_strs a = {0}, b = {0};
  tok_strs *cur = &a, *spare = &b;
  tok_buf out = {0};
  re_status st = RE_OK;
  for (int64_t i = 0; i < n; i++) {
    const char *s = NULL;
    int64_t sl = 0;
    const tok_added *ad = ids[i] >= 0 ? added_of(t, ids[i]) : NULL;
    if (ad) { /* the library decodes a normalized added token to its normalized form */
      s = ad->normalized ? ad->pattern : ad->content;
      sl = ad->normalized ? ad->pattern_len : ad->len;
    } else {
      s = re_tokenizer_id_to_token(t, ids[i], &sl);
    }
    if (!s) {
      st = re_err(RE_EINVAL, "decode: id %d (position %lld) is not in the vocabulary of %s", ids[i], (long long)i,
                  t->label);
      goto done;
    }
    if (skip_special && tok_strmap_get(&t->special_set, s, sl) >= 0)
      continue;
    RE_CHECK(tok_strs_add(cur, s, sl));
  }
  if (t->has_dec) {
    RE_CHECK(tok_dec_apply(&t->dec, &cur, &spare, &t->spans));
    for (int64_t i = 0; i < cur->n && st == RE_OK; i++)
      st = tok_buf_add(&out, cur->text.p + cur->off[i], cur->len[i]);
  } else { /* no decoder: the tokens joined by spaces */
    for (int64_t i = 0; i < cur->n && st == RE_OK; i++) {
      if (i)
        st = tok_buf_add(&out, " ", 1);
      if (st == RE_OK)
        st = tok_buf_add(&out, cur->text.p + cur->off[i], cur->len[i]);
    }
  }
  if (st == RE_OK)
    st = tok_buf_add(&out, "", 0);
  if (st == RE_OK) {
    *text = out.p;
    *len = out.n;
    out.p = NULL;
  }
done:
  tok_buf_free(&out);
  tok_strs_free(&a);
  tok_strs_free(&b);
  return st;
}

int64_t re_tokenizer_vocab_size(const re_tokenizer *t) { return t->vocab_size; }

int32_t re_tokenizer_token_to_id(const re_tokenizer *t, const char *token, int64_t len) {
  int32_t idx = tok_strmap_get(&t->added_map, token, len);
  if (idx >= 0)
    return t->added[idx].id;
  return tok_strmap_get(&t->model.vocab, token, len);
}

const char *re_tokenizer_id_to_token(const re_tokenizer *t, int32_t id, int64_t *len) {
  const tok_added *a = id >= 0 ? added_of(t, id) : NULL;
  if (a) {
    if (len)
      *len = a->len;
    return a->content;
  }
  if (id < 0 || id >= t->model.n_ids || !t->model.names[id])
    return NULL;
  if (len)
    *len = t->model.name_len[id];
  return t->model.names[id];
}

int32_t re_tokenizer_special_id(const re_tokenizer *t, re_special_token which) {
  return (unsigned)which < 4 ? t->special[which] : -1;
}

int re_tokenizer_is_special(const re_tokenizer *t, int32_t id) {
  const tok_added *a = id >= 0 ? added_of(t, id) : NULL;
  return a && a->special;
}
