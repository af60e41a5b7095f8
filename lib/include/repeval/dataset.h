/* Datasets: samples in a fixed global order, read in ranges, with labels.
 * Formats: IDX (MNIST / Fashion-MNIST, plain or .gz), CIFAR-10/100 binary, .npy
 * input/label pairs, WebDataset tar shards (.tar, .tar.gz, .tar.zst) of images,
 * arrays or text; token ids (.npy with mask and labels), token streams (.bin,
 * 1-D .npy), JSON Lines and plain text through a tokenizer.json.
 *
 * A sample is either a float32 vector of `sample_dim` values in C, H, W order
 * (images) or the flattened .npy row, read with re_dataset_read; or, in a token
 * dataset (info.tokens), seq_len token ids with an attention mask, read with
 * re_dataset_read_tokens. Image pixels stored as uint8 are scaled to [0, 1]
 * (as torchvision's ToTensor does), then the optional per-channel normalisation
 * (x - mean[c]) / std[c] is applied. Samples are defined by their global index:
 * any range [i, j) reads exactly what a sequential read gives there. The formats
 * and their rules are in docs/formats.md ("Datasets"). */
#ifndef REPEVAL_DATASET_H
#define REPEVAL_DATASET_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct re_dataset_info {
  int64_t count;      /* number of samples */
  int64_t sample_dim; /* floats per sample */
  int channels, height, width; /* image geometry (1, 1, sample_dim for non-images) */
  int has_labels;
  int64_t num_classes; /* max label + 1 over the dataset, or 0 when unknown/no labels */
  int tokens;          /* 1: token samples (re_dataset_read_tokens); sample_dim = width = seq_len */
  int64_t seq_len;     /* tokens: T, token positions per sample */
  int64_t vocab;       /* tokens: every id is below it (the tokenizer's vocabulary, the `vocab` option or max id + 1) */
} re_dataset_info;

/* How text becomes token samples (jsonl, text, WebDataset .txt). Zero is the default
 * of every field except seq_len and the tokenizer. */
typedef enum re_seq_mode {
  RE_SEQ_TRUNCATE = 0, /* one document per sample: cut to seq_len, padded, labels kept */
  RE_SEQ_PACK = 1      /* documents joined with EOS, cut into full samples of seq_len; no labels */
} re_seq_mode;

typedef struct re_text_options {
  const char *tokenizer;  /* tokenizer.json or the folder holding it */
  struct re_tokenizer *tokenizer_handle; /* or an open tokenizer: borrowed until close, wins over `tokenizer`;
                                          * its file's truncation and padding are the caller's to check */
  int64_t seq_len;        /* T > 0 */
  re_seq_mode mode;
  int add_bos;            /* prepend BOS when the post-processor's special tokens do not start with it */
  int no_special;         /* 1: leave out the post-processor's special tokens ([CLS] ... [SEP], <s>) */
  int pad_left;           /* truncate mode: padding before the tokens (else after) */
  const char *eos_token;  /* pack mode: the token joining documents (NULL: the tokenizer's EOS) */
} re_text_options;

typedef struct re_dataset re_dataset;

/* IDX images (+ optional labels, NULL for none); `.gz` files are decompressed. */
re_status re_dataset_open_idx(const char *images, const char *labels, re_dataset **out);
/* CIFAR binary batches: records of label byte(s) + 3072 pixel bytes (3 x 32 x 32).
 * label_bytes: 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine); use_fine picks the
 * label for CIFAR-100. Files are concatenated in the order given. */
re_status re_dataset_open_cifar(const char *const *files, int nfiles, int label_bytes, int use_fine,
                                re_dataset **out);
/* .npy inputs (N x ...) and labels (N, integer dtype; NULL for none). */
re_status re_dataset_open_npy(const char *inputs, const char *labels, re_dataset **out);
/* WebDataset shards, in the order given; samples are consecutive members sharing a
 * key, with an input member of extension `input_ext` ("png", "npy", or "auto": the
 * first sample decides, .png when it has one, else .npy) and an optional integer
 * label member `label_ext` ("cls"; NULL for none). */
