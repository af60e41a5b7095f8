/* A sharded safetensors model folder (three shards + model.safetensors.index.json)
 * reads exactly like the single model.safetensors holding the same tensors: same
 * names, dtypes (float32, float16 and bfloat16 kept as stored), shapes, bytes and
 * float32 values, every tensor in place in its shard's memory map, in the index's
 * weight_map order, with the index's and the shards' metadata, and one content
 * hash. Also: the hash changes with one value, prefixes strip (and collisions are
 * refused without renaming), a 40-shard folder holds no file descriptor once open,
 * and every index/shard disagreement is refused naming the index file and the key. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/ckpt_internal.h"
#include "check.h"
#include "hf_fixtures.h"

#define NT 7

static float e_w[40 * 32], head_w[40 * 32], scale = 0.125f;
static uint16_t a0_w[200 * 200], a1_w[16 * 32], n0_w[32], n1_b[24];

static hf_tensor T[NT];

static void make_tensors(void) {
  check_seed(7);
  for (int k = 0; k < 40 * 32; k++) {
    e_w[k] = (float)check_normal();
    head_w[k] = (float)check_normal();
  }
  for (int k = 0; k < 200 * 200; k++)
    a0_w[k] = re_f32_to_f16((float)check_normal());
  for (int k = 0; k < 16 * 32; k++)
    a1_w[k] = re_f32_to_f16((float)check_normal() * 1e-5f); /* subnormal float16 values too */
  for (int k = 0; k < 32; k++) {
    float f = 1.0f + (float)check_normal() * 0.1f;
    uint32_t u;
    memcpy(&u, &f, 4);
    n0_w[k] = (uint16_t)(u >> 16);
  }
  for (int k = 0; k < 24; k++)
    n1_b[k] = (uint16_t)(0x3f80 + k * 37); /* bfloat16 bit patterns */
  hf_tensor t[NT] = {
      {"model.embed.weight", "F32", 2, {40, 32}, e_w, sizeof e_w},
      {"model.layers.0.attn.weight", "F16", 2, {200, 200}, a0_w, sizeof a0_w}, /* > 64 KiB: hashed by samples */
      {"model.layers.0.norm.weight", "BF16", 1, {32}, n0_w, sizeof n0_w},
      {"model.layers.1.attn.weight", "F16", 2, {16, 32}, a1_w, sizeof a1_w},
      {"model.layers.1.norm.bias", "BF16", 3, {2, 3, 4}, n1_b, sizeof n1_b},
      {"model.scale", "F32", 0, {0}, &scale, 4},
      {"lm_head.weight", "F32", 2, {40, 32}, head_w, sizeof head_w},
  };
  memcpy(T, t, sizeof t);
}

/* weight_map order: not the shards' order, not sorted */
static const char *INDEX =
    "{\n  \"metadata\": {\"total_size\": 128512, \"note\": \"test\", \"nested\": {\"x\": 1}},\n"
    "  \"weight_map\": {\n"
    "    \"lm_head.weight\": \"model-00003-of-00003.safetensors\",\n"
    "    \"model.layers.1.norm.bias\": \"model-00002-of-00003.safetensors\",\n"
    "    \"model.embed.weight\": \"model-00001-of-00003.safetensors\",\n"
    "    \"model.layers.0.attn.weight\": \"model-00001-of-00003.safetensors\",\n"
    "    \"model.scale\": \"model-00002-of-00003.safetensors\",\n"
    "    \"model.layers.0.norm.weight\": \"model-00001-of-00003.safetensors\",\n"
    "    \"model.layers.1.attn.weight\": \"model-00002-of-00003.safetensors\"\n"
    "  }\n}\n";
static const char *ORDER[NT] = {"lm_head.weight",   "model.layers.1.norm.bias",   "model.embed.weight",
                                "model.layers.0.attn.weight", "model.scale", "model.layers.0.norm.weight",
                                "model.layers.1.attn.weight"};

static void write_sharded(const char *dir) {
  char p[256];
  snprintf(p, sizeof p, "%s/model-00001-of-00003.safetensors", dir);
  hf_safetensors(p, T, 3);
  snprintf(p, sizeof p, "%s/model-00002-of-00003.safetensors", dir);
  hf_tensor s2[3] = {T[5], T[3], T[4]};
  hf_safetensors(p, s2, 3);
  snprintf(p, sizeof p, "%s/model-00003-of-00003.safetensors", dir);
  hf_safetensors(p, T + 6, 1);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  hf_text(p, INDEX);
  snprintf(p, sizeof p, "%s/config.json", dir);
  hf_text(p, "{\"model_type\": \"test\"}\n");
}

