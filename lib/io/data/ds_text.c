/* Plain UTF-8 text corpora. Each file is checked to be UTF-8 as a whole, then cut
 * into documents: unit "line", every line (less its LF and a CR before it); unit
 * "file", the whole file; with a separator, the lines between lines that hold only
 * the separator (a fortune file's "%"), joined by their line breaks. Blank
 * documents (only spaces, tabs, CR, LF) give no sample; a UTF-8 byte-order mark at
 * the start of a file is not part of the text. Labels may come from each file's
 * name (less its extension) or its folder's name: classes are the distinct names
 * in byte order. Open keeps each document's offset; reads hand the bytes (from the
 * mapped file) to the sequencer (ds_seq.c). */
#include "ds_corpus.h"
#include "ds_seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UNIT_LINE, UNIT_FILE, UNIT_SEPARATED };

typedef struct text_ds {
  re_ds_corpus c;
  int unit;
  char *sep;
  int64_t sep_len;
  int32_t *file_class; /* nfiles, or NULL */
} text_ds;

static void text_close(void *impl) {
  text_ds *d = (text_ds *)impl;
  re_ds_corpus_free(&d->c);
  free(d->sep);
  free(d->file_class);
  free(d);
}

static re_status text_doc(void *impl, int64_t k, const char **text, int64_t *len) {
  return re_ds_corpus_doc(&((text_ds *)impl)->c, k, text, len);
}

static void text_where(void *impl, int64_t k, char *buf, size_t cap) {
  re_ds_corpus_where(&((text_ds *)impl)->c, k, buf, cap);
}

static const re_ds_docs_ops text_docs = {text_doc, text_where, text_close};

static re_status add_doc(text_ds *d, re_ds_seq *s, int f, const char *data, int64_t a, int64_t b) {
  if (re_ds_text_blank(data + a, b - a))
    return RE_OK;
  char where[1200];
  if (d->unit == UNIT_FILE)
    snprintf(where, sizeof where, "%s", d->c.names[f]);
  else
    snprintf(where, sizeof where, "%s:%lld", d->c.names[f], (long long)re_ds_corpus_line(&d->c, a));
  RE_TRY(re_ds_corpus_add(&d->c, f, a, b - a));
  return re_ds_seq_doc(s, data + a, b - a, d->file_class ? d->file_class[f] : -1, where);
}

static re_status scan_file(text_ds *d, re_ds_seq *s, int f) {
  const char *data;
  int64_t n, a;
  RE_TRY(re_ds_corpus_map(&d->c, f, &data, &n, &a));
  int64_t bad = re_ds_utf8_invalid(data + a, n - a);
  if (bad >= 0)
    return re_err(RE_EFORMAT, "%s:%lld, byte %lld: invalid UTF-8 (byte 0x%02X)", d->c.names[f],
                  (long long)re_ds_corpus_line(&d->c, a + bad), (long long)(a + bad), (unsigned char)data[a + bad]);
  if (d->unit == UNIT_FILE)
    return add_doc(d, s, f, data, a, n);
  int64_t doc = a; /* separated: start of the current document */
  while (a < n) {
    const char *nl = memchr(data + a, '\n', (size_t)(n - a));
    int64_t b = nl ? nl - data : n, e = b;
    if (e > a && data[e - 1] == '\r')
      e--;
    if (d->unit == UNIT_LINE) {
      RE_TRY(add_doc(d, s, f, data, a, e));
    } else if (e - a == d->sep_len && !memcmp(data + a, d->sep, (size_t)d->sep_len)) {
      int64_t end = a; /* the document ends before the separator line's own line break */
      if (end > doc && data[end - 1] == '\n')
        end--;
      if (end > doc && data[end - 1] == '\r')
        end--;
      RE_TRY(add_doc(d, s, f, data, doc, end));
      doc = b + 1;
    }
    a = b + 1;
  }
  if (d->unit == UNIT_SEPARATED && doc < n) {
    int64_t end = n;
    if (end > doc && data[end - 1] == '\n')
      end--;
    if (end > doc && data[end - 1] == '\r')
      end--;
    RE_TRY(add_doc(d, s, f, data, doc, end));
  }
  return RE_OK;
}