re_status re_dataset_open_wds(const char *const *shards, int nshards, const char *input_ext,
                              const char *label_ext, re_dataset **out);
/* Token ids: ids .npy (N x T, integer), mask .npy (N x T, 0/1, right or left padding,
 * at least one token per row; NULL: all tokens) and labels .npy (N, integer; NULL for
 * none). vocab > 0: every id must be below it; 0: info.vocab is max id + 1. All three
 * are checked at open. */
re_status re_dataset_open_tokens(const char *ids, const char *mask, const char *labels, int64_t vocab,
                                 re_dataset **out);
/* A token stream cut into samples of seq_len ids (no padding, the last partial sample
 * dropped): flat .bin files of little-endian dtype "uint16" or "uint32" (nanoGPT,
 * Megatron) or 1-D integer .npy files (dtype NULL), concatenated in the order given.
 * vocab > 0: ids are checked against it on read; 0: a scan at open finds max id + 1. */
re_status re_dataset_open_token_stream(const char *const *files, int nfiles, const char *dtype, int64_t seq_len,
                                       int64_t vocab, re_dataset **out);
/* JSON Lines: one object per non-blank line; the string member `field` is the text,
 * the optional member `label_field` (NULL for none) an integer class or a string
 * (classes numbered in order of first appearance, see re_dataset_class_name). */
re_status re_dataset_open_jsonl(const char *const *files, int nfiles, const char *field, const char *label_field,
                                const re_text_options *opt, re_dataset **out);
/* Plain UTF-8 text files. unit "line" (NULL): every non-blank line is a document;
 * "file": each file is one; separator (NULL for none): documents are the text between
 * lines that hold only the separator ("%" for fortune files). label_from (NULL for
 * none): "name" (the file's name without extension) or "folder" (its folder's name);
 * classes are the sorted distinct names. */
re_status re_dataset_open_text(const char *const *files, int nfiles, const char *unit, const char *separator,
                               const char *label_from, const re_text_options *opt, re_dataset **out);
/* WebDataset shards of text: each sample's `.txt` member is a document; label member
 * `label_ext` ("cls": an integer; NULL for none). */
re_status re_dataset_open_wds_text(const char *const *shards, int nshards, const char *label_ext,
                                   const re_text_options *opt, re_dataset **out);

/* In-memory variants (plain or gzip IDX, one CIFAR batch, one tar shard); `name`
 * stands for the file in messages. The bytes are not copied and must stay valid
 * until the dataset is closed. */
re_status re_dataset_open_idx_memory(const void *images, int64_t images_len, const void *labels,
                                     int64_t labels_len, const char *name, re_dataset **out);
/* One CIFAR batch held in memory (see re_dataset_open_cifar). */
re_status re_dataset_open_cifar_memory(const void *buf, int64_t len, const char *name, int label_bytes,
                                       int use_fine, re_dataset **out);
/* One WebDataset tar shard held in memory (see re_dataset_open_wds). */
re_status re_dataset_open_wds_memory(const void *buf, int64_t len, const char *name, const char *input_ext,
                                     const char *label_ext, re_dataset **out);
/* A subset by folds: the samples of *inner dealt in turn into `folds` folds (sample i
 * into fold i mod folds, 2 <= folds <= 10^6) and the nuse folds listed in `use` kept, in
 * their order in *inner (a held-out split that takes every k-th sample of each group of
 * a grouped corpus). Takes *inner (set to NULL; closed with the subset, also on
 * failure), which must not be normalised; geometry, labels and class names are its. */
re_status re_dataset_open_folds(re_dataset **inner, int64_t folds, const int64_t *use, int nuse, re_dataset **out);
/* Close (NULL allowed); sets *d to NULL. */
void re_dataset_close(re_dataset **d);

/* ---- opening by format name (what job files and command lines use) ---- */

/* A dataset described by its format name and options; fields a format does not use
 * stay NULL / 0. Strings are borrowed until re_dataset_open_source returns. */
