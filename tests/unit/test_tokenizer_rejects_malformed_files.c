/* Every tokenizer.json that cannot be followed exactly is refused with the
 * specific status and a message naming the file, the JSON path and what is
 * wrong (never a crash, never a silent default): truncated text, unknown
 * component types, merges over unknown tokens, ids out of range or given twice,
 * sparse or huge id spaces, unknown keys. Invalid UTF-8 text and unknown ids
 * are refused at encode / decode time. The valid variant next to each case loads,
 * so each rule is what refuses. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tok_testutil.h"

static char json[1 << 16];

/* A small BPE tokenizer with the given parts (JSON texts). */
static const char *make(const char *norm, const char *pre, const char *post, const char *dec, const char *model,
                        const char *added, const char *extra) {
  snprintf(json, sizeof json,
           "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": %s, \"normalizer\": %s,"
           " \"pre_tokenizer\": %s, \"post_processor\": %s, \"decoder\": %s, \"model\": %s%s}",
           added, norm, pre, post, dec, model, extra);
  return json;
}

#define MODEL_OK "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"<s>\": 3}, \"merges\": [\"a b\"]}"
#define ADDED_OK "[{\"id\": 3, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false," \
                 " \"normalized\": false, \"special\": true}]"

static re_status load(const char *text) {
  re_tokenizer *t = NULL;
  re_status st = re_tokenizer_load_buffer(text, (int64_t)strlen(text), "bad.json", &t);
  CHECK((st == RE_OK) == (t != NULL));
  re_tokenizer_destroy(&t);
  return st;
}

#define PART(norm, pre, post, dec, model, added) load(make(norm, pre, post, dec, model, added, ""))

static void test_structure(void) {
  CHECK_OK(PART("null", "null", "null", "null", MODEL_OK, ADDED_OK));
  /* truncated: the parser names the byte */
  const char *full = make("null", "null", "null", "null", MODEL_OK, ADDED_OK, "");
  char cut[4096];
  snprintf(cut, sizeof cut, "%.*s", (int)strlen(full) / 2, full);
  CHECK_FAILS(load(cut), RE_EFORMAT, "bad.json, byte");
  CHECK_FAILS(load(""), RE_EFORMAT, "bad.json, byte 0");
  CHECK_FAILS(load("[1, 2]"), RE_EFORMAT, "a tokenizer.json is a JSON object");
  CHECK_FAILS(load("{\"version\": \"1.0\"}"), RE_EFORMAT, "missing \"model\"");
  CHECK_FAILS(load(make("null", "null", "null", "null", MODEL_OK, ADDED_OK, ", \"extra\": 1")), RE_EUNSUPPORTED,
              "unknown key \"extra\"");
  CHECK_FAILS(load("{\"version\": \"2.0\", \"model\": " MODEL_OK "}"), RE_EUNSUPPORTED,
              "unknown tokenizer version \"2.0\"");
  CHECK_FAILS(load("{\"model\": " MODEL_OK ", \"model\": " MODEL_OK "}"), RE_EFORMAT, "key \"model\" appears twice");
}

static void test_unknown_types(void) {
  CHECK_FAILS(PART("{\"type\": \"Nmt\"}", "null", "null", "null", MODEL_OK, ADDED_OK), RE_EUNSUPPORTED,
              "bad.json: normalizer (byte");
  CHECK_FAILS(PART("{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}", "null", "null", "null", MODEL_OK,
                   ADDED_OK),
              RE_EUNSUPPORTED, "normalizer type \"Precompiled\" is not supported");
  CHECK_FAILS(PART("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"Bogus\"}]}", "null",
                   "null", "null", MODEL_OK, ADDED_OK),
              RE_EUNSUPPORTED, "normalizer.normalizers[1]");
  CHECK_FAILS(PART("null", "{\"type\": \"UnicodeScripts\"}", "null", "null", MODEL_OK, ADDED_OK), RE_EUNSUPPORTED,
              "pre-tokenizer type \"UnicodeScripts\" is not supported");
  CHECK_FAILS(PART("null", "null", "{\"type\": \"Fancy\"}", "null", MODEL_OK, ADDED_OK), RE_EUNSUPPORTED,
              "post-processor type \"Fancy\"");
  CHECK_FAILS(PART("null", "null", "null", "{\"type\": \"CTC\", \"pad_token\": \"<pad>\"}", MODEL_OK, ADDED_OK),
              RE_EUNSUPPORTED, "decoder type \"CTC\" is not supported");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"a\", -1.0]]}", "[]"),
              RE_EUNSUPPORTED, "model (byte");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"WordLevel\", \"vocab\": {}}", "[]"), RE_EUNSUPPORTED,
              "model type \"WordLevel\" is not supported");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"vocab\": {}}", "[]"), RE_EUNSUPPORTED, "model type \"?\"");
  /* a known type with an unknown option */
  CHECK_FAILS(PART("{\"type\": \"NFC\", \"form\": 1}", "null", "null", "null", MODEL_OK, ADDED_OK), RE_EUNSUPPORTED,
              "unknown key \"form\"");
  CHECK_FAILS(PART("null", "{\"type\": \"Split\", \"pattern\": {\"Glob\": \"*\"}, \"behavior\": \"Isolated\","
                   " \"invert\": false}", "null", "null", MODEL_OK, ADDED_OK),
              RE_EUNSUPPORTED, "pattern kind \"Glob\"");
  CHECK_FAILS(PART("null", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\","
                   " \"invert\": false}", "null", "null", MODEL_OK, ADDED_OK),
              RE_EUNSUPPORTED, "cannot compile the regex \"(\"");
  CHECK_FAILS(PART("null", "{\"type\": \"Split\", \"pattern\": {\"String\": \"x\"}, \"behavior\": \"Sideways\","
                   " \"invert\": false}", "null", "null", MODEL_OK, ADDED_OK),
              RE_EUNSUPPORTED, "unknown split behavior \"Sideways\"");
  CHECK_FAILS(PART("null", "{\"type\": \"Metaspace\", \"replacement\": \"ab\"}", "null", "null", MODEL_OK, ADDED_OK),
              RE_EFORMAT, "\"replacement\" must be a single character");
  CHECK_FAILS(PART("null", "{\"type\": \"Metaspace\", \"replacement\": \"_\", \"prepend_scheme\": \"sometimes\"}",
                   "null", "null", MODEL_OK, ADDED_OK),
              RE_EUNSUPPORTED, "unknown prepend_scheme");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}", "[]"),
              RE_EUNSUPPORTED, "dropout 0.1");
  CHECK_OK(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"dropout\": 0.0, \"vocab\": {\"a\": 0},"
                " \"merges\": []}", "[]"));
}

