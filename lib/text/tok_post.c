/* Post-processors for a single sequence: TemplateProcessing, BertProcessing,
 * RobertaProcessing, ByteLevel (nothing to do for ids) and Sequence, as
 * the processors/ folder of the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static re_status add_part(tok_post *p, int seq, const int32_t *ids, int64_t n) {
  RE_TRY(re_realloc(&p->parts, p->n_parts + 1, sizeof *p->parts));
  p->parts[p->n_parts++] = (struct tok_post_part){seq, p->n_ids, seq ? 0 : n};
  if (!seq && n > 0) {
    RE_TRY(re_realloc(&p->ids, p->n_ids + n, sizeof *p->ids));
    memcpy(p->ids + p->n_ids, ids, (size_t)n * sizeof *ids);
    p->n_ids += n;
  }
  return RE_OK;
}

/* ["[CLS]", 101] */
static re_status parse_pair(const tok_ctx *c, const re_json_node *obj, const char *path, const char *key,
                            int32_t *id) {
  const re_json_node *v = tok_member(c, obj, key);
  const re_json_node *x = v && v->type == RE_JSON_ARRAY && v->count == 2 ? tok_node(c, v->first) : NULL;
  const re_json_node *y = x ? tok_node(c, x->next) : NULL;
  if (!x || x->type != RE_JSON_STRING || y->type != RE_JSON_NUMBER || y->num_kind != RE_JSON_NUM_UINT ||
      y->num > INT32_MAX)
    return tok_fail(c, RE_EFORMAT, path, v ? v : obj, "\"%s\" must be [token, id]", key);
  *id = (int32_t)y->num;
  return RE_OK;
}

static re_status parse_template(const tok_ctx *c, const re_json_node *obj, const char *path, tok_post *p) {
  const re_json_node *single = tok_member(c, obj, "single");
  const re_json_node *pair = tok_member(c, obj, "pair");
  const re_json_node *specials = tok_member(c, obj, "special_tokens");
  if (!single || single->type != RE_JSON_ARRAY)
    return tok_fail(c, RE_EFORMAT, path, single ? single : obj, "\"single\" must be an array of template pieces");
  if (pair && pair->type != RE_JSON_ARRAY)
    return tok_fail(c, RE_EFORMAT, path, pair, "\"pair\" must be an array of template pieces");
  if (!specials || specials->type != RE_JSON_OBJECT)
    return tok_fail(c, RE_EFORMAT, path, specials ? specials : obj, "\"special_tokens\" must be an object");
  int i = 0;
  for (const re_json_node *e = tok_node(c, single->first); e; e = tok_node(c, e->next), i++) {
    char sub[256];
    snprintf(sub, sizeof sub, "%s.single[%d]", path, i);
    const re_json_node *body = e->type == RE_JSON_OBJECT && e->count == 1 ? tok_node(c, e->first) : NULL;
    if (!body || body->type != RE_JSON_OBJECT)
      return tok_fail(c, RE_EFORMAT, sub, e, "a template piece must be {\"Sequence\": {...}} or {\"SpecialToken\": {...}}");
    static const char *const k[] = {"id", "type_id", NULL};
    RE_TRY(tok_known_keys(c, body, sub, k));
    const char *id;
    int64_t idn, type_id;
    RE_TRY(tok_get_str(c, body, sub, "id", 1, &id, &idn));
    RE_TRY(tok_get_uint(c, body, sub, "type_id", 0, INT32_MAX, &type_id));
    if (!strcmp(body->key, "Sequence")) {
      if (strcmp(id, "A"))
        return tok_fail(c, RE_EUNSUPPORTED, sub, body, "the single-sequence template uses sequence \"%s\" (only A)",
                        id);
      RE_TRY(add_part(p, 1, NULL, 0));
      continue;
    }
    if (strcmp(body->key, "SpecialToken"))
      return tok_fail(c, RE_EUNSUPPORTED, sub, body, "unknown template piece \"%s\"", body->key);
    const re_json_node *st = NULL;
    for (const re_json_node *s = tok_node(c, specials->first); s; s = tok_node(c, s->next))
      if (s->key_len == idn && !memcmp(s->key, id, (size_t)idn))
        st = s;
    if (!st)
      return tok_fail(c, RE_EFORMAT, sub, body, "special token \"%s\" is not in special_tokens", id);
    char ssub[512];
    snprintf(ssub, sizeof ssub, "%s.special_tokens[\"%s\"]", path, id);
    static const char *const sk[] = {"id", "ids", "tokens", NULL};
    if (st->type != RE_JSON_OBJECT)
      return tok_fail(c, RE_EFORMAT, ssub, st, "must be an object {id, ids, tokens}");
    RE_TRY(tok_known_keys(c, st, ssub, sk));
    const re_json_node *ids = tok_member(c, st, "ids"), *toks = tok_member(c, st, "tokens");
    if (!ids || ids->type != RE_JSON_ARRAY || ids->count > 64)
      return tok_fail(c, RE_EFORMAT, ssub, ids ? ids : st, "\"ids\" must be an array of at most 64 ids");
    if (!toks || toks->type != RE_JSON_ARRAY || toks->count != ids->count)
      return tok_fail(c, RE_EFORMAT, ssub, toks ? toks : st, "\"tokens\" must be an array as long as \"ids\"");
    int32_t v[64];
    int64_t n = 0;
    for (const re_json_node *x = tok_node(c, ids->first); x; x = tok_node(c, x->next)) {
      if (x->type != RE_JSON_NUMBER || x->num_kind != RE_JSON_NUM_UINT || x->num > INT32_MAX)
        return tok_fail(c, RE_EFORMAT, ssub, x, "ids must be non-negative integers");
      v[n++] = (int32_t)x->num;
    }
    RE_TRY(add_part(p, 0, v, n));
  }
  return RE_OK;
}