static int in_map(const re_ckpt *part, const uint8_t *p) {
  const uint8_t *m = part->map;
  return m && p >= m && p < m + part->map_len;
}

static void test_same_tensors(void) {
  re_ckpt *one = NULL, *sh = NULL;
  hf_safetensors("single/model.safetensors", T, NT);
  write_sharded("sharded");
  CHECK_OK(re_ckpt_open(hf_path("single"), NULL, &one));
  CHECK_OK(re_ckpt_open(hf_path("sharded"), NULL, &sh));
  if (!one || !sh)
    goto done;
  CHECK(re_ckpt_format_of(sh) == RE_CKPT_SAFETENSORS && re_ckpt_count(sh) == NT && re_ckpt_count(one) == NT);
  CHECK(re_ckpt_shard_count(one) == 1 && re_ckpt_shard_count(sh) == 3);
  CHECK(re_ckpt_folder(sh) && !strcmp(re_ckpt_folder(sh), hf_path("sharded")));
  CHECK(!strcmp(re_ckpt_path(sh), hf_path("sharded")));
  for (int64_t k = 0; k < 3; k++) {
    char want[128];
    snprintf(want, sizeof want, "%s/model-%05lld-of-00003.safetensors", hf_path("sharded"), (long long)k + 1);
    CHECK(!strcmp(re_ckpt_shard_path(sh, k), want));
  }
  for (int i = 0; i < NT; i++) /* weight_map order */
    CHECK(!strcmp(re_ckpt_info(sh, i)->name, ORDER[i]));
  int seen[RE_DTYPE_COUNT] = {0};
  for (int64_t i = 0; i < NT; i++) {
    const re_tensor_info *a = re_ckpt_info(one, i);
    int64_t j = -1;
    CHECK_OK(re_ckpt_find(sh, a->name, &j));
    if (j < 0)
      continue;
    const re_tensor_info *b = re_ckpt_info(sh, j);
    CHECK(a->dtype == b->dtype && a->ndim == b->ndim && a->numel == b->numel && a->nbytes == b->nbytes);
    CHECK(!memcmp(a->shape, b->shape, sizeof a->shape));
    seen[b->dtype]++;
    /* the stored bytes, in place in the shard that holds the tensor */
    const re_ckpt *part = sh->parts[re_ckpt_tensor_shard(sh, j)];
    CHECK(in_map(part, sh->loc[j].base));
    CHECK(!memcmp(one->loc[i].base, sh->loc[j].base, (size_t)a->nbytes));
    float *x = malloc(sizeof(float) * (size_t)(a->numel + 1)), *y = malloc(sizeof(float) * (size_t)(a->numel + 1));
    CHECK_OK(re_ckpt_read_f32(one, i, x));
    CHECK_OK(re_ckpt_read_f32(sh, j, y));
    CHECK(!memcmp(x, y, sizeof(float) * (size_t)a->numel));
    if (b->dtype == RE_DTYPE_F32) {
      const float *v = NULL;
      CHECK_OK(re_ckpt_view_f32(sh, j, &v));
      CHECK(v && !memcmp(v, x, sizeof(float) * (size_t)a->numel));
    }
    free(x);
    free(y);
  }
  CHECK(seen[RE_DTYPE_F32] == 3 && seen[RE_DTYPE_F16] == 2 && seen[RE_DTYPE_BF16] == 2);
  /* the shard of each tensor, as the index says */
  int64_t j;
  CHECK_OK(re_ckpt_find(sh, "lm_head.weight", &j));
  CHECK(re_ckpt_tensor_shard(sh, j) == 2);
  CHECK_OK(re_ckpt_find(sh, "model.scale", &j));
  CHECK(re_ckpt_tensor_shard(sh, j) == 1);
  /* metadata: the index's scalars, then the shards' keys */
  CHECK(re_ckpt_metadata_count(sh) == 3);
  const char *k, *v;
  re_ckpt_metadata(sh, 0, &k, &v);
  CHECK(!strcmp(k, "total_size") && !strcmp(v, "128512"));
  re_ckpt_metadata(sh, 1, &k, &v);
  CHECK(!strcmp(k, "note") && !strcmp(v, "test"));
  re_ckpt_metadata(sh, 2, &k, &v);
  CHECK(!strcmp(k, "format") && !strcmp(v, "pt"));
  /* one content hash for one content; another after one bfloat16 value changes */
  uint64_t h1 = 0, h2 = 1, h3 = 0;
  CHECK_OK(re_ckpt_content_hash(one, &h1));
  CHECK_OK(re_ckpt_content_hash(sh, &h2));
  CHECK(h1 == h2);
  n1_b[5] ^= 1;
  hf_safetensors("changed/model.safetensors", T, NT);
  n1_b[5] ^= 1;
  re_ckpt *ch = NULL;
  CHECK_OK(re_ckpt_open(hf_path("changed"), NULL, &ch));
  if (ch)
    CHECK_OK(re_ckpt_content_hash(ch, &h3));
  CHECK(h3 != h1);
  re_ckpt_close(&ch);
  /* prefixes: the first listed one that matches goes */
  CHECK_OK(re_ckpt_strip_prefix(sh, "model.layers.,model."));
  CHECK(!strcmp(re_ckpt_info(sh, 0)->name, "lm_head.weight"));
  CHECK(!strcmp(re_ckpt_info(sh, 1)->name, "1.norm.bias"));
  CHECK(!strcmp(re_ckpt_info(sh, 2)->name, "embed.weight"));
  CHECK_OK(re_ckpt_find(sh, "scale", &j));
  CHECK(j == 4);
done:
  re_ckpt_close(&one);
  re_ckpt_close(&sh);
}

