/* The files and document ranges of a text corpus; see ds_corpus.h. */
#include "ds_corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

re_status re_ds_corpus_init(re_ds_corpus *c, const char *const *files, int nfiles, int lines) {
  memset(c, 0, sizeof *c);
  c->cur = -1;
  c->lines = lines;
  if (nfiles < 1)
    return re_err(RE_EINVAL, "no files given");
  RE_TRY(re_calloc(nfiles, sizeof *c->names, &c->names));
  c->nfiles = nfiles;
  for (int f = 0; f < nfiles; f++) {
    RE_TRY(re_check_regular(files[f]));
    RE_TRY(re_strdup(files[f], &c->names[f]));
  }
  return RE_OK;
}

re_status re_ds_corpus_map(re_ds_corpus *c, int f, const char **data, int64_t *len, int64_t *bom) {
  if (c->cur != f) {
    re_ds_unmap(&c->map);
    c->cur = -1;
    RE_TRY(re_ds_map_file(c->names[f], &c->map));
    c->cur = f;
  }
  const char *p = (const char *)c->map.base;
  *data = p ? p : "";
  *len = c->map.len;
  *bom = c->map.len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3) ? 3 : 0;
  return RE_OK;
}

re_status re_ds_corpus_add(re_ds_corpus *c, int f, int64_t off, int64_t len) {
  if (len > RE_DS_MAX_DOC)
    return re_err(RE_EUNSUPPORTED, "%s:%lld: a document of %lld bytes (at most %d)", c->names[f],
                  (long long)re_ds_corpus_line(c, off), (long long)len, RE_DS_MAX_DOC);
  if (c->ndocs == c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 1024;
    RE_TRY(re_realloc(&c->file, cap, sizeof *c->file));
    RE_TRY(re_realloc(&c->off, cap, sizeof *c->off));
    RE_TRY(re_realloc(&c->len, cap, sizeof *c->len));
    c->cap = cap;
  }
  c->file[c->ndocs] = f;
  c->off[c->ndocs] = off;
  c->len[c->ndocs] = (int32_t)len;
  c->ndocs++;
  return RE_OK;
}

re_status re_ds_corpus_doc(re_ds_corpus *c, int64_t k, const char **p, int64_t *len) {
  const char *data;
  int64_t n, bom;
  RE_TRY(re_ds_corpus_map(c, c->file[k], &data, &n, &bom));
  if (c->off[k] + c->len[k] > n)
    return re_err(RE_EFORMAT, "%s: %lld bytes, but document %lld ends at byte %lld (changed since open?)",
                  c->names[c->file[k]], (long long)n, (long long)k, (long long)(c->off[k] + c->len[k]));
  *p = data + c->off[k];
  *len = c->len[k];
  return RE_OK;
}

int64_t re_ds_corpus_line(const re_ds_corpus *c, int64_t off) {
  const char *p = (const char *)c->map.base;
  int64_t line = 1;
  for (int64_t k = 0; p && k < off && k < c->map.len; k++)
    line += p[k] == '\n';
  return line;
}

void re_ds_corpus_where(re_ds_corpus *c, int64_t k, char *buf, size_t cap) {
  const char *name = c->names[c->file[k]];
  if (c->lines && c->cur == c->file[k]) /* never remaps: a message may be pending */
    snprintf(buf, cap, "%s:%lld", name, (long long)re_ds_corpus_line(c, c->off[k]));
  else if (c->lines)
    snprintf(buf, cap, "%s, byte %lld", name, (long long)c->off[k]);
  else
    snprintf(buf, cap, "%s", name);
}

void re_ds_corpus_free(re_ds_corpus *c) {
  for (int f = 0; f < c->nfiles; f++)
    free(c->names[f]);
  free(c->names);
  re_ds_unmap(&c->map);
  free(c->file);
  free(c->off);
  free(c->len);
  memset(c, 0, sizeof *c);
  c->cur = -1;
}