/* The class name of a file: its base name less the extension, or its folder's name. */
static re_status class_name(const char *path, int folder, char **out) {
  const char *end = path + strlen(path), *base;
  while (end > path && end[-1] == '/')
    end--;
  base = end;
  while (base > path && base[-1] != '/')
    base--;
  if (folder) {
    end = base;
    while (end > path && end[-1] == '/')
      end--;
    base = end;
    while (base > path && base[-1] != '/')
      base--;
    if (base == end)
      return re_err(RE_EINVAL, "%s: label_from folder: the path names no folder (give it as folder/file)", path);
  } else {
    for (const char *p = end; p > base + 1; p--)
      if (p[-1] == '.') {
        end = p - 1;
        break;
      }
  }
  RE_TRY(re_malloc(end - base + 1, 1, out));
  memcpy(*out, base, (size_t)(end - base));
  (*out)[end - base] = '\0';
  return RE_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Classes from names: the sorted distinct names, and each file's index among them. */
static re_status make_classes(text_ds *d, const char *const *files, int nfiles, int folder, char ***names_out,
                              int64_t *nnames) {
  char **per = NULL, **sorted = NULL;
  re_status st = RE_OK;
  int64_t n = 0;
  RE_CHECK(re_calloc(nfiles, sizeof *per, &per));
  RE_CHECK(re_calloc(nfiles, sizeof *sorted, &sorted));
  RE_CHECK(re_malloc(nfiles, sizeof *d->file_class, &d->file_class));
  for (int f = 0; f < nfiles; f++) {
    RE_CHECK(class_name(files[f], folder, &per[f]));
    sorted[f] = per[f];
  }
  qsort(sorted, (size_t)nfiles, sizeof *sorted, cmp_str);
  for (int f = 0; f < nfiles; f++)
    if (n == 0 || strcmp(sorted[n - 1], sorted[f]))
      sorted[n++] = sorted[f];
  char **names = NULL;
  RE_CHECK(re_calloc(n, sizeof *names, &names));
  for (int64_t c = 0; c < n && st == RE_OK; c++)
    st = re_strdup(sorted[c], &names[c]);
  for (int f = 0; f < nfiles && st == RE_OK; f++) {
    char **hit = bsearch(&per[f], sorted, (size_t)n, sizeof *sorted, cmp_str);
    d->file_class[f] = (int32_t)(hit - sorted);
  }
  if (st != RE_OK) {
    for (int64_t c = 0; c < n; c++)
      free(names[c]);
    free(names);
    goto done;
  }
  *names_out = names;
  *nnames = n;
done:
  for (int f = 0; per && f < nfiles; f++)
    free(per[f]);
  free(per);
  free(sorted);
  return st;
}

re_status re_dataset_open_text(const char *const *files, int nfiles, const char *unit, const char *separator,
                               const char *label_from, const re_text_options *opt, re_dataset **out) {
  re_status st = RE_OK;
  text_ds *d = NULL;
  re_ds_seq *s = NULL;
  char **names = NULL;
  int64_t nnames = 0;
  *out = NULL;
  if (nfiles < 1)
    return re_err(RE_EINVAL, "text: no files given");
  int u = separator ? UNIT_SEPARATED : UNIT_LINE;
  if (unit && !strcmp(unit, "file") && !separator)
    u = UNIT_FILE;
  else if (unit && strcmp(unit, "line") && strcmp(unit, "file"))
    return re_err(RE_EINVAL, "text: unit '%s' is not supported (line or file)", unit);
  else if (unit && !strcmp(unit, "line") && separator)
    return re_err(RE_EINVAL, "text: a separator makes documents of several lines; it does not go with unit line");
  if (separator && (!*separator || strchr(separator, '\n') || strchr(separator, '\r')))
    return re_err(RE_EINVAL, "text: the separator must be a non-empty line without line breaks");
  if (label_from && strcmp(label_from, "name") && strcmp(label_from, "folder"))
    return re_err(RE_EINVAL, "text: label_from '%s' is not supported (name or folder)", label_from);
  RE_CHECK(re_ds_seq_new(opt, "text", label_from != NULL, &s));
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  d->unit = u;
  RE_CHECK(re_ds_corpus_init(&d->c, files, nfiles, u != UNIT_FILE));
  if (separator) {
    RE_CHECK(re_strdup(separator, &d->sep));
    d->sep_len = (int64_t)strlen(separator);
  }
  if (label_from)
    RE_CHECK(make_classes(d, files, nfiles, !strcmp(label_from, "folder"), &names, &nnames));
  for (int f = 0; f < nfiles; f++)
    RE_CHECK(scan_file(d, s, f));
  return re_ds_seq_finish(&s, &text_docs, d, names, nnames, out);
done:
  for (int64_t c = 0; c < nnames; c++)
    free(names[c]);
  free(names);
  re_ds_seq_free(&s);
  if (d)
    text_close(d);
  return st;
}
