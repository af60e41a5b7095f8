/* Private: sequencing of text documents into token samples, shared by the text
 * formats (ds_jsonl.c, ds_text.c, WebDataset .txt in ds_wds.c).
 *
 * A format scans its files once at open and hands every document to
 * re_ds_seq_doc in order (pack mode tokenizes it there to count its tokens);
 * afterwards re_ds_seq_finish wraps the format's document reader into a token
 * dataset, which fetches and tokenizes documents on read. Only offsets, labels
 * and token counts are kept per document; tokens live one document at a time. */
#ifndef REPEVAL_DS_SEQ_H
#define REPEVAL_DS_SEQ_H

#include "ds_internal.h"

/* What a format provides to read document k (0 .. documents - 1) again. */
typedef struct re_ds_docs_ops {
  /* UTF-8 text of document k (len bytes), valid until the next call or close. */
  re_status (*text)(void *impl, int64_t k, const char **text, int64_t *len);
  /* Where document k is, for messages ("corpus.jsonl:12"), into buf (cap bytes). */
  void (*where)(void *impl, int64_t k, char *buf, size_t cap);
  /* Free the format's state (never NULL). */
  void (*close)(void *impl);
} re_ds_docs_ops;

typedef struct re_ds_seq re_ds_seq;

/* Check the options and load the tokenizer; `what` names the format in messages and
 * `labelled` says whether labels were asked for (pack mode refuses them). */
re_status re_ds_seq_new(const re_text_options *o, const char *what, int labelled, re_ds_seq **out);
/* The next document: its text (UTF-8 already checked by the format), its label (-1
 * when unlabelled) and where it is (for messages). */
re_status re_ds_seq_doc(re_ds_seq *s, const char *text, int64_t len, int32_t label, const char *where);
/* Number of documents given so far. */
int64_t re_ds_seq_docs(const re_ds_seq *s);
/* Make the dataset: the format's reader (ops, impl: owned from now on, closed on
 * failure too) and class names (nclass, owned; NULL when labels are integers).
 * *s is consumed. */
re_status re_ds_seq_finish(re_ds_seq **s, const re_ds_docs_ops *ops, void *impl, char **class_names, int64_t nclass,
                           re_dataset **out);
/* Free a sequencer that was not finished (NULL allowed). */
void re_ds_seq_free(re_ds_seq **s);

/* 1 when text holds only spaces, tabs, CR and LF (such documents give no sample). */
int re_ds_text_blank(const char *text, int64_t len);

#endif