re_status tok_post_parse(const tok_ctx *c, const re_json_node *obj, const char *path, tok_post *p) {
  memset(p, 0, sizeof *p);
  const char *type;
  RE_TRY(tok_get_type(c, obj, path, &type));
  if (!strcmp(type, "TemplateProcessing")) {
    static const char *const k[] = {"type", "single", "pair", "special_tokens", NULL};
    p->kind = TOK_POST_TEMPLATE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    return parse_template(c, obj, path, p);
  }
  if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
    static const char *const kb[] = {"type", "sep", "cls", NULL};
    static const char *const kr[] = {"type", "sep", "cls", "trim_offsets", "add_prefix_space", NULL};
    int roberta = type[0] == 'R';
    p->kind = roberta ? TOK_POST_ROBERTA : TOK_POST_BERT;
    RE_TRY(tok_known_keys(c, obj, path, roberta ? kr : kb));
    int32_t cls, sep;
    int dummy;
    RE_TRY(parse_pair(c, obj, path, "cls", &cls));
    RE_TRY(parse_pair(c, obj, path, "sep", &sep));
    RE_TRY(tok_get_bool(c, obj, path, "trim_offsets", 1, &dummy)); /* offsets only */
    RE_TRY(tok_get_bool(c, obj, path, "add_prefix_space", 1, &dummy));
    RE_TRY(add_part(p, 0, &cls, 1));
    RE_TRY(add_part(p, 1, NULL, 0));
    return add_part(p, 0, &sep, 1);
  }
  if (!strcmp(type, "ByteLevel")) {
    static const char *const k[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
    p->kind = TOK_POST_BYTELEVEL;
    RE_TRY(tok_known_keys(c, obj, path, k));
    return add_part(p, 1, NULL, 0);
  }
  if (!strcmp(type, "Sequence")) {
    static const char *const k[] = {"type", "processors", NULL};
    p->kind = TOK_POST_SEQUENCE;
    RE_TRY(tok_known_keys(c, obj, path, k));
    const re_json_node *list = tok_member(c, obj, "processors");
    if (!list || list->type != RE_JSON_ARRAY)
      return tok_fail(c, RE_EFORMAT, path, list ? list : obj, "\"processors\" must be an array");
    if (list->count > 64)
      return tok_fail(c, RE_EUNSUPPORTED, path, list, "more than 64 post-processors in a sequence");
    RE_TRY(re_calloc(list->count ? list->count : 1, sizeof *p->items, &p->items));
    int i = 0;
    for (const re_json_node *e = tok_node(c, list->first); e; e = tok_node(c, e->next), i++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.processors[%d]", path, i);
      p->n_items = i + 1;
      RE_TRY(tok_post_parse(c, e, sub, &p->items[i]));
    }
    return RE_OK;
  }
  return tok_fail(c, RE_EUNSUPPORTED, path, obj, "post-processor type \"%s\" is not supported", type);
}

void tok_post_free(tok_post *p) {
  if (!p)
    return;
  for (int i = 0; i < p->n_items; i++)
    tok_post_free(&p->items[i]);
  free(p->items);
  free(p->parts);
  free(p->ids);
  memset(p, 0, sizeof *p);
}

int64_t tok_post_added(const tok_post *p) {
  if (p->kind == TOK_POST_SEQUENCE) {
    int64_t n = 0;
    for (int i = 0; i < p->n_items; i++)
      n += tok_post_added(&p->items[i]);
    return n;
  }
  return p->n_ids;
}

re_status tok_post_apply(const tok_post *p, int add_special, tok_ids *ids, tok_ids *scratch) {
  if (p->kind == TOK_POST_SEQUENCE) {
    for (int i = 0; i < p->n_items; i++)
      RE_TRY(tok_post_apply(&p->items[i], add_special, ids, scratch));
    return RE_OK;
  }
  if ((p->kind == TOK_POST_BERT || p->kind == TOK_POST_ROBERTA) && !add_special)
    return RE_OK;
  scratch->n = 0;
  for (int i = 0; i < p->n_parts; i++) {
    const struct tok_post_part *q = &p->parts[i];
    if (q->seq)
      RE_TRY(tok_ids_add(scratch, ids->v, ids->n));
    else if (add_special)
      RE_TRY(tok_ids_add(scratch, p->ids + q->off, q->n));
  }
  ids->n = 0;
  return tok_ids_add(ids, scratch->v, scratch->n);
}
