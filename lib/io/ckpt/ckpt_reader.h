/* Private: how checkpoint readers register with the dispatcher (checkpoint.c).
 * Each reader defines one re_ckpt_reader; checkpoint.c keeps the table of them
 * and tries their probes in order. A reader's open allocates and fills a whole
 * checkpoint with the helpers of ckpt_internal.h; the model-folder reader opens
 * its shards through the other readers' entries, never through re_ckpt_open. */
#ifndef REPEVAL_CKPT_READER_H
#define REPEVAL_CKPT_READER_H

#include "ckpt_internal.h"

/* What a probe sees: the path, whether it is a folder, and a file's first bytes. */
typedef struct re_ckpt_probe {
  const char *path;
  int is_dir;
  const uint8_t *head; /* the first nhead bytes of a file (NULL for folders) */
  int64_t nhead;
} re_ckpt_probe;

typedef struct re_ckpt_reader {
  const char *name; /* for messages */
  /* *match = 1 if this reader takes the input; an error only when the input
   * cannot be examined (an unreadable zip). */
  re_status (*probe)(const re_ckpt_probe *p, int *match);
  /* Open `path` as this reader's format; opt is never NULL. */
  re_status (*open)(const char *path, const re_ckpt_options *opt, re_ckpt **out);
} re_ckpt_reader;

extern const re_ckpt_reader re_ckpt_reader_folder;      /* ckpt_folder.c */
extern const re_ckpt_reader re_ckpt_reader_npy;         /* ckpt_npy.c */
extern const re_ckpt_reader re_ckpt_reader_safetensors; /* safetensors.c */
extern const re_ckpt_reader re_ckpt_reader_torch;       /* torch_ckpt.c */
extern const re_ckpt_reader re_ckpt_reader_npz;         /* ckpt_npy.c */

#endif
