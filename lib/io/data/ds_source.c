/* Datasets by format name: the one list of dataset formats, their option names
 * (as job files and command lines spell them), option values from text, and the
 * dispatch to the per-format open functions. */
#include "ds_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ------------------------------------------------------------ */

enum { OPT_STR, OPT_POSINT, OPT_BOOL, OPT_NOT_BOOL, OPT_MODE, OPT_PADDING };

typedef struct opt {
  const char *name;
  int kind;
  size_t off; /* in re_dataset_source */
} opt;

#define SRC(f) offsetof(re_dataset_source, f)

static const opt all_opts[] = {
    {"labels", OPT_STR, SRC(labels)},
    {"mask", OPT_STR, SRC(mask)},
    {"vocab", OPT_POSINT, SRC(vocab)},
    {"dtype", OPT_STR, SRC(dtype)},
    {"field", OPT_STR, SRC(field)},
    {"label_field", OPT_STR, SRC(label_field)},
    {"unit", OPT_STR, SRC(unit)},
    {"separator", OPT_STR, SRC(separator)},
    {"label_from", OPT_STR, SRC(label_from)},
    {"input_ext", OPT_STR, SRC(input_ext)},
    {"label_ext", OPT_STR, SRC(label_ext)},
    {"coarse", OPT_BOOL, SRC(coarse)},
    {"tokenizer", OPT_STR, SRC(text.tokenizer)},
    {"seq_len", OPT_POSINT, SRC(text.seq_len)},
    {"mode", OPT_MODE, SRC(text.mode)},
    {"add_bos", OPT_BOOL, SRC(text.add_bos)},
    {"special_tokens", OPT_NOT_BOOL, SRC(text.no_special)},
    {"padding", OPT_PADDING, SRC(text.pad_left)},
    {"eos_token", OPT_STR, SRC(text.eos_token)},
};

#define TEXT_OPTS "tokenizer", "seq_len", "mode", "add_bos", "special_tokens", "padding", "eos_token"

static const char *const o_none[] = {NULL};
static const char *const o_labels[] = {"labels", NULL};
static const char *const o_cifar100[] = {"coarse", NULL};
static const char *const o_wds[] = {"input_ext", "label_ext", TEXT_OPTS, NULL};
static const char *const o_tokens[] = {"mask", "labels", "vocab", NULL};
static const char *const o_stream[] = {"dtype", "seq_len", "vocab", NULL};
static const char *const o_jsonl[] = {"field", "label_field", TEXT_OPTS, NULL};
static const char *const o_text[] = {"unit", "separator", "label_from", TEXT_OPTS, NULL};
static const char *const p_labels[] = {"labels", NULL};
static const char *const p_tokenizer[] = {"tokenizer", NULL};
static const char *const p_tokens[] = {"mask", "labels", NULL};

static const re_dataset_format formats[] = {
    {"idx", "images", 1, 0, o_labels, p_labels},
    {"cifar", "files", 0, 0, o_none, o_none},
    {"cifar100", "files", 0, 0, o_cifar100, o_none},
    {"npy", "inputs", 1, 0, o_labels, p_labels},
    {"webdataset", "shards", 0, 0, o_wds, p_tokenizer},
    {"tokens", "ids", 1, 1, o_tokens, p_tokens},
    {"token-stream", "files", 0, 1, o_stream, o_none},
    {"jsonl", "files", 0, 1, o_jsonl, p_tokenizer},
    {"text", "files", 0, 1, o_text, p_tokenizer},
};
#define NFORMATS ((int)(sizeof formats / sizeof *formats))

const re_dataset_format *re_dataset_format_find(const char *name) {
  for (int f = 0; name && f < NFORMATS; f++)
    if (!strcmp(formats[f].name, name))
      return &formats[f];
  return NULL;
}

const char *re_dataset_format_names(void) {
  return "idx, cifar, cifar100, npy, webdataset, tokens, token-stream, jsonl, text";
}

