/* Test helper: open a checkpoint with the library and write every tensor as a
 * float32 .npy (via re_ckpt_read_f32) plus an index, so Python tests can compare
 * the values with what PyTorch/NumPy read.
 *   ckpt_dump FILE OUTDIR [--state-dict-key KEY] [--keep-module-prefix]
 * OUTDIR/index.json: {"format", "shards": [...], "tensors": [{"name", "dtype", "shape",
 * "file", "shard", "in_map", "view"}], "metadata": {...}, "content_hash"}; in_map says
 * the tensor's bytes lie inside the memory map of the file holding it (zero-copy),
 * view that re_ckpt_view_f32 succeeded, shard indexes "shards". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/ckpt_internal.h"
#include "cli/cli.h"

static int fail(void) {
  fprintf(stderr, "ckpt_dump: %s\n", re_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: ckpt_dump FILE OUTDIR [--state-dict-key KEY] [--keep-module-prefix]\n");
    return 2;
  }
  re_ckpt_options opt = {0};
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--keep-module-prefix"))
      opt.keep_module_prefix = 1;
    else if (!strcmp(argv[i], "--state-dict-key") && i + 1 < argc)
      opt.state_dict_key = argv[++i];
    else
      return 2;
  }
  re_ckpt *c = NULL;
  if (re_ckpt_open(argv[1], &opt, &c) != RE_OK)
    return fail();
  char path[4096];
  snprintf(path, sizeof path, "%s/index.json", argv[2]);
  FILE *idx = fopen(path, "w");
  if (!idx)
    return 1;
  fprintf(idx, "{\"format\": \"%s\", \"shards\": [", re_ckpt_format_name(re_ckpt_format_of(c)));
  for (int64_t k = 0; k < re_ckpt_shard_count(c); k++) {
    fprintf(idx, "%s", k ? ", " : "");
    re_json_string(idx, re_ckpt_shard_path(c, k));
  }
  fprintf(idx, "], \"tensors\": [");
  for (int64_t i = 0; i < re_ckpt_count(c); i++) {
    const re_tensor_info *ti = re_ckpt_info(c, i);
    float *v = malloc(sizeof(float) * (size_t)(ti->numel + 1));
    if (!v || re_ckpt_read_f32(c, i, v) != RE_OK)
      return fail();
    char file[64];
    snprintf(file, sizeof file, "t%06lld.npy", (long long)i);
    snprintf(path, sizeof path, "%s/%s", argv[2], file);
    if (re_npy_write(path, RE_DTYPE_F32, ti->ndim, ti->shape, v) != RE_OK)
      return fail();
    free(v);
    /* a model folder's tensors live in the map of the shard that holds them */
    const re_ckpt *file_of = c->nparts ? c->parts[c->shard[i]] : c;
    const uint8_t *base = c->loc[i].base, *map = file_of->map;
    int in_map = map && base >= map && base <= map + file_of->map_len;
    const float *view = NULL;
    int has_view = re_ckpt_view_f32(c, i, &view) == RE_OK;
    re_err_clear();
    fprintf(idx, "%s{\"name\": ", i ? ", " : "");
    re_json_string(idx, ti->name);
    fprintf(idx, ", \"dtype\": \"%s\", \"shape\": [", re_dtype_name(ti->dtype));
    for (int d = 0; d < ti->ndim; d++)
      fprintf(idx, "%s%lld", d ? ", " : "", (long long)ti->shape[d]);
    fprintf(idx, "], \"file\": \"%s\", \"shard\": %lld, \"in_map\": %s, \"view\": %s}", file,
            (long long)re_ckpt_tensor_shard(c, i), in_map ? "true" : "false", has_view ? "true" : "false");
  }
  fprintf(idx, "], \"metadata\": {");
  for (int64_t i = 0; i < re_ckpt_metadata_count(c); i++) {
    const char *k, *val;
    re_ckpt_metadata(c, i, &k, &val);
    fprintf(idx, "%s", i ? ", " : "");
    re_json_string(idx, k);
    fprintf(idx, ": ");
    re_json_string(idx, val);
  }
  uint64_t hash = 0;
  if (re_ckpt_content_hash(c, &hash) != RE_OK)
    return fail();
  fprintf(idx, "}, \"content_hash\": \"%016llx\"}\n", (unsigned long long)hash);
  fclose(idx);
  re_ckpt_close(&c);
  return 0;
}
