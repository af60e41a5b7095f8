/* Private: the files of a text corpus (jsonl, text) and the byte range of every
 * document in them, for ds_jsonl.c and ds_text.c. One file is mapped at a time
 * (a corpus may have more files than a process may map); documents are found by
 * offset, and line numbers are counted only when a message needs one. */
#ifndef REPEVAL_DS_CORPUS_H
#define REPEVAL_DS_CORPUS_H

#include "ds_internal.h"

#define RE_DS_MAX_DOC INT32_MAX /* bytes of one document (or JSON line) */

typedef struct re_ds_corpus {
  char **names; /* nfiles */
  int nfiles;
  int cur;      /* file mapped in map, -1 none */
  re_ds_map map;
  int lines;    /* messages name the line of a document */
  int32_t *file; /* ndocs: file of document k */
  int64_t *off;  /* ndocs: byte offset in its file */
  int32_t *len;  /* ndocs: bytes */
  int64_t ndocs, cap;
} re_ds_corpus;

/* Copy the file names (each must be a regular file); `lines`: see above. */
re_status re_ds_corpus_init(re_ds_corpus *c, const char *const *files, int nfiles, int lines);
/* Map file f (unmapping the previous one): its bytes, after a UTF-8 byte-order mark. */
re_status re_ds_corpus_map(re_ds_corpus *c, int f, const char **data, int64_t *len, int64_t *bom);
/* Record a document: bytes [off, off + len) of file f. */
re_status re_ds_corpus_add(re_ds_corpus *c, int f, int64_t off, int64_t len);
/* Bytes of document k (mapping its file); a file that shrank since open is refused. */
re_status re_ds_corpus_doc(re_ds_corpus *c, int64_t k, const char **p, int64_t *len);
/* "file:line" (or "file") of document k, for messages; never maps a file. */
void re_ds_corpus_where(re_ds_corpus *c, int64_t k, char *buf, size_t cap);
/* Line (1-based) of byte off in the mapped file. */
int64_t re_ds_corpus_line(const re_ds_corpus *c, int64_t off);
/* Free everything (a zeroed corpus is fine). */
void re_ds_corpus_free(re_ds_corpus *c);

#endif