static int listed(const char *const *list, const char *name) {
  for (; *list; list++)
    if (!strcmp(*list, name))
      return 1;
  return 0;
}

static const opt *find_opt(const char *name) {
  for (size_t k = 0; k < sizeof all_opts / sizeof *all_opts; k++)
    if (!strcmp(all_opts[k].name, name))
      return &all_opts[k];
  return NULL;
}

static re_status unknown_format(const char *name) {
  return re_err(RE_EINVAL, "unknown dataset format '%s' (%s)", name ? name : "(none)", re_dataset_format_names());
}

static void options_text(const re_dataset_format *f, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (const char *const *o = f->options; *o && n + 1 < cap; o++) {
    size_t len = strlen(*o);
    if (n + len + 3 >= cap)
      break;
    if (n)
      memcpy(buf + n, ", ", 2), n += 2;
    memcpy(buf + n, *o, len), n += len;
    buf[n] = '\0';
  }
  if (!n)
    snprintf(buf, cap, "none");
}

static int is_true(const char *v) { return !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"); }
static int is_false(const char *v) { return !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"); }

re_status re_dataset_source_set(re_dataset_source *src, const char *key, const char *value) {
  const re_dataset_format *f = re_dataset_format_find(src->format);
  if (!f)
    return unknown_format(src->format);
  if (!listed(f->options, key)) {
    char opts[512];
    options_text(f, opts, sizeof opts);
    return re_err(RE_EINVAL, "dataset format '%s' has no option '%s' (its options: %s)", f->name, key, opts);
  }
  const opt *o = find_opt(key);
  char *base = (char *)src + o->off;
  if (!value)
    return re_err(RE_EINVAL, "dataset option '%s': no value", key);
  switch (o->kind) {
  case OPT_STR:
    *(const char **)base = value;
    return RE_OK;
  case OPT_POSINT: {
    int64_t v = 0;
    const char *p = value;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (v > (INT64_MAX - (*p - '0')) / 10)
        return re_err(RE_EINVAL, "dataset option '%s': '%s' is too large", key, value);
      v = v * 10 + (*p - '0');
    }
    if (p == value || *p || v < 1)
      return re_err(RE_EINVAL, "dataset option '%s': expected a positive integer, got '%s'", key, value);
    *(int64_t *)base = v;
    return RE_OK;
  }
  case OPT_BOOL:
  case OPT_NOT_BOOL: {
    int v = is_true(value) ? 1 : is_false(value) ? 0 : -1;
    if (v < 0)
      return re_err(RE_EINVAL, "dataset option '%s': expected true or false, got '%s'", key, value);
    *(int *)base = o->kind == OPT_NOT_BOOL ? !v : v;
    return RE_OK;
  }
  case OPT_MODE:
    if (!strcmp(value, "truncate") || !strcmp(value, "pack")) {
      *(re_seq_mode *)base = !strcmp(value, "pack") ? RE_SEQ_PACK : RE_SEQ_TRUNCATE;
      return RE_OK;
    }
    return re_err(RE_EINVAL, "dataset option 'mode': expected truncate or pack, got '%s'", value);
  default: /* OPT_PADDING */
    if (!strcmp(value, "right") || !strcmp(value, "left")) {
      *(int *)base = !strcmp(value, "left");
      return RE_OK;
    }
    return re_err(RE_EINVAL, "dataset option 'padding': expected right or left, got '%s'", value);
  }
}

/* An option of another format that was set in src. */
static const char *stray_option(const re_dataset_source *src, const re_dataset_format *f) {
  for (size_t k = 0; k < sizeof all_opts / sizeof *all_opts; k++) {
    const opt *o = &all_opts[k];
    if (listed(f->options, o->name))
      continue;
    if (!strcmp(o->name, "seq_len") && !strcmp(f->name, "token-stream"))
      continue;
    const char *base = (const char *)src + o->off;
    int set = o->kind == OPT_STR      ? *(const char *const *)base != NULL
              : o->kind == OPT_POSINT ? *(const int64_t *)base != 0
              : o->kind == OPT_MODE   ? *(const re_seq_mode *)base != RE_SEQ_TRUNCATE
                                      : *(const int *)base != 0;
    if (set)
      return o->name;
  }
  if (src->text.tokenizer_handle && !listed(f->options, "tokenizer"))
    return "tokenizer";
  return NULL;
}

int re_dataset_source_labeled(const re_dataset_source *src) {
  const char *f = src->format ? src->format : "";
  if (!strcmp(f, "idx") || !strcmp(f, "npy") || !strcmp(f, "tokens"))
    return src->labels != NULL;
  if (!strcmp(f, "cifar") || !strcmp(f, "cifar100"))
    return 1;
  if (!strcmp(f, "webdataset"))
    return !src->label_ext || strcmp(src->label_ext, "none");
  if (!strcmp(f, "jsonl"))
    return src->label_field != NULL;
  if (!strcmp(f, "text"))
    return src->label_from != NULL;
  return 0;
}

re_status re_dataset_open_source(const re_dataset_source *src, re_dataset **out) {
  *out = NULL;
  const re_dataset_format *f = re_dataset_format_find(src->format);
  if (!f)
    return unknown_format(src->format);
  const char *stray = stray_option(src, f);
  if (stray) {
    char opts[512];
    options_text(f, opts, sizeof opts);
    return re_err(RE_EINVAL, "dataset format '%s' has no option '%s' (its options: %s)", f->name, stray, opts);
  }
  if (src->nfiles < 1 || !src->files)
    return re_err(RE_EINVAL, "dataset format '%s': no %s given", f->name, f->files_key);
  if (f->max_files && src->nfiles > f->max_files)
    return re_err(RE_EINVAL, "dataset format '%s': %d %s given, it takes %d", f->name, src->nfiles, f->files_key,
                  f->max_files);
  const char *name = f->name, *const *files = src->files;
  if (!strcmp(name, "idx"))
    return re_dataset_open_idx(files[0], src->labels, out);
  if (!strcmp(name, "cifar") || !strcmp(name, "cifar100"))
    return re_dataset_open_cifar(files, src->nfiles, !strcmp(name, "cifar") ? 1 : 2, !src->coarse, out);
  if (!strcmp(name, "npy"))
    return re_dataset_open_npy(files[0], src->labels, out);
  if (!strcmp(name, "tokens"))
    return re_dataset_open_tokens(files[0], src->mask, src->labels, src->vocab, out);
  if (!strcmp(name, "token-stream")) {
    if (src->text.seq_len < 1)
      return re_err(RE_EINVAL, "dataset format 'token-stream' needs seq_len");
    return re_dataset_open_token_stream(files, src->nfiles, src->dtype, src->text.seq_len, src->vocab, out);
  }
  if (!strcmp(name, "jsonl"))
    return re_dataset_open_jsonl(files, src->nfiles, src->field ? src->field : "text", src->label_field, &src->text,
                                 out);
  if (!strcmp(name, "text"))
    return re_dataset_open_text(files, src->nfiles, src->unit, src->separator, src->label_from, &src->text, out);
  /* webdataset: labels from .cls unless "none"; text when the members are .txt */
  const char *label_ext = !src->label_ext ? "cls" : !strcmp(src->label_ext, "none") ? NULL : src->label_ext;
  int auto_ext = !src->input_ext || !strcmp(src->input_ext, "auto");
  int has_tok = src->text.tokenizer || src->text.tokenizer_handle;
  if ((src->input_ext && !strcmp(src->input_ext, "txt")) || (auto_ext && has_tok))
    return re_dataset_open_wds_text(files, src->nfiles, label_ext, &src->text, out);
  if (has_tok || src->text.seq_len)
    return re_err(RE_EINVAL, "dataset format 'webdataset': input_ext '%s' holds images or arrays; the text options "
                  "(tokenizer, seq_len, ...) go with input_ext txt", src->input_ext);
  return re_dataset_open_wds(files, src->nfiles, src->input_ext ? src->input_ext : "auto", label_ext, out);
}
