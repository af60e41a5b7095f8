/* Every safetensors validation rule, on hand-built byte images: each malformed
 * file fails with the specific status and a message naming the problem, and the
 * well-formed variants next to them parse (so each rule is what rejects). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/ckpt_internal.h"
#include "../../lib/io/jsonparse.h"
#include "check.h"

static uint8_t img[1 << 16];
static int64_t img_len;

/* Build: u64 header length (declared, or the real length if < 0), header text, data_len data bytes. */
static void build_declared(const char *header, int64_t declared, int64_t data_len) {
  int64_t n = (int64_t)strlen(header);
  uint64_t d = declared < 0 ? (uint64_t)n : (uint64_t)declared;
  for (int k = 0; k < 8; k++)
    img[k] = (uint8_t)(d >> (8 * k));
  memcpy(img + 8, header, (size_t)n);
  for (int64_t k = 0; k < data_len; k++)
    img[8 + n + k] = (uint8_t)(k * 7 + 1);
  img_len = 8 + n + data_len;
}

static void build(const char *header, int64_t data_len) { build_declared(header, -1, data_len); }

static re_ckpt *last;

static re_status parse(void) {
  re_ckpt_close(&last);
  re_status st = re_ckpt_alloc("t.safetensors", RE_CKPT_SAFETENSORS, &last);
  if (st != RE_OK)
    return st;
  return re_safetensors_parse(last, img, img_len);
}

#define T(name, dtype, shape, b, e) "\"" name "\": {\"dtype\": \"" dtype "\", \"shape\": " shape ", \"data_offsets\": [" #b ", " #e "]}"

static void test_sizes(void) {
  build("{" T("a", "F32", "[2]", 0, 8) "}", 8);
  CHECK_OK(parse());
  CHECK(re_ckpt_count(last) == 1);
  img_len = 7;
  CHECK_FAILS(parse(), RE_EFORMAT, "too short");
  /* lying header length: longer than the file */
  build_declared("{" T("a", "F32", "[2]", 0, 8) "}", 5000, 8);
  CHECK_FAILS(parse(), RE_EFORMAT, "runs past the end of the file");
  /* declared header above 100 MB, and an absurd u64 */
  build_declared("{}", 100000001, 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "exceeds the limit of 100000000 bytes");
  build_declared("{}", -2 /* set below */, 0);
  memset(img, 0xff, 8);
  CHECK_FAILS(parse(), RE_EFORMAT, "exceeds the limit");
  /* a header length that is shorter than the JSON cuts it */
  build_declared("{" T("a", "F32", "[2]", 0, 8) "}", 10, 8);
  CHECK_FAILS(parse(), RE_EFORMAT, "byte");
}

