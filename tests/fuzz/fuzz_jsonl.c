/* Fuzz target: text corpora through a tokenizer: JSON Lines (truncate with
 * labels, pack), plain text (lines, whole file, "%" separators) and WebDataset
 * .txt shards, opened from a file and read sequentially, then backwards.
 * Byte 0: bits 0-2 the format (0 jsonl, 1 jsonl pack, 2 text lines, 3 text file,
 * 4 fortunes, 5 WebDataset), bit 3 special tokens around the text, bit 4 left
 * padding; the rest is the file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "fuzz_text_tokenizer.h"
#include "repeval/dataset.h"
#include "repeval/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], path[600];
static re_tokenizer *toks[2];

static void cleanup(void) {
  unlink(path);
  rmdir(dir);
  re_tokenizer_destroy(&toks[0]);
  re_tokenizer_destroy(&toks[1]);
}

static void setup(void) {
  fuzz_make_dir(dir, sizeof dir, "jsonl");
  snprintf(path, sizeof path, "%s/input", dir);
  static char json[32768];
  for (int k = 0; k < 2; k++) {
    fz_tokenizer_json(json, sizeof json, k);
    if (re_tokenizer_load_buffer(json, (int64_t)strlen(json), "fuzz-tokenizer.json", &toks[k]) != RE_OK)
      abort();
  }
  atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0])
    setup();
  if (size < 1 || !fuzz_write_input(path, data + 1, size - 1))
    return 0;
  int fmt = data[0] & 7, special = (data[0] >> 3) & 1;
  re_text_options o;
  memset(&o, 0, sizeof o);
  o.tokenizer_handle = toks[special];
  o.seq_len = 1 + (data[0] >> 5) * 3;
  o.pad_left = (data[0] >> 4) & 1;
  o.eos_token = "</s>";
  const char *files[1] = {path};
  re_dataset *ds = NULL;
  re_status st;
  if (fmt == 0 || fmt == 1) {
    o.mode = fmt == 1 ? RE_SEQ_PACK : RE_SEQ_TRUNCATE;
    if (fmt == 1)
      o.pad_left = 0;
    st = re_dataset_open_jsonl(files, 1, "text", fmt == 0 ? "label" : NULL, &o, &ds);
  } else if (fmt <= 4) {
    st = re_dataset_open_text(files, 1, fmt == 3 ? "file" : "line", fmt == 4 ? "%" : NULL, NULL, &o, &ds);
  } else {
    st = re_dataset_open_wds_text(files, 1, fmt == 5 ? "cls" : NULL, &o, &ds);
  }
  if (st != RE_OK)
    return 0;
  const re_dataset_info *in = re_dataset_get_info(ds);
  int64_t T = in->seq_len, n = in->count < 64 ? in->count : 64;
  int64_t *ids = malloc(sizeof *ids * (size_t)T);
  uint8_t *mask = malloc((size_t)T);
  int32_t y;
  for (int64_t i = 0; ids && mask && i < n; i++) {
    if (re_dataset_read_tokens(ds, i, i + 1, ids, mask, &y) != RE_OK)
      break;
    int any = 0;
    for (int64_t t = 0; t < T; t++) {
      if (mask[t] > 1 || ids[t] < 0 || ids[t] >= in->vocab)
        abort(); /* the reader's promises */
      any |= mask[t];
    }
    if (!any || (in->has_labels && (y < 0 || y >= in->num_classes)))
      abort();
  }
  if (ids && mask && n > 1)
    (void)re_dataset_read_tokens(ds, n / 2, n / 2 + 1, ids, mask, &y);
  free(ids);
  free(mask);
  re_dataset_close(&ds);
  return 0;
}