typedef struct re_dataset_source {
  const char *format;        /* one of re_dataset_format_names() */
  const char *const *files;  /* the format's files (its files_key): images, inputs, ids, corpus files, shards */
  int nfiles;
  const char *labels;        /* idx, npy, tokens: the labels file */
  const char *mask;          /* tokens: the mask .npy */
  int64_t vocab;             /* tokens, token-stream: ids must be below it (0: not given) */
  const char *dtype;         /* token-stream: "uint16" | "uint32" for .bin files */
  const char *field;         /* jsonl: the text member ("text" when NULL) */
  const char *label_field;   /* jsonl: the label member */
  const char *unit;          /* text: "line" | "file" */
  const char *separator;     /* text: the separator line */
  const char *label_from;    /* text: "name" | "folder" */
  const char *input_ext;     /* webdataset: "png" | "npy" | "txt" | "auto" (NULL: auto, txt with a tokenizer) */
  const char *label_ext;     /* webdataset: label member (NULL: "cls"; "none": no labels) */
  int coarse;                /* cifar100: the coarse label instead of the fine one */
  re_text_options text;      /* jsonl, text, webdataset .txt */
} re_dataset_source;

/* What a format takes, for configuration layers. */
typedef struct re_dataset_format {
  const char *name;               /* "jsonl" */
  const char *files_key;          /* the key naming its files: images, inputs, files, shards, ids */
  int max_files;                  /* 1, or 0 for any number */
  int tokens;                     /* 1: token samples */
  const char *const *options;     /* the other keys re_dataset_source_set takes (NULL-terminated) */
  const char *const *path_options; /* those of `options` whose value is a path (NULL-terminated) */
} re_dataset_format;

/* The format called `name`, or NULL. */
const re_dataset_format *re_dataset_format_find(const char *name);
/* "idx, cifar, cifar100, npy, webdataset, tokens, token-stream, jsonl, text", for messages. */
const char *re_dataset_format_names(void);
/* Set option `key` of src->format from its text (a YAML scalar or command-line value);
 * `value` is borrowed. Unknown keys and bad values are refused naming the key. */
re_status re_dataset_source_set(re_dataset_source *src, const char *key, const char *value);
/* Whether the dataset src describes has labels, as far as its format and options tell
 * (idx/npy/tokens: a labels file; cifar: always; webdataset: label_ext not "none";
 * jsonl: label_field; text: label_from; token-stream: never). */
int re_dataset_source_labeled(const re_dataset_source *src);
/* Open the dataset src describes (the per-format functions above do the work). */
re_status re_dataset_open_source(const re_dataset_source *src, re_dataset **out);

/* Geometry, count and labels. */
const re_dataset_info *re_dataset_get_info(const re_dataset *d);
/* Name of class c when labels come from names (jsonl string labels, text file or
 * folder names), else NULL (also for c out of range). */
const char *re_dataset_class_name(const re_dataset *d, int64_t c);
/* Per-channel normalisation applied on read; n must equal the channel count (not for token datasets). */
re_status re_dataset_set_normalize(re_dataset *d, const float *mean, const float *std, int n);
/* Read samples [i, j) into x ((j - i) x sample_dim) and labels (j - i, may be NULL;
 * -1 when the dataset has no labels). Sequential ranges are fast for every format;
 * random ranges may rescan (WebDataset restarts the shard holding i when i is behind
 * its stream position). */
re_status re_dataset_read(re_dataset *d, int64_t i, int64_t j, float *x, int32_t *labels);
/* Read token samples [i, j) of a token dataset: ids ((j - i) x seq_len, row-major),
 * mask ((j - i) x seq_len: 1 token, 0 padding; every row has a token) and labels
 * (j - i, may be NULL; -1 without labels). Text pads with the tokenizer's pad id (else
 * its EOS, else 0); token files give their ids as stored. */
re_status re_dataset_read_tokens(re_dataset *d, int64_t i, int64_t j, int64_t *ids, uint8_t *mask, int32_t *labels);

/* Contiguous shard of rank r of R over n samples: [floor(n r / R), floor(n (r+1) / R)). */
void re_shard_range(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

#ifdef __cplusplus
}
#endif
#endif
