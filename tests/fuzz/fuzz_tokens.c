/* Fuzz target: token files: an ids/mask/labels .npy triple or a token stream
 * (.bin uint16 / uint32, 1-D .npy), opened from files and read sequentially, then
 * backwards. Byte 0: bit 0 stream (else triple), bit 1 uint32 (else uint16), bit 2
 * .npy stream, bit 3 a vocab of 300; bits 4-7 seq_len - 1 for streams. A triple's
 * input is three parts, each after a 2-byte little-endian length (the labels take
 * the rest); an empty part is no file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "repeval/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], paths[3][600];

static void cleanup(void) {
  for (int k = 0; k < 3; k++)
    unlink(paths[k]);
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!dir[0]) {
    fuzz_make_dir(dir, sizeof dir, "tokens");
    snprintf(paths[0], sizeof paths[0], "%s/ids.npy", dir);
    snprintf(paths[1], sizeof paths[1], "%s/mask.npy", dir);
    snprintf(paths[2], sizeof paths[2], "%s/labels.npy", dir);
    atexit(cleanup);
  }
  if (size < 1)
    return 0;
  int flags = data[0];
  int64_t vocab = (flags & 8) ? 300 : 0;
  re_dataset *ds = NULL;
  re_status st;
  if (flags & 1) {
    char p[620];
    snprintf(p, sizeof p, "%s/stream.%s", dir, (flags & 4) ? "npy" : "bin");
    if (!fuzz_write_input(p, data + 1, size - 1))
      return 0;
    const char *files[1] = {p};
    st = re_dataset_open_token_stream(files, 1, (flags & 4) ? NULL : (flags & 2) ? "uint32" : "uint16",
                                      1 + (flags >> 4), vocab, &ds);
    unlink(p); /* an open dataset keeps its mapping */
  } else {
    const uint8_t *q = data + 1, *end = data + size;
    int have[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
      size_t len = (size_t)(end - q);
      if (k < 2) {
        if (end - q < 2)
          return 0;
        len = (size_t)q[0] | (size_t)q[1] << 8;
        q += 2;
        if (len > (size_t)(end - q))
          len = (size_t)(end - q);
      }
      have[k] = len > 0;
      unlink(paths[k]);
      if (have[k] && !fuzz_write_input(paths[k], q, len))
        return 0;
      q += len;
    }
    if (!have[0])
      return 0;
    st = re_dataset_open_tokens(paths[0], have[1] ? paths[1] : NULL, have[2] ? paths[2] : NULL, vocab, &ds);
  }
  if (st != RE_OK)
    return 0;
  const re_dataset_info *in = re_dataset_get_info(ds);
  int64_t T = in->seq_len, n = in->count < 64 ? in->count : 64;
  if (T > (1 << 16)) {
    re_dataset_close(&ds);
    return 0;
  }
  int64_t *ids = malloc(sizeof *ids * (size_t)T);
  uint8_t *mask = malloc((size_t)T);
  int32_t y;
  for (int64_t i = 0; ids && mask && i < n; i++) {
    if (re_dataset_read_tokens(ds, i, i + 1, ids, mask, &y) != RE_OK)
      break;
    int any = 0;
    for (int64_t t = 0; t < T; t++) {
      if (mask[t] > 1 || (mask[t] && (ids[t] < 0 || ids[t] >= in->vocab)))
        abort(); /* the reader's promises */
      any |= mask[t];
    }
    if (!any)
      abort();
  }
  if (ids && mask && n > 1)
    (void)re_dataset_read_tokens(ds, n / 2, n / 2 + 1, ids, mask, &y);
  free(ids);
  free(mask);
  re_dataset_close(&ds);
  return 0;
}