static void test_strip_collision(void) {
  hf_tensor t[2] = {{"model.w", "F32", 1, {1}, &scale, 4}, {"w", "F32", 1, {1}, &scale, 4}};
  hf_safetensors("collide/model.safetensors", t, 2);
  re_ckpt *c = NULL;
  CHECK_OK(re_ckpt_open(hf_path("collide"), NULL, &c));
  if (!c)
    return;
  CHECK_FAILS(re_ckpt_strip_prefix(c, "model."), RE_EFORMAT, "gives 'model.w' and 'w' the same name 'w'");
  CHECK(!strcmp(re_ckpt_info(c, 0)->name, "model.w") && !strcmp(re_ckpt_info(c, 1)->name, "w"));
  CHECK_OK(re_ckpt_strip_prefix(c, "w,nothing")); /* never to an empty name */
  CHECK(!strcmp(re_ckpt_info(c, 1)->name, "w"));
  re_ckpt_close(&c);
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (!d)
    return -1;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

static void test_many_shards_hold_no_descriptors(void) {
  char index[8192], rel[128];
  size_t at = (size_t)snprintf(index, sizeof index, "{\"weight_map\": {");
  for (int k = 0; k < 40; k++) {
    char name[32], file[64];
    snprintf(name, sizeof name, "layer.%d.w", k);
    snprintf(file, sizeof file, "model-%05d-of-00040.safetensors", k + 1);
    hf_tensor t = {name, "F32", 1, {1}, &scale, 4};
    snprintf(rel, sizeof rel, "many/%s", file);
    hf_safetensors(rel, &t, 1);
    at += (size_t)snprintf(index + at, sizeof index - at, "%s\"%s\": \"%s\"", k ? ", " : "", name, file);
  }
  snprintf(index + at, sizeof index - at, "}}");
  hf_text("many/model.safetensors.index.json", index);
  int before = count_fds();
  re_ckpt *c = NULL;
  CHECK_OK(re_ckpt_open(hf_path("many"), NULL, &c));
  if (before >= 0)
    CHECK(count_fds() == before);
  CHECK(c && re_ckpt_count(c) == 40 && re_ckpt_shard_count(c) == 40);
  float v = 0;
  for (int64_t i = 0; c && i < 40; i++) {
    CHECK_OK(re_ckpt_read_f32(c, i, &v));
    CHECK(v == scale);
  }
  re_ckpt_close(&c);
}

/* One bad folder: shards 1-3 as in write_sharded, the given index text. */
static void bad(const char *dir, const char *index, re_status code, const char *msg) {
  char p[256];
  write_sharded(dir);
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  hf_text(p, index);
  re_ckpt *c = NULL;
  CHECK_FAILS(re_ckpt_open(hf_path(dir), NULL, &c), code, msg);
  CHECK(c == NULL);
  re_ckpt_close(&c);
}

#define S1 "\"model-00001-of-00003.safetensors\""
#define S2 "\"model-00002-of-00003.safetensors\""
#define S3 "\"model-00003-of-00003.safetensors\""
#define REST                                                                                                  \
  "\"model.layers.1.norm.bias\": " S2 ", \"model.embed.weight\": " S1 ", \"model.layers.0.attn.weight\": " S1 \
  ", \"model.scale\": " S2 ", \"model.layers.0.norm.weight\": " S1 ", \"model.layers.1.attn.weight\": " S2

static void test_disagreements_are_refused(void) {
  bad("b1", "{\"weight_map\": {\"lm_head.weight\": " S1 ", " REST "}}", RE_EFORMAT,
      "model.safetensors.index.json: weight_map['lm_head.weight'] names shard 'model-00001-of-00003.safetensors', "
      "which does not hold that tensor");
  bad("b2", "{\"weight_map\": {\"lm_head.weight\": \"model-00004-of-00003.safetensors\", " REST "}}", RE_EFORMAT,
      "model.safetensors.index.json: weight_map['lm_head.weight'] names shard 'model-00004-of-00003.safetensors', "
      "which is missing");
  bad("b3", "{\"weight_map\": {\"lm_head.weight\": \"../b1/model-00003-of-00003.safetensors\", " REST "}}",
      RE_EFORMAT, "weight_map['lm_head.weight'] names shard '../b1/model-00003-of-00003.safetensors', which is not "
      "a file name in the model folder");
  bad("b4", "{\"weight_map\": {\"lm_head.weight\": \"..\", " REST "}}", RE_EFORMAT, "names shard '..'");
  bad("b5",
      "{\"weight_map\": {\"lm_head.weight\": " S3 ", \"model.layers.1.norm.bias\": " S2 ", \"model.embed.weight\": " S1
      ", \"model.layers.0.attn.weight\": " S1 ", \"model.layers.0.norm.weight\": " S1
      ", \"model.layers.1.attn.weight\": " S2 "}}",
      RE_EFORMAT,
      "model.safetensors.index.json: shard 'model-00002-of-00003.safetensors' holds tensor 'model.scale', which "
      "\"weight_map\" does not list");
  bad("b6", "{\"weight_map\": {\"lm_head.weight\": " S3 ", " REST ", \"model.scale\": " S2 "}}", RE_EFORMAT,
      "\"weight_map\" names tensor 'model.scale' twice");
  bad("b7", "{\"weight_map\": {}}", RE_EFORMAT, "\"weight_map\" names no tensor");
  bad("b8", "{\"metadata\": {}}", RE_EFORMAT, "no \"weight_map\"");
  bad("b9", "{\"weight_map\": {\"lm_head.weight\": 3}}", RE_EFORMAT,
      "weight_map['lm_head.weight'] must be a shard file name (a string), found a number");
  bad("b10", "{\"weight_map\": {\"lm_head.weight\": " S3 ",}}", RE_EFORMAT,
      "model.safetensors.index.json, byte 69: expected a string as object key");
  /* a tensor in two shards: shard 3 also holds model.scale */
  hf_tensor dup[2] = {T[6], T[5]};
  write_sharded("b11");
  hf_safetensors("b11/model-00003-of-00003.safetensors", dup, 2);
  re_ckpt *c = NULL;
  CHECK_FAILS(re_ckpt_open(hf_path("b11"), NULL, &c), RE_EFORMAT,
              "model.safetensors.index.json: tensor 'model.scale' is stored in two shards, "
              "'model-00002-of-00003.safetensors' (where weight_map['model.scale'] puts it) and "
              "'model-00003-of-00003.safetensors'");
  /* a broken shard is refused by the safetensors rules, naming the shard */
  write_sharded("b12");
  static const char broken[] = "\x10\0\0\0\0\0\0\0{\"a\": 1}        ";
  hf_write("b12/model-00002-of-00003.safetensors", broken, sizeof broken - 1);
  CHECK_FAILS(re_ckpt_open(hf_path("b12"), NULL, &c), RE_EFORMAT, "model-00002-of-00003.safetensors: tensor 'a': expected an object");
  /* a folder without weights */
  hf_text("empty/config.json", "{}");
  CHECK_FAILS(re_ckpt_open(hf_path("empty"), NULL, &c), RE_EFORMAT,
              "not a model folder: it holds none of model.safetensors, model.safetensors.index.json, "
              "pytorch_model.bin, pytorch_model.bin.index.json");
}

int main(void) {
  make_tensors();
  hf_scratch("ckpt_sharded");
  test_same_tensors();
  test_strip_collision();
  test_many_shards_hold_no_descriptors();
  test_disagreements_are_refused();
  hf_cleanup();
  return check_report();
}
