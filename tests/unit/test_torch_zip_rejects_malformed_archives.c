/* torch.save archives built byte by byte: a valid one reads with its storage
 * mapped in place (also with zip64 records, a big-endian byteorder member and an
 * arbitrary prefix), and each broken variant fails with the specific status and
 * message: zip structure (end record, central/local header disagreement, data
 * running into the directory, duplicate names, encryption, bad CRC), torch layout
 * (missing or doubled data.pkl, missing or wrongly sized storage, bad byteorder),
 * tensors reaching past their storage, and state_dict selection. */
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/torch_ckpt.h"
#include "check.h"

typedef struct member {
  const char *name;
  const uint8_t *data;
  int64_t len;
} member;

static uint8_t zip[1 << 16];
static int64_t zip_len;
static int64_t local_at[8], central_at[8], cd_at, eocd_at;

static uint32_t crc32_of(const uint8_t *p, int64_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (int64_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

static void w16(int64_t at, uint32_t v) {
  zip[at] = (uint8_t)v;
  zip[at + 1] = (uint8_t)(v >> 8);
}
static void w32(int64_t at, uint32_t v) {
  w16(at, v & 0xFFFF);
  w16(at + 2, v >> 16);
}
static void w64(int64_t at, uint64_t v) {
  w32(at, (uint32_t)v);
  w32(at + 4, (uint32_t)(v >> 32));
}

/* Stored members, a central directory and an end record (zip64 = 1: also the zip64
 * end record and locator, as torch writes; zip64 = 2: additionally 0xFFFFFFFF size and
 * offset markers with a zip64 extra field in every central header). */
static void build(const member *m, int n, int zip64) {
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    int64_t nl = (int64_t)strlen(m[i].name);
    local_at[i] = at;
    w32(at, 0x04034b50u);
    w16(at + 4, 20);
    w16(at + 6, 0);
    w16(at + 8, 0);
    w32(at + 10, 0);
    w32(at + 14, crc32_of(m[i].data, m[i].len));
    w32(at + 18, (uint32_t)m[i].len);
    w32(at + 22, (uint32_t)m[i].len);
    w16(at + 26, (uint32_t)nl);
    w16(at + 28, 0);
    memcpy(zip + at + 30, m[i].name, (size_t)nl);
    memcpy(zip + at + 30 + nl, m[i].data, (size_t)m[i].len);
    at += 30 + nl + m[i].len;
  }
  cd_at = at;
  for (int i = 0; i < n; i++) {
    int64_t nl = (int64_t)strlen(m[i].name), xl = zip64 == 2 ? 28 : 0;
    central_at[i] = at;
    w32(at, 0x02014b50u);
    w16(at + 4, 20);
    w16(at + 6, 20);
    w16(at + 8, 0);
    w16(at + 10, 0);
    w32(at + 12, 0);
    w32(at + 16, crc32_of(m[i].data, m[i].len));
    w32(at + 20, zip64 == 2 ? 0xFFFFFFFFu : (uint32_t)m[i].len);
    w32(at + 24, zip64 == 2 ? 0xFFFFFFFFu : (uint32_t)m[i].len);
    w16(at + 28, (uint32_t)nl);
    w16(at + 30, (uint32_t)xl);
    w16(at + 32, 0);
    w16(at + 34, 0);
    w16(at + 36, 0);
    w32(at + 38, 0);
    w32(at + 42, zip64 == 2 ? 0xFFFFFFFFu : (uint32_t)local_at[i]);
    memcpy(zip + at + 46, m[i].name, (size_t)nl);
    if (zip64 == 2) {
      int64_t x = at + 46 + nl;
      w16(x, 1);
      w16(x + 2, 24);
      w64(x + 4, (uint64_t)m[i].len);
      w64(x + 12, (uint64_t)m[i].len);
      w64(x + 20, (uint64_t)local_at[i]);
    }
    at += 46 + nl + xl;
  }
  int64_t cd_size = at - cd_at;
  if (zip64) {
    int64_t rec = at;
    w32(at, 0x06064b50u);
    w64(at + 4, 44);
    w16(at + 12, 45);
    w16(at + 14, 45);
    w32(at + 16, 0);
    w32(at + 20, 0);
    w64(at + 24, (uint64_t)n);
    w64(at + 32, (uint64_t)n);
    w64(at + 40, (uint64_t)cd_size);
    w64(at + 48, (uint64_t)cd_at);
    at += 56;
    w32(at, 0x07064b50u);
    w32(at + 4, 0);
    w64(at + 8, (uint64_t)rec);
    w32(at + 16, 1);
    at += 20;
  }
  eocd_at = at;
  w32(at, 0x06054b50u);
  w16(at + 4, 0);
  w16(at + 6, 0);
  w16(at + 8, (uint32_t)n);
  w16(at + 10, (uint32_t)n);
  w32(at + 12, (uint32_t)cd_size);
  w32(at + 16, (uint32_t)cd_at);
  w16(at + 20, 0);
  zip_len = at + 22;
}

/* data.pkl of {"w": tensor(storage "0" of `numel` floats, size (n,), stride (1,))}; with_meta
 * wraps it as {"epoch": 3, "model": {...}}. */
static uint8_t pkl[1024];
static int64_t pkl_len;

static void make_pickle(int numel, int n, int with_meta) {
  static const char head[] = "\x80\x02}(";
  static const char meta[] = "X\x05\x00\x00\x00" "epochK\x03X\x05\x00\x00\x00model}(";
  static const char body[] =
      "X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
      "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK";
  static const char body2[] = "tQK\x00K";
  static const char body3[] = "\x85K\x01\x85\x89" "ccollections\nOrderedDict\n)RtRu";
  int64_t at = 0;
  memcpy(pkl + at, head, sizeof head - 1);
  at += sizeof head - 1;
  if (with_meta) {
    memcpy(pkl + at, meta, sizeof meta - 1);
    at += sizeof meta - 1;
  }
  memcpy(pkl + at, body, sizeof body - 1);
  at += sizeof body - 1;
  pkl[at++] = (uint8_t)numel;
  memcpy(pkl + at, body2, sizeof body2 - 1);
  at += sizeof body2 - 1;
  pkl[at++] = (uint8_t)n;
  memcpy(pkl + at, body3, sizeof body3 - 1);
  at += sizeof body3 - 1;
  if (with_meta)
    pkl[at++] = 'u';
  pkl[at++] = '.';
  pkl_len = at;
}

static const float values[2] = {1.5f, -2.25f};
static uint8_t be_values[8];

static re_ckpt *c;

static re_status parse_opt(const re_ckpt_options *opt) {
  re_ckpt_close(&c);
  re_status st = re_ckpt_alloc("t.pt", RE_CKPT_TORCH, &c);
  if (st != RE_OK)
    return st;
  return re_torch_parse(c, zip, zip_len, opt);
}
static re_status parse(void) { return parse_opt(NULL); }

static void standard(int zip64) {
  make_pickle(2, 2, 0);
  member m[3] = {{"mymodel/data.pkl", pkl, pkl_len},
                 {"mymodel/data/0", (const uint8_t *)values, 8},
                 {"mymodel/version", (const uint8_t *)"3\n", 2}};
  build(m, 3, zip64);
}

static void test_valid(void) {
  for (int z64 = 0; z64 <= 2; z64++) {
    standard(z64);
    CHECK_OK(parse());
    CHECK(c && re_ckpt_count(c) == 1);
    if (!c || re_ckpt_count(c) != 1)
      continue;
    float out[2] = {0, 0};
    CHECK_OK(re_ckpt_read_f32(c, 0, out));
    CHECK(out[0] == values[0] && out[1] == values[1]);
    /* zero-copy: the tensor's bytes are the member's bytes inside the archive image */
    CHECK(c->loc[0].base == zip + local_at[1] + 30 + (int64_t)strlen("mymodel/data/0"));
  }
  /* big-endian storage announced by <prefix>/byteorder */
  for (int k = 0; k < 2; k++)
    for (int b = 0; b < 4; b++) {
      uint8_t src[4];
      memcpy(src, &values[k], 4);
      be_values[4 * k + b] = src[3 - b];
    }
  make_pickle(2, 2, 0);
  member m[3] = {{"archive/data.pkl", pkl, pkl_len},
                 {"archive/byteorder", (const uint8_t *)"big", 3},
                 {"archive/data/0", be_values, 8}};
  build(m, 3, 1);
  CHECK_OK(parse());
  float out[2] = {0, 0};
  if (c && re_ckpt_count(c) == 1)
    CHECK_OK(re_ckpt_read_f32(c, 0, out));
  CHECK(out[0] == values[0] && out[1] == values[1]);
  m[1].data = (const uint8_t *)"middle";
  m[1].len = 6;
  build(m, 3, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "expected 'little' or 'big'");
}

static void test_zip_structure(void) {
  standard(1);
  zip_len -= 3;
  CHECK_FAILS(parse(), RE_EFORMAT, "no zip end-of-central-directory record");
  standard(0);
  w32(eocd_at + 16, 60000); /* central directory offset past the end */
  CHECK_FAILS(parse(), RE_EFORMAT, "lies outside the archive");
  standard(0);
  w16(eocd_at + 10, 400); /* more entries than the directory holds */
  w16(eocd_at + 8, 400);
  CHECK_FAILS(parse(), RE_EFORMAT, "cannot fit a central directory");
  standard(1);
  w32(central_at[1] + 42, 5); /* local header offset into the middle of member 0 */
  CHECK_FAILS(parse(), RE_EFORMAT, "no local header at offset 5");
  standard(1);
  zip[local_at[1] + 30] = 'X'; /* local name differs from the central name */
  CHECK_FAILS(parse(), RE_EFORMAT, "does not match the central directory");
  standard(1);
  w32(central_at[1] + 20, 5000); /* compressed size running into the directory */
  w32(central_at[1] + 24, 5000);
  CHECK_FAILS(parse(), RE_EFORMAT, "run into the central directory");
  standard(1);
  w16(central_at[1] + 8, 1); /* encrypted */
  CHECK_FAILS(parse(), RE_EUNSUPPORTED, "is encrypted");
  standard(1);
  w16(central_at[1] + 10, 8); /* method differs from the local header */
  CHECK_FAILS(parse(), RE_EFORMAT, "compression method differs");
  standard(1);
  w32(central_at[1] + 24, 7); /* stored, but sizes differ */
  CHECK_FAILS(parse(), RE_EFORMAT, "has compressed size 8 != size 7");
  standard(1);
  zip[local_at[0] + 30 + 16 + 3] ^= 0x20; /* data.pkl byte flipped: CRC mismatch seen by libarchive */
  CHECK_FAILS(parse(), RE_EFORMAT, "data.pkl]: cannot read member");
  standard(2);
  w32(central_at[0] + 30, 0); /* 0xFFFFFFFF markers but the zip64 extra field removed */
  CHECK_FAILS(parse(), RE_EFORMAT, "without a zip64 extra field");
  standard(1); /* a deflated storage claiming a size deflate cannot reach */
  w16(local_at[1] + 8, 8);
  w16(central_at[1] + 10, 8);
  w32(central_at[1] + 24, 50000000);
  CHECK_FAILS(parse(), RE_EFORMAT, "claims more than deflate can expand to");
  standard(1); /* bzip2 */
  w16(local_at[1] + 8, 12);
  w16(central_at[1] + 10, 12);
  CHECK_FAILS(parse(), RE_EUNSUPPORTED, "compression other than stored or deflate");
  /* duplicate member names */
  make_pickle(2, 2, 0);
  member d[3] = {{"a/data.pkl", pkl, pkl_len},
                 {"a/data/0", (const uint8_t *)values, 8},
                 {"a/data/0", (const uint8_t *)values, 8}};
  build(d, 3, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "member 'a/data/0' appears twice");
}

static void test_torch_layout(void) {
  make_pickle(2, 2, 0);
  member m[3] = {{"a/other.pkl", pkl, pkl_len}, {"a/data/0", (const uint8_t *)values, 8}, {"a/version", (const uint8_t *)"3", 1}};
  build(m, 3, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "without a '<prefix>/data.pkl' member");
  m[0].name = "a/b/data.pkl"; /* nested deeper than torch's one-folder layout */
  build(m, 3, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "without a '<prefix>/data.pkl' member");
  m[0].name = "a/data.pkl";
  m[2].name = "b/data.pkl";
  m[2].data = pkl;
  m[2].len = pkl_len;
  build(m, 3, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "two pickles");
  member s[2] = {{"a/data.pkl", pkl, pkl_len}, {"a/data/1", (const uint8_t *)values, 8}};
  build(s, 2, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "tensor 'w': its storage '0' has no member 'a/data/0'");
  s[1].name = "a/data/0";
  s[1].len = 6;
  build(s, 2, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "storage '0' should hold 2 float32 elements (8 bytes) but 'a/data/0' has 6 bytes");
  /* a tensor of 3 elements on a storage of 2 */
  make_pickle(2, 3, 0);
  s[1].len = 8;
  build(s, 2, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "tensor 'w' (float32, 3 elements) reaches beyond its storage of 8 bytes");
}

static void test_selection(void) {
  make_pickle(2, 2, 1);
  member m[2] = {{"a/data.pkl", pkl, pkl_len}, {"a/data/0", (const uint8_t *)values, 8}};
  build(m, 2, 1);
  CHECK_OK(parse());
  CHECK(c && re_ckpt_count(c) == 1 && re_ckpt_metadata_count(c) == 1);
  if (c && re_ckpt_metadata_count(c) == 1) {
    const char *k, *v;
    re_ckpt_metadata(c, 0, &k, &v);
    CHECK(!strcmp(k, "epoch") && !strcmp(v, "3"));
  }
  re_ckpt_options opt = {"model", 0};
  CHECK_OK(parse_opt(&opt));
  opt.state_dict_key = "epoch";
  CHECK_FAILS(parse_opt(&opt), RE_EINVAL, "'epoch' holds a int without tensors");
  opt.state_dict_key = "optim";
  CHECK_FAILS(parse_opt(&opt), RE_EINVAL, "no key 'optim' at the top level (keys: 'epoch', 'model')");
  /* a pickle holding no state_dict at all */
  static const char only_scalars[] = "\x80\x02}(X\x01\x00\x00\x00" "aK\x01u.";
  member n[1] = {{"a/data.pkl", (const uint8_t *)only_scalars, sizeof only_scalars - 1}};
  build(n, 1, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "no state_dict found");
  static const char a_list[] = "\x80\x02]."; /* a list at the top */
  n[0].data = (const uint8_t *)a_list;
  n[0].len = sizeof a_list - 1;
  build(n, 1, 1);
  CHECK_FAILS(parse(), RE_EFORMAT, "the checkpoint holds a list");
}

int main(void) {
  test_valid();
  test_zip_structure();
  test_torch_layout();
  test_selection();
  re_ckpt_close(&c);
  return check_report();
}