static void test_vocab_and_merges(void) {
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a zz\"]}", "[]"),
              RE_EFORMAT, "model.merges[0] (byte");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a zz\"]}", "[]"),
              RE_EFORMAT, "merge token \"zz\" is not in the vocab");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\", \"b\"]]}", "[]"),
              RE_EFORMAT, "merged token \"ab\" is not in the vocab");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b c\"]}", "[]"),
              RE_EFORMAT, "two tokens separated by one space");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\"]]}", "[]"),
              RE_EFORMAT, "a merge must be");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}",
                   "[]"),
              RE_EFORMAT, "vocab id 0 is given to two tokens");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}",
                   "[]"),
              RE_EFORMAT, "vocab token \"a\" appears twice");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}", "[]"),
              RE_EFORMAT, "vocab id of \"a\" must be an integer");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}, \"merges\": []}", "[]"),
              RE_EFORMAT, "must be an integer");
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}, \"merges\": []}", "[]"),
              RE_EFORMAT, "must be an integer from 0 to");
  /* a huge id for a tiny vocabulary would make a huge id table */
  CHECK_FAILS(PART("null", "null", "null", "null",
                   "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2000000000}, \"merges\": []}", "[]"),
              RE_EUNSUPPORTED, "too sparse");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"vocab\": [], \"merges\": []}", "[]"),
              RE_EFORMAT, "\"vocab\" must be an object");
  CHECK_FAILS(PART("null", "null", "null", "null", "{\"type\": \"BPE\", \"vocab\": {}}", "[]"), RE_EFORMAT,
              "\"merges\" must be an array");
}

static void test_ids(void) {
  /* added tokens must have the ids that loading gives them */
  CHECK_FAILS(PART("null", "null", "null", "null", MODEL_OK,
                   "[{\"id\": 7, \"content\": \"<s>\", \"special\": true}]"),
              RE_EFORMAT, "added token \"<s>\" has id 7, but loading gives it id 3");
  CHECK_FAILS(PART("null", "null", "null", "null", MODEL_OK, "[{\"id\": 9, \"content\": \"<new>\", \"special\": true}]"),
              RE_EFORMAT, "gives it id 4");
  CHECK_OK(PART("null", "null", "null", "null", MODEL_OK, "[{\"id\": 4, \"content\": \"<new>\", \"special\": true}]"));
  CHECK_FAILS(PART("null", "null", "null", "null", MODEL_OK, "[{\"content\": \"<s>\"}]"), RE_EFORMAT,
              "missing integer \"id\"");
  CHECK_FAILS(PART("null", "null", "null", "null", MODEL_OK, "{}"), RE_EFORMAT, "added_tokens (byte");
  /* post-processor ids outside the vocabulary, or naming unknown special tokens */
  const char *tmpl_bad = "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\","
                         " \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [],"
                         " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [50], \"tokens\": [\"<s>\"]}}}";
  CHECK_FAILS(PART("null", "null", tmpl_bad, "null", MODEL_OK, ADDED_OK), RE_EFORMAT,
              "post_processor special token id 50 is outside the vocabulary (size 4)");
  const char *tmpl_missing = "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<x>\","
                             " \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {}}";
  CHECK_FAILS(PART("null", "null", tmpl_missing, "null", MODEL_OK, ADDED_OK), RE_EFORMAT,
              "special token \"<x>\" is not in special_tokens");
  CHECK_FAILS(PART("null", "null", "{\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 102], \"cls\": [\"<s>\", 3]}",
                   "null", MODEL_OK, ADDED_OK),
              RE_EFORMAT, "id 102 is outside the vocabulary");
  CHECK_FAILS(PART("null", "null", "{\"type\": \"BertProcessing\", \"sep\": \"x\", \"cls\": [\"<s>\", 3]}", "null",
                   MODEL_OK, ADDED_OK),
              RE_EFORMAT, "\"sep\" must be [token, id]");
  CHECK_FAILS(load("{\"padding\": {\"strategy\": \"BatchLongest\", \"direction\": \"Right\", \"pad_id\": 77,"
                   " \"pad_type_id\": 0, \"pad_token\": \"x\"}, \"model\": " MODEL_OK "}"),
              RE_EFORMAT, "padding pad_id id 77");
  CHECK_FAILS(load("{\"truncation\": {\"max_length\": 5, \"strategy\": \"Sometimes\", \"stride\": 0}, \"model\": " MODEL_OK
                   "}"),
              RE_EUNSUPPORTED, "unknown strategy \"Sometimes\"");
}

