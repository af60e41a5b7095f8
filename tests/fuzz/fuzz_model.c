/* Fuzz target: model descriptions (model files, docs/models.md) from memory, bound to
 * a small in-memory safetensors checkpoint (conv1, bn1, ln, fc, fc1, fc2 tensors) and,
 * when every module's output stays small, run on one batch of two inputs. The
 * input geometry is the model's own `input:` or 3 x 8 x 8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/ckpt_internal.h"
#include "repeval/cfg.h"
#include "repeval/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_NUMEL (1 << 18) /* per-sample output values of a module for the forward pass */

static uint8_t *blob;
static int64_t blob_len;

/* safetensors bytes: F32 tensors with small deterministic values (variances 1). */
static void make_checkpoint(void) {
  static const struct {
    const char *name;
    int ndim;
    int64_t shape[4];
  } t[] = {{"conv1.weight", 4, {4, 3, 3, 3}}, {"conv1.bias", 1, {4}},       {"bn1.weight", 1, {4}},
           {"bn1.bias", 1, {4}},              {"bn1.running_mean", 1, {4}}, {"bn1.running_var", 1, {4}},
           {"ln.weight", 1, {4}},             {"ln.bias", 1, {4}},          {"fc.weight", 2, {10, 4}},
           {"fc.bias", 1, {10}},              {"fc1.weight", 2, {8, 64}},   {"fc1.bias", 1, {8}},
           {"fc2.weight", 2, {2, 8}},         {"fc2.bias", 1, {2}}};
  size_t n = sizeof t / sizeof t[0];
  char header[4096];
  size_t at = 0;
  int64_t off = 0;
  at += (size_t)snprintf(header + at, sizeof header - at, "{");
  for (size_t k = 0; k < n; k++) {
    int64_t numel = 1;
    at += (size_t)snprintf(header + at, sizeof header - at, "%s\"%s\": {\"dtype\": \"F32\", \"shape\": [",
                           k ? ", " : "", t[k].name);
    for (int d = 0; d < t[k].ndim; d++) {
      numel *= t[k].shape[d];
      at += (size_t)snprintf(header + at, sizeof header - at, "%s%lld", d ? ", " : "", (long long)t[k].shape[d]);
    }
    at += (size_t)snprintf(header + at, sizeof header - at, "], \"data_offsets\": [%lld, %lld]}", (long long)off,
                           (long long)(off + 4 * numel));
    off += 4 * numel;
  }
  at += (size_t)snprintf(header + at, sizeof header - at, "}");
  while ((8 + at) % 8) /* spaces after the JSON keep the float data aligned */
    header[at++] = ' ';
  blob_len = 8 + (int64_t)at + off;
  blob = calloc(1, (size_t)blob_len);
  if (!blob)
    abort();
  uint64_t hl = at;
  memcpy(blob, &hl, 8);
  memcpy(blob + 8, header, at);
  float *v = (float *)(void *)(blob + 8 + at);
  for (int64_t k = 0; k < off / 4; k++)
    v[k] = (float)((k % 7) - 3) / 8.0f;
  /* running variances: positive */
  int64_t pos = 0;
  for (size_t k = 0; k < n; k++) {
    int64_t numel = 1;
    for (int d = 0; d < t[k].ndim; d++)
      numel *= t[k].shape[d];
    if (!strcmp(t[k].name, "bn1.running_var"))
      for (int64_t e = 0; e < numel; e++)
        v[pos + e] = 1.0f;
    pos += numel;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!blob)
    make_checkpoint();
  re_ckpt *ck = NULL;
  re_cfg *cfg = NULL;
  re_model *m = NULL;
  re_net *net = NULL;
  float *x = NULL;
  if (re_ckpt_alloc("fuzz.safetensors", RE_CKPT_SAFETENSORS, &ck) != RE_OK ||
      re_safetensors_parse(ck, blob, blob_len) != RE_OK)
    abort(); /* the fixed checkpoint must load */
  if (re_cfg_parse_string((const char *)data, (int64_t)size, "fuzz-model.yaml", &cfg) != RE_OK)
    goto done;
  if (re_model_from_cfg(cfg, &m) != RE_OK)
    goto done;
  int64_t dims[3] = {3, 8, 8};
  int rank = re_model_input(m, dims);
  if (rank == 0)
    rank = 3, dims[0] = 3, dims[1] = 8, dims[2] = 8;
  if (re_net_create(m, ck, rank == 1 || rank == 3 ? rank : 3, dims, 2, &net) != RE_OK)
    goto done;
  int64_t nmod = re_net_module_count(net), in = 1;
  int small = 1;
  for (int64_t i = 0; i < nmod && small; i++) {
    const char *name, *type;
    int r;
    int64_t od[8] = {0}, numel = 1;
    re_net_module(net, i, &name, &type, &r, od);
    for (int d = 0; d < r && d < 8; d++)
      numel = od[d] > 0 && numel <= MAX_NUMEL ? numel * od[d] : MAX_NUMEL + 1;
    small = numel <= MAX_NUMEL;
    if (i == nmod - 1 && small) {
      int tap;
      (void)re_net_add_tap(net, name, RE_TAP_FLATTEN, &tap);
    }
  }
  for (int d = 0; d < (rank == 1 ? 1 : 3); d++)
    in *= dims[d];
  if (small && in <= MAX_NUMEL && (x = calloc((size_t)(2 * in), sizeof(float))) != NULL)
    (void)re_net_forward(net, x, 2);
done:
  free(x);
  re_net_destroy(&net);
  re_model_destroy(&m);
  re_cfg_free(&cfg);
  re_ckpt_close(&ck);
  return 0;
}
