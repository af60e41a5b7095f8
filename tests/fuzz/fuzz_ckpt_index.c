/* Fuzz target: the index of a sharded Hugging Face checkpoint
 * (model.safetensors.index.json) parsed from memory and, when it parses, joined
 * with fixed in-memory safetensors shards the way the model-folder reader does:
 * the cross-check (every entry in the shard it names, no tensor in two shards,
 * none unlisted), the merged table and metadata, then every tensor read, the
 * content hash and prefix stripping. The first shard file name (in sorted order)
 * gets the first image (a, model.b), the second the other (c, d); a third shard is
 * missing, where the reader would stop. Seeds: make_hf_folder_fixtures.py --corpus. */
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/hf_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t img[2][512];
static int64_t img_len[2];

/* A safetensors image of the tensors in `header` (already laid out) and data_len bytes. */
static void build(int k, const char *header, int64_t data_len) {
  int64_t n = (int64_t)strlen(header);
  for (int b = 0; b < 8; b++)
    img[k][b] = (uint8_t)((uint64_t)n >> (8 * b));
  memcpy(img[k] + 8, header, (size_t)n);
  for (int64_t b = 0; b < data_len; b++)
    img[k][8 + n + b] = (uint8_t)(b * 37 + 11);
  img_len[k] = 8 + n + data_len;
}

static void setup(void) {
  build(0, "{\"__metadata__\": {\"format\": \"pt\"}, \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
           "\"model.b\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [8, 14]}}", 14);
  build(1, "{\"c\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [0, 8]}, "
           "\"d\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [8, 12]}}", 12);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  re_hf_index x;
  re_ckpt *c = NULL;
  if (!img_len[0])
    setup();
  if (re_hf_index_parse("fuzz/model.safetensors.index.json", data, (int64_t)size, &x) != RE_OK)
    return 0;
  if (re_ckpt_alloc("fuzz", RE_CKPT_SAFETENSORS, &c) != RE_OK ||
      re_calloc(x.nshards, sizeof *c->parts, &c->parts) != RE_OK)
    goto done;
  for (int64_t k = 0; k < x.nshards; k++) {
    if (k >= 2 || re_ckpt_alloc(x.shards[k], RE_CKPT_SAFETENSORS, &c->parts[k]) != RE_OK)
      goto done;
    c->nparts = k + 1;
    if (re_safetensors_parse(c->parts[k], img[k], img_len[k]) != RE_OK)
      goto done;
  }
  if (re_hf_index_assemble(c, &x) == RE_OK) {
    float v[4];
    for (int64_t i = 0; i < re_ckpt_count(c); i++)
      (void)re_ckpt_read_f32(c, i, v);
    uint64_t h;
    (void)re_ckpt_content_hash(c, &h);
    (void)re_ckpt_strip_prefix(c, "model.,a");
    for (int64_t i = 0; i < re_ckpt_metadata_count(c); i++) {
      const char *key, *val;
      re_ckpt_metadata(c, i, &key, &val);
    }
  }
done:
  re_ckpt_close(&c);
  re_hf_index_free(&x);
  return 0;
}
