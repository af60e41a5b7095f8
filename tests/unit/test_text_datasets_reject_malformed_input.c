/* Text datasets (JSON Lines, plain text, WebDataset .txt): documents, labels and
 * class names as documented, and every refusal with the file and line or byte:
 * invalid UTF-8, lines that are not JSON objects, missing or non-string fields,
 * labels of the wrong type, empty corpora, bad options, tokenizer files whose own
 * truncation or padding would change the samples. */
#include "check.h"
#include "text_fixtures.h"

#include "repeval/tokenizer.h"

static re_dataset *ds;

static re_status jsonl(const char *name, const char *text, const char *label_field, const re_text_options *o) {
  re_dataset_close(&ds);
  const char *f[1] = {tx_text(name, text)};
  return re_dataset_open_jsonl(f, 1, "text", label_field, o, &ds);
}

static re_status text1(const char *name, const char *text, const char *unit, const char *sep,
                       const re_text_options *o) {
  re_dataset_close(&ds);
  const char *f[1] = {tx_text(name, text)};
  return re_dataset_open_text(f, 1, unit, sep, NULL, o, &ds);
}

/* The ids of `text` as the tokenizer gives them without special tokens. */
static int64_t encode(re_tokenizer *t, const char *text, int64_t *out) {
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  if (re_tokenizer_encode(t, text, (int64_t)strlen(text), 0, &ids, &n, &cap) != RE_OK)
    n = -1;
  for (int64_t k = 0; k < n; k++)
    out[k] = ids[k];
  free(ids);
  return n;
}