static void test_layout(void) {
  build("{" T("a", "F32", "[2]", 0, 8) ", " T("b", "F32", "[2]", 8, 16) "}", 16);
  CHECK_OK(parse());
  build("{" T("a", "F32", "[2]", 0, 8) ", " T("b", "F32", "[2]", 4, 12) "}", 12);
  CHECK_FAILS(parse(), RE_EFORMAT, "overlaps");
  build("{" T("a", "F32", "[2]", 0, 8) ", " T("b", "F32", "[2]", 12, 20) "}", 20);
  CHECK_FAILS(parse(), RE_EFORMAT, "hole in the data buffer: bytes [8, 12)");
  build("{" T("b", "F32", "[2]", 4, 12) "}", 12);
  CHECK_FAILS(parse(), RE_EFORMAT, "hole in the data buffer: bytes [0, 4)");
  build("{" T("a", "F32", "[2]", 0, 8) "}", 12);
  CHECK_FAILS(parse(), RE_EFORMAT, "trailing bytes");
  build("{" T("a", "F32", "[2]", 0, 8) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "truncated file");
  build("{" T("a", "F32", "[3]", 0, 8) "}", 8);
  CHECK_FAILS(parse(), RE_EFORMAT, "span 8 bytes, but F32 x 3 elements need 12");
  build("{" T("a", "F32", "[2]", 8, 0) "}", 8);
  CHECK_FAILS(parse(), RE_EFORMAT, "begin 8 > end 0");
  build("{" T("a", "F32", "[2]", 0, 8) ", " T("a", "F32", "[2]", 8, 16) "}", 16);
  CHECK_FAILS(parse(), RE_EFORMAT, "duplicate tensor name 'a'");
  /* zero-size tensors may share an offset; header order is kept, not offset order */
  build("{" T("z", "F32", "[0, 3]", 4, 4) ", " T("b", "U8", "[4]", 4, 8) ", " T("a", "I32", "[]", 0, 4) "}", 8);
  CHECK_OK(parse());
  CHECK(re_ckpt_count(last) == 3 && !strcmp(re_ckpt_info(last, 0)->name, "z") &&
        !strcmp(re_ckpt_info(last, 2)->name, "a"));
  build("{}", 0);
  CHECK_OK(parse());
  CHECK(re_ckpt_count(last) == 0);
  build("{}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "trailing bytes");
}

static void test_entries(void) {
  build("{" T("x", "F8_E4M3", "[2]", 0, 2) "}", 2);
  CHECK_FAILS(parse(), RE_EUNSUPPORTED, "unsupported dtype 'F8_E4M3' for tensor 'x'");
  build("{" T("x", "C64", "[1]", 0, 8) "}", 8);
  CHECK_FAILS(parse(), RE_EUNSUPPORTED, "unsupported dtype 'C64'");
  build("{" T("x", "U16", "[2]", 0, 4) "}", 4);
  CHECK_OK(parse());
  CHECK(re_ckpt_count(last) == 1 && re_ckpt_info(last, 0)->dtype == RE_DTYPE_U16);
  build("{" T("x", "F32", "[-1]", 0, 0) "}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "shape must hold non-negative integers");
  build("{" T("x", "F32", "[1.0]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "shape must hold non-negative integers");
  build("{" T("x", "F32", "[\"2\"]", 0, 8) "}", 8);
  CHECK_FAILS(parse(), RE_EFORMAT, "shape must hold integers, found a string");
  build("{" T("x", "F32", "[99999999999999999999]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "does not fit in 64 bits");
  build("{" T("x", "F32", "[1]", 0, 18446744073709551620) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "data_offsets value at header byte");
  build("{" T("x", "F32", "[4294967296, 4294967296, 16]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "element count overflows");
  build("{" T("x", "F64", "[1073741824, 4294967296]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "byte size overflows");
  build("{" T("x", "F32", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EUNSUPPORTED, "9 dimensions");
  build("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"strides\": [1]}}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "unknown field 'strides'");
  build("{\"x\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "missing field 'data_offsets'");
  build("{\"x\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "field 'dtype' appears twice");
  build("{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "data_offsets must be an array [begin, end]");
  build("{\"x\": [1, 2]}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "tensor 'x': expected an object");
  build("{\"x\": {\"dtype\": 5, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "dtype must be a string");
}

static void test_metadata(void) {
  build("{\"__metadata__\": {\"format\": \"pt\", \"a\": \"b\"}, " T("x", "F32", "[1]", 0, 4) "}", 4);
  CHECK_OK(parse());
  CHECK(re_ckpt_metadata_count(last) == 2);
  const char *k, *v;
  re_ckpt_metadata(last, 1, &k, &v);
  CHECK(k && v && !strcmp(k, "a") && !strcmp(v, "b"));
  build("{\"__metadata__\": {\"epoch\": 3}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "__metadata__ entry 'epoch' must be a string");
  build("{\"__metadata__\": {\"a\": \"1\", \"a\": \"2\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "__metadata__ key 'a' appears twice");
  build("{\"__metadata__\": {}, \"__metadata__\": {}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "__metadata__ appears twice");
  build("{\"__metadata__\": [\"a\"]}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "__metadata__ must be an object");
  build("{\"__metadata__\": {\"a\\u0000b\": \"1\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "NUL");
}

static void test_json(void) {
  char deep[400];
  strcpy(deep, "{\"__metadata__\": ");
  for (int k = 0; k < 100; k++)
    strcat(deep, "[");
  for (int k = 0; k < 100; k++)
    strcat(deep, "]");
  strcat(deep, "}");
  build(deep, 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "nesting deeper than 64 levels");
  build("[1]", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "must be a JSON object starting with '{'");
  build("{}  x", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "unexpected bytes after the JSON value");
  build("{}      ", 0); /* the format pads the header with spaces */
  CHECK_OK(parse());
  build("{} {}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "unexpected bytes after the JSON value");
  build("{\"a\": 1,}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "expected a string as object key");
  build("{\"a\" 1}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "expected ':'");
  build("{\"__metadata__\": {\"a\": \"b\"", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "unterminated object");
  build("{" T("x", "F32", "[01]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "leading zeros");
  build("{\"__metadata__\": {\"a\": \"b", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "unterminated string");
  build("{\"__metadata__\": {\"a\": \"b\tc\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "control character inside a string");
  build("{\"__metadata__\": {\"a\": \"\\x41\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "invalid escape sequence");
  build("{\"__metadata__\": {\"a\": \"\\u12G4\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "four hex digits");
  build("{\"__metadata__\": {\"a\": \"\\udc00\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "unpaired low surrogate");
  build("{\"__metadata__\": {\"a\": \"\\ud83dx\"}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "high surrogate not followed by a low surrogate");
  build("{\"__metadata__\": {\"a\": \"\xc0\x80\"}}", 0); /* overlong NUL */
  CHECK_FAILS(parse(), RE_EFORMAT, "invalid UTF-8");
  build("{\"__metadata__\": {\"a\": \"\xed\xa0\x80\"}}", 0); /* encoded surrogate */
  CHECK_FAILS(parse(), RE_EFORMAT, "invalid UTF-8");
  build("{\"__metadata__\": {\"a\": tru}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "invalid literal");
  build("{\"__metadata__\": {\"a\": -}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "invalid number");
  build("{\"__metadata__\": {\"a\": 1.}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "digits after '.'");
  build("{\"__metadata__\": {\"a\": 1e}}", 0);
  CHECK_FAILS(parse(), RE_EFORMAT, "exponent needs digits");
  /* the parser's value limit (safetensors uses 8,000,000) */
  re_json j;
  CHECK_FAILS(re_json_parse("[0, 0, 0]", 9, 64, 3, "t", 0, &j), RE_EFORMAT, "t, byte 7: more than 3 JSON values");
  CHECK_OK(re_json_parse("[0, 0]", 6, 64, 3, "t", 0, &j));
  CHECK(j.count == 3 && j.nodes[0].count == 2);
  re_json_free(&j);
  /* escapes decode to UTF-8: \u00e9, a surrogate pair, \n, \/ and raw UTF-8 */
  build("{" T("a\\u00e9\\ud83d\\ude00\\n\\/\xc3\xa9", "F32", "[1]", 0, 4) "}", 4);
  CHECK_OK(parse());
  int64_t i = -1;
  CHECK_OK(re_ckpt_find(last, "a\xc3\xa9\xf0\x9f\x98\x80\n/\xc3\xa9", &i));
  build("{" T("a\\u0000b", "F32", "[1]", 0, 4) "}", 4);
  CHECK_FAILS(parse(), RE_EFORMAT, "NUL character");
}

/* The bytes that parse are the file's bytes: values, dtype conversion, views into the buffer. */
static void test_values(void) {
  const char *h = "{" T("f", "F32", "[2]", 0, 8) ", " T("h", "F16", "[2]", 8, 12) ", " T("b", "BF16", "[1]", 12, 14)
                  ", " T("u", "U8", "[2]", 14, 16) "}";
  build(h, 16);
  int64_t n = (int64_t)strlen(h);
  uint8_t *d = img + 8 + n;
  float f[2] = {1.5f, -3.25f};
  memcpy(d, f, 8);
  uint16_t hv[2] = {0x3c00, 0xc000}; /* 1.0, -2.0 */
  memcpy(d + 8, hv, 4);
  uint16_t bv = 0x4049; /* 3.140625 */
  memcpy(d + 12, &bv, 2);
  d[14] = 200;
  d[15] = 7;
  CHECK_OK(parse());
  float out[2];
  CHECK_OK(re_ckpt_read_f32(last, 0, out));
  CHECK(out[0] == 1.5f && out[1] == -3.25f);
  CHECK_OK(re_ckpt_read_f32(last, 1, out));
  CHECK(out[0] == 1.0f && out[1] == -2.0f);
  CHECK_OK(re_ckpt_read_f32(last, 2, out));
  CHECK(out[0] == 3.140625f);
  CHECK_OK(re_ckpt_read_f32(last, 3, out));
  CHECK(out[0] == 200.0f && out[1] == 7.0f);
  const float *view = NULL;
  re_status vs = re_ckpt_view_f32(last, 0, &view);
  /* the view is the buffer itself when aligned */
  if (((uintptr_t)d % 4) == 0)
    CHECK(vs == RE_OK && (const uint8_t *)view == d);
  else
    CHECK(vs == RE_EUNSUPPORTED);
  CHECK_FAILS(re_ckpt_view_f32(last, 1, &view), RE_EUNSUPPORTED, "not stored as aligned contiguous float32");
}

/* The file path: mmap, then the same rules (a truncated file on disk). */
static void test_file(void) {
  const char *path = "test_safetensors_truncated.safetensors";
  build("{" T("a", "F32", "[4]", 0, 16) "}", 16);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f)
    return;
  fwrite(img, 1, (size_t)(img_len - 5), f);
  fclose(f);
  re_ckpt *c = NULL;
  CHECK_FAILS(re_ckpt_open(path, NULL, &c), RE_EFORMAT, "truncated file");
  CHECK(c == NULL);
  f = fopen(path, "wb");
  fwrite(img, 1, (size_t)img_len, f);
  fclose(f);
  CHECK_OK(re_ckpt_open(path, NULL, &c));
  CHECK(c && re_ckpt_format_of(c) == RE_CKPT_SAFETENSORS && re_ckpt_count(c) == 1);
  re_ckpt_close(&c);
  remove(path);
}

int main(void) {
  test_sizes();
  test_layout();
  test_entries();
  test_metadata();
  test_json();
  test_values();
  test_file();
  re_ckpt_close(&last);
  return check_report();
}