static void test_encode_decode_errors(void) {
  re_tokenizer *t = NULL;
  const char *ok = make("null", "null", "null", "null",
                        "{\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2,"
                        " \"<s>\": 3}, \"merges\": [\"a b\"]}",
                        ADDED_OK, "");
  CHECK_OK(re_tokenizer_load_buffer(ok, (int64_t)strlen(ok), "t.json", &t));
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  CHECK_FAILS(re_tokenizer_encode(t, "ab\xff", 3, 0, &ids, &n, &cap), RE_EINVAL, "not valid UTF-8 at byte 2");
  CHECK_FAILS(re_tokenizer_encode(t, "a\xed\xa0\x80", 4, 0, &ids, &n, &cap), RE_EINVAL, "at byte 1");
  /* "c" needs the unknown token, which the vocab lacks */
  CHECK_FAILS(re_tokenizer_encode(t, "abc", 3, 0, &ids, &n, &cap), RE_EFORMAT, "\"<unk>\", which is not in the vocab");
  CHECK_OK(re_tokenizer_encode(t, "ab<s>", 5, 0, &ids, &n, &cap));
  CHECK(n == 2 && ids[0] == 2 && ids[1] == 3);
  char *text = NULL;
  int64_t len;
  const int32_t bad[] = {0, 4};
  CHECK_FAILS(re_tokenizer_decode(t, bad, 2, 0, &text, &len), RE_EINVAL, "id 4 (position 1) is not in the vocabulary");
  const int32_t neg[] = {-3};
  CHECK_FAILS(re_tokenizer_decode(t, neg, 1, 0, &text, &len), RE_EINVAL, "id -3");
  CHECK(text == NULL);
  free(ids);
  re_tokenizer_destroy(&t);
  re_tokenizer_destroy(&t); /* destroy of NULL is fine */
}

static void test_files(void) {
  re_tokenizer *t = NULL;
  CHECK_FAILS(re_tokenizer_load("no-such-tokenizer-dir", &t), RE_EIO, "cannot open no-such-tokenizer-dir");
  char dir[] = "tok-test-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  CHECK_FAILS(re_tokenizer_load(dir, &t), RE_EIO, "tokenizer.json");
  char path[256];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "w");
  fputs(make("null", "null", "null", "null", MODEL_OK, ADDED_OK, ""), f);
  fclose(f);
  CHECK_OK(re_tokenizer_load(dir, &t));
  re_tokenizer_destroy(&t);
  /* tokenizer_config.json names the special tokens, and must name real ones */
  char cfg[256];
  snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
  f = fopen(cfg, "w");
  fputs("{\"bos_token\": {\"content\": \"<s>\", \"__type\": \"AddedToken\"}, \"eos_token\": \"<s>\", \"pad_token\": null,"
        " \"model_max_length\": 1000}",
        f);
  fclose(f);
  CHECK_OK(re_tokenizer_load(path, &t));
  CHECK(t && re_tokenizer_special_id(t, RE_TOKEN_BOS) == 3 && re_tokenizer_special_id(t, RE_TOKEN_EOS) == 3 &&
        re_tokenizer_special_id(t, RE_TOKEN_PAD) == -1);
  re_tokenizer_destroy(&t);
  f = fopen(cfg, "w");
  fputs("{\"unk_token\": \"<unk>\"}", f);
  fclose(f);
  CHECK_FAILS(re_tokenizer_load(dir, &t), RE_EFORMAT, "tokenizer_config.json: unk_token (byte 14): \"<unk>\" is not");
  CHECK(t == NULL);
  unlink(cfg);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  test_structure();
  test_unknown_types();
  test_vocab_and_merges();
  test_ids();
  test_encode_decode_errors();
  test_files();
  return check_report();
}