int main(void) {
  fx_mkdir();
  re_text_options o = tx_opts("gpt2_bytelevel", 16);
  re_tokenizer *tok = NULL;
  CHECK_OK(re_tokenizer_load(o.tokenizer, &tok));
  int64_t want[64], got[64];
  uint8_t m[64];
  int32_t y[8];

  /* JSON Lines: blank lines skipped, CRLF, escapes, string labels numbered in order
   * of first appearance, blank texts give no sample (their label is still checked) */
  CHECK_OK(jsonl("good.jsonl",
                 "\xEF\xBB\xBF{\"text\": \"caf\\u00e9 au lait\", \"y\": \"drink\", \"extra\": [1, {\"a\": null}]}\r\n"
                 "\n   \n"
                 "{\"y\": \"food\", \"text\": \"bread\"}\n"
                 "{\"text\": \"  \", \"y\": \"other\"}\n"
                 "{\"text\": \"tea\", \"y\": \"drink\"}",
                 "y", &o));
  if (ds) {
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 3 && in->has_labels && in->num_classes == 3 && in->vocab == 700);
    CHECK(!strcmp(re_dataset_class_name(ds, 0), "drink") && !strcmp(re_dataset_class_name(ds, 1), "food") &&
          !strcmp(re_dataset_class_name(ds, 2), "other") && re_dataset_class_name(ds, 3) == NULL);
    CHECK_OK(re_dataset_read_tokens(ds, 0, 3, got, m, y));
    CHECK(y[0] == 0 && y[1] == 1 && y[2] == 0);
    int64_t n = encode(tok, "caf\xc3\xa9 au lait", want);
    CHECK(n > 0 && n < 16 && !memcmp(got, want, sizeof *got * (size_t)n) && m[n - 1] == 1 && m[n] == 0);
    n = encode(tok, "tea", want);
    CHECK(!memcmp(got + 32, want, sizeof *got * (size_t)n) && m[32 + n] == 0);
  }
  /* integer labels; every refusal names the file and line */
  CHECK_OK(jsonl("int.jsonl", "{\"text\": \"a\", \"y\": 3}\n{\"text\": \"b\", \"y\": 0}\n", "y", &o));
  CHECK(ds && re_dataset_get_info(ds)->num_classes == 4 && re_dataset_class_name(ds, 0) == NULL);
  CHECK_FAILS(jsonl("utf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"bad \xC3\x28\"}\n", NULL, &o), RE_EFORMAT,
              "utf8.jsonl:2, byte 29: invalid UTF-8 in string");
  CHECK_FAILS(jsonl("notjson.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": 'single'}\n", NULL, &o), RE_EFORMAT,
              "notjson.jsonl:3, byte ");
  CHECK_FAILS(jsonl("array.jsonl", "[\"text\"]\n", NULL, &o), RE_EFORMAT,
              "array.jsonl:1: the line is an array, not a JSON object");
  CHECK_FAILS(jsonl("two.jsonl", "{\"text\": \"a\"} {\"text\": \"b\"}\n", NULL, &o), RE_EFORMAT,
              "two.jsonl:1, byte 14: unexpected bytes after the JSON value");
  CHECK_FAILS(jsonl("missing.jsonl", "{\"text\": \"a\"}\n{\"txt\": \"b\"}\n", NULL, &o), RE_EFORMAT,
              "missing.jsonl:2: the object has no \"text\" member (the text field)");
  CHECK_FAILS(jsonl("number.jsonl", "{\"text\": 12}\n", NULL, &o), RE_EFORMAT,
              "number.jsonl:1, byte 9: \"text\" is a number, not a string");
  CHECK_FAILS(jsonl("twice.jsonl", "{\"text\": \"a\", \"text\": \"b\"}\n", NULL, &o), RE_EFORMAT,
              "twice.jsonl:1: the object has \"text\" twice");
  CHECK_FAILS(jsonl("nolabel.jsonl", "{\"text\": \"a\", \"y\": 1}\n{\"text\": \"b\"}\n", "y", &o), RE_EFORMAT,
              "nolabel.jsonl:2: the object has no \"y\" member (the label field)");
  CHECK_FAILS(jsonl("mixed.jsonl", "{\"text\": \"a\", \"y\": 1}\n{\"text\": \"b\", \"y\": \"pos\"}\n", "y", &o),
              RE_EFORMAT, "mixed.jsonl:2, byte 41: label \"y\" is a string; the labels are integers");
  CHECK_FAILS(jsonl("bool.jsonl", "{\"text\": \"a\", \"y\": true}\n", "y", &o), RE_EFORMAT,
              "bool.jsonl:1, byte 19: label \"y\" is a boolean");
  CHECK_FAILS(jsonl("neg.jsonl", "{\"text\": \"a\", \"y\": -1}\n", "y", &o), RE_EFORMAT,
              "neg.jsonl:1, byte 19: label \"y\" is not an integer in 0 .. 2147483647");
  CHECK_FAILS(jsonl("frac.jsonl", "{\"text\": \"a\", \"y\": 1.5}\n", "y", &o), RE_EFORMAT, "is not an integer");
  CHECK_FAILS(jsonl("big.jsonl", "{\"text\": \"a\", \"y\": 2147483648}\n", "y", &o), RE_EFORMAT, "is not an integer");
  CHECK_FAILS(jsonl("blank.jsonl", "\n{\"text\": \"\"}\n{\"text\": \" \\n \"}\n", NULL, &o), RE_EDATA,
              "jsonl: no document (an empty corpus");
  CHECK_FAILS(jsonl("empty.jsonl", "", NULL, &o), RE_EDATA, "an empty corpus");
  const char *none[1] = {fx_path("absent.jsonl")};
  CHECK_FAILS(re_dataset_open_jsonl(none, 1, "text", NULL, &o, &ds), RE_EIO, "absent.jsonl");

  /* options */
  re_text_options bad = o;
  bad.seq_len = 0;
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EINVAL, "seq_len 0 must be positive");
  bad = o;
  bad.mode = RE_SEQ_PACK;
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\", \"y\": 1}\n", "y", &bad), RE_EINVAL, "mode pack has no labels");
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EINVAL,
              "mode pack joins documents with EOS, but the tokenizer names none (give eos_token)");
  bad.eos_token = "<nope>";
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EINVAL, "eos_token \"<nope>\" is not a token");
  bad.eos_token = "<|endoftext|>";
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EDATA, "2 tokens in 1 document, fewer than seq_len 16");
  bad = o;
  bad.add_bos = 1;
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EINVAL, "add_bos: the tokenizer names no BOS token");
  bad = o;
  bad.tokenizer = NULL;
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EINVAL, "a tokenizer is needed");
  bad = tx_opts("bert_cased", 2); /* [CLS] and [SEP] leave no room */
  CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &bad), RE_EINVAL,
              "seq_len 2 leaves no room for text next to the 2 special tokens");
  bad.seq_len = 3;
  CHECK_OK(jsonl("o.jsonl", "{\"text\": \"a b c\"}\n", NULL, &bad));
  if (ds) {
    CHECK_OK(re_dataset_read_tokens(ds, 0, 1, got, m, NULL));
    re_tokenizer *bt = NULL;
    CHECK_OK(re_tokenizer_load(bad.tokenizer, &bt));
    CHECK(bt && got[0] == re_tokenizer_token_to_id(bt, "[CLS]", 5) && got[2] == re_tokenizer_token_to_id(bt, "[SEP]", 5));
    re_tokenizer_destroy(&bt);
  }

  /* a tokenizer file with its own padding or truncation */
  FILE *f = fopen(tx_tokenizer("gpt2_bytelevel/tokenizer.json"), "rb");
  fx_buf tj = {0};
  char chunk[4096];
  size_t nr;
  while (f && (nr = fread(chunk, 1, sizeof chunk, f)) > 0)
    fx_put(&tj, chunk, nr);
  if (f)
    fclose(f);
  fx_put(&tj, "", 1);
  const char *settings[4][2] = {
      {"\"padding\": null", "\"padding\": {\"strategy\": {\"Fixed\": 8}, \"direction\": \"Right\", "
                            "\"pad_to_multiple_of\": null, \"pad_id\": 0, \"pad_type_id\": 0, \"pad_token\": \"!\"}"},
      {"\"truncation\": null", "\"truncation\": {\"direction\": \"Right\", \"max_length\": 8, \"strategy\": "
                               "\"LongestFirst\", \"stride\": 0}"},
      {"\"truncation\": null", "\"truncation\": {\"direction\": \"Right\", \"max_length\": 64, \"strategy\": "
                               "\"LongestFirst\", \"stride\": 0}"},
      {"\"padding\": null", "\"padding\": {\"strategy\": \"BatchLongest\", \"direction\": \"Right\", "
                            "\"pad_to_multiple_of\": null, \"pad_id\": 0, \"pad_type_id\": 0, \"pad_token\": \"!\"}"}};
  for (int k = 0; k < 4; k++) {
    const char *at = strstr((const char *)tj.p, settings[k][0]);
    CHECK(at != NULL);
    if (!at)
      continue;
    fx_buf mod = {0};
    fx_put(&mod, tj.p, (size_t)(at - (const char *)tj.p));
    fx_put(&mod, settings[k][1], strlen(settings[k][1]));
    fx_put(&mod, at + strlen(settings[k][0]), strlen(at + strlen(settings[k][0])));
    re_text_options mo = o;
    mo.tokenizer = fx_write("settings.json", mod.p, mod.n);
    free(mod.p);
    if (k == 0)
      CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &mo), RE_EUNSUPPORTED,
                  "settings.json: the tokenizer's \"padding\" (byte ");
    else if (k == 1)
      CHECK_FAILS(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &mo), RE_EUNSUPPORTED,
                  "settings.json: the tokenizer's \"truncation\" (byte ");
    else
      CHECK_OK(jsonl("o.jsonl", "{\"text\": \"a\"}\n", NULL, &mo)); /* cannot change a sample */
  }
  free(tj.p);

  /* plain text: lines (CR removed, blank lines skipped), UTF-8 checked with line and byte */
  CHECK_OK(text1("lines.txt", "first line\r\n\n  \nsecond\n", NULL, NULL, &o));
  if (ds) {
    CHECK(re_dataset_get_info(ds)->count == 2 && !re_dataset_get_info(ds)->has_labels);
    CHECK_OK(re_dataset_read_tokens(ds, 1, 2, got, m, y));
    int64_t n = encode(tok, "second", want);
    CHECK(!memcmp(got, want, sizeof *got * (size_t)n) && m[n] == 0 && y[0] == -1);
  }
  CHECK_FAILS(text1("bad.txt", "ok\nstill ok\nnot \xE2\x82 ok\n", NULL, NULL, &o), RE_EFORMAT,
              "bad.txt:3, byte 16: invalid UTF-8 (byte 0xE2)");
  CHECK_FAILS(text1("sur.txt", "\xED\xA0\x80", "file", NULL, &o), RE_EFORMAT, "sur.txt:1, byte 0: invalid UTF-8");
  CHECK_FAILS(text1("over.txt", "a\xC0\xAF", NULL, NULL, &o), RE_EFORMAT, "over.txt:1, byte 1: invalid UTF-8");
  CHECK_FAILS(text1("blank.txt", "\n \r\n\t\n", NULL, NULL, &o), RE_EDATA, "text: no document (an empty corpus");
  CHECK_FAILS(text1("u.txt", "a\n", "sentence", NULL, &o), RE_EINVAL, "unit 'sentence' is not supported");
  CHECK_FAILS(text1("u.txt", "a\n", "line", "%", &o), RE_EINVAL, "it does not go with unit line");
  CHECK_FAILS(text1("u.txt", "a\n", NULL, "", &o), RE_EINVAL, "the separator must be a non-empty line");
  /* fortune files: documents between "%" lines, several lines each */
  CHECK_OK(text1("fortunes", "A bird in the hand\n  is worth two.\n%\n%\nSecond %saying\n%\nThird\n", NULL, "%", &o));
  if (ds) {
    CHECK(re_dataset_get_info(ds)->count == 3);
    CHECK_OK(re_dataset_read_tokens(ds, 0, 3, got, m, NULL));
    int64_t n = encode(tok, "A bird in the hand\n  is worth two.", want);
    CHECK(n == 16 || !memcmp(got, want, sizeof *got * (size_t)(n < 16 ? n : 16)));
    n = encode(tok, "Second %saying", want);
    CHECK(!memcmp(got + 16, want, sizeof *got * (size_t)n) && m[16 + n] == 0);
    n = encode(tok, "Third", want);
    CHECK(!memcmp(got + 32, want, sizeof *got * (size_t)n) && m[32 + n] == 0);
  }
  /* labels from file and folder names: classes are the sorted distinct names */
  re_dataset_close(&ds);
  tx_text("love", "Love is\n%\nall\n");
  tx_text("food.txt", "Eat\n%\n");
  tx_text("computers", "Bits\n");
  const char *ff[3] = {fx_path("love"), fx_path("food.txt"), fx_path("computers")};
  CHECK_OK(re_dataset_open_text(ff, 3, NULL, "%", "name", &o, &ds));
  if (ds) {
    CHECK(re_dataset_get_info(ds)->count == 4 && re_dataset_get_info(ds)->num_classes == 3);
    CHECK(!strcmp(re_dataset_class_name(ds, 0), "computers") && !strcmp(re_dataset_class_name(ds, 1), "food") &&
          !strcmp(re_dataset_class_name(ds, 2), "love"));
    CHECK_OK(re_dataset_read_tokens(ds, 0, 4, got, m, y));
    CHECK(y[0] == 2 && y[1] == 2 && y[2] == 1 && y[3] == 0);
  }
  re_dataset_close(&ds);
  CHECK_OK(re_dataset_open_text(ff, 3, "file", NULL, "folder", &o, &ds));
  CHECK(ds && re_dataset_get_info(ds)->count == 3 && re_dataset_get_info(ds)->num_classes == 1);
  re_dataset_close(&ds);
  const char *bare[1] = {"CTestTestfile.cmake"}; /* in the working folder */
  CHECK_FAILS(re_dataset_open_text(bare, 1, "file", NULL, "folder", &o, &ds), RE_EINVAL, "the path names no folder");
  CHECK_FAILS(re_dataset_open_text(ff, 3, NULL, NULL, "size", &o, &ds), RE_EINVAL, "label_from 'size'");

  /* WebDataset .txt members */
  fx_buf t = {0};
  fx_tar_text(&t, "d/a.txt", "first document");
  fx_tar_text(&t, "d/a.cls", "1");
  fx_tar_text(&t, "d/b.txt", " \n");
  fx_tar_text(&t, "d/b.cls", "4");
  fx_tar_text(&t, "d/c.txt", "third");
  fx_tar_text(&t, "d/c.cls", "0");
  fx_tar_end(&t);
  const char *sh[1] = {fx_write("t.tar", t.p, t.n)};
  free(t.p);
  CHECK_OK(re_dataset_open_wds_text(sh, 1, "cls", &o, &ds));
  if (ds) {
    CHECK(re_dataset_get_info(ds)->count == 2 && re_dataset_get_info(ds)->num_classes == 2);
    CHECK_OK(re_dataset_read_tokens(ds, 1, 2, got, m, y));
    int64_t n = encode(tok, "third", want);
    CHECK(!memcmp(got, want, sizeof *got * (size_t)n) && y[0] == 0);
    CHECK_OK(re_dataset_read_tokens(ds, 0, 1, got, m, y));
    CHECK(y[0] == 1);
  }
  re_dataset_close(&ds);
  t = (fx_buf){0};
  fx_tar_text(&t, "a.txt", "fine");
  fx_tar_text(&t, "b.txt", "broken \xFF");
  fx_tar_end(&t);
  sh[0] = fx_write("u.tar", t.p, t.n);
  free(t.p);
  CHECK_FAILS(re_dataset_open_wds_text(sh, 1, NULL, &o, &ds), RE_EFORMAT,
              "u.tar: member 'b.txt', byte 7: invalid UTF-8 (byte 0xFF)");
  t = (fx_buf){0};
  fx_tar_text(&t, "a.txt", "fine");
  fx_tar_text(&t, "b.json", "{}");
  fx_tar_end(&t);
  sh[0] = fx_write("v.tar", t.p, t.n);
  free(t.p);
  CHECK_FAILS(re_dataset_open_wds_text(sh, 1, NULL, &o, &ds), RE_EFORMAT, "v.tar: sample 'b' has no '.txt' member");
  CHECK_FAILS(re_dataset_open_wds_text(sh, 1, "txt", &o, &ds), RE_EINVAL, "label extension 'txt' must be non-empty");
  CHECK(ds == NULL);

  re_tokenizer_destroy(&tok);
  fx_rmdir();
  return check_report();
}
