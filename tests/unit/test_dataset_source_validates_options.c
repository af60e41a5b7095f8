/* re_dataset_open_source and the format list: every format is found by name and
 * opens through the one entry point; options are set from text with their values
 * checked, and an option of another format is refused naming the format's own. */
#include "check.h"
#include "text_fixtures.h"

static re_dataset *ds;

int main(void) {
  fx_mkdir();
  /* the list */
  static const char *const names[] = {"idx", "cifar", "cifar100", "npy", "webdataset",
                                      "tokens", "token-stream", "jsonl", "text"};
  for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
    const re_dataset_format *f = re_dataset_format_find(names[k]);
    CHECK(f && !strcmp(f->name, names[k]) && f->files_key && f->options && f->path_options);
    CHECK(strstr(re_dataset_format_names(), names[k]) != NULL);
    for (const char *const *p = f ? f->path_options : NULL; p && *p; p++) {
      int listed = 0;
      for (const char *const *o = f->options; *o; o++)
        listed |= !strcmp(*o, *p);
      CHECK(listed);
    }
  }
  CHECK(re_dataset_format_find("jsonl")->tokens == 1 && re_dataset_format_find("npy")->tokens == 0);
  CHECK(re_dataset_format_find("hdf5") == NULL);

  /* option values */
  re_dataset_source src = {0};
  src.format = "jsonl";
  CHECK_OK(re_dataset_source_set(&src, "seq_len", "128"));
  CHECK_OK(re_dataset_source_set(&src, "mode", "pack"));
  CHECK_OK(re_dataset_source_set(&src, "padding", "left"));
  CHECK_OK(re_dataset_source_set(&src, "special_tokens", "false"));
  CHECK_OK(re_dataset_source_set(&src, "add_bos", "true"));
  CHECK_OK(re_dataset_source_set(&src, "field", "content"));
  CHECK(src.text.seq_len == 128 && src.text.mode == RE_SEQ_PACK && src.text.pad_left && src.text.no_special &&
        src.text.add_bos && !strcmp(src.field, "content"));
  CHECK_FAILS(re_dataset_source_set(&src, "seq_len", "12x"), RE_EINVAL,
              "dataset option 'seq_len': expected a positive integer, got '12x'");
  CHECK_FAILS(re_dataset_source_set(&src, "seq_len", "0"), RE_EINVAL, "expected a positive integer, got '0'");
  CHECK_FAILS(re_dataset_source_set(&src, "seq_len", "99999999999999999999"), RE_EINVAL, "is too large");
  CHECK_FAILS(re_dataset_source_set(&src, "mode", "stride"), RE_EINVAL, "expected truncate or pack, got 'stride'");
  CHECK_FAILS(re_dataset_source_set(&src, "padding", "both"), RE_EINVAL, "expected right or left");
  CHECK_FAILS(re_dataset_source_set(&src, "add_bos", "maybe"), RE_EINVAL, "expected true or false, got 'maybe'");
  CHECK_FAILS(re_dataset_source_set(&src, "mask", "m.npy"), RE_EINVAL,
              "dataset format 'jsonl' has no option 'mask' (its options: field, label_field, tokenizer, seq_len");
  src.format = "parquet";
  CHECK_FAILS(re_dataset_source_set(&src, "seq_len", "1"), RE_EINVAL,
              "unknown dataset format 'parquet' (idx, cifar, cifar100, npy, webdataset, tokens, token-stream, jsonl, text)");

  /* open through the one entry point: .npy arrays, tokens, a stream, jsonl */
  float xs[6] = {0, 1, 2, 3, 4, 5};
  int64_t sh23[2] = {2, 3}, ids[6] = {1, 2, 3, 4, 5, 6};
  const char *x = tx_npy("x.npy", RE_DTYPE_F32, 2, sh23, xs), *t = tx_npy("t.npy", RE_DTYPE_I64, 2, sh23, ids);
  re_dataset_source s = {0};
  s.format = "npy";
  s.files = &x, s.nfiles = 1;
  CHECK_OK(re_dataset_open_source(&s, &ds));
  CHECK(ds && re_dataset_get_info(ds)->count == 2 && !re_dataset_get_info(ds)->tokens);
  re_dataset_close(&ds);
  s.vocab = 10; /* belongs to token formats */
  CHECK_FAILS(re_dataset_open_source(&s, &ds), RE_EINVAL, "dataset format 'npy' has no option 'vocab' (its options: labels)");
  s = (re_dataset_source){0};
  s.format = "tokens";
  s.files = &t, s.nfiles = 1;
  CHECK_OK(re_dataset_source_set(&s, "vocab", "7"));
  CHECK_OK(re_dataset_open_source(&s, &ds));
  CHECK(ds && re_dataset_get_info(ds)->tokens && re_dataset_get_info(ds)->vocab == 7);
  re_dataset_close(&ds);
  const char *two[2] = {t, t};
  s.files = two, s.nfiles = 2;
  CHECK_FAILS(re_dataset_open_source(&s, &ds), RE_EINVAL, "dataset format 'tokens': 2 ids given, it takes 1");
  s.nfiles = 0;
  CHECK_FAILS(re_dataset_open_source(&s, &ds), RE_EINVAL, "dataset format 'tokens': no ids given");
  s = (re_dataset_source){0};
  s.format = "token-stream";
  const char *flat = tx_npy("flat.npy", RE_DTYPE_I64, 1, (int64_t[1]){6}, ids);
  s.files = &flat, s.nfiles = 1;
  CHECK_FAILS(re_dataset_open_source(&s, &ds), RE_EINVAL, "'token-stream' needs seq_len");
  CHECK_OK(re_dataset_source_set(&s, "seq_len", "3"));
  CHECK_OK(re_dataset_open_source(&s, &ds));
  CHECK(ds && re_dataset_get_info(ds)->count == 2 && re_dataset_get_info(ds)->seq_len == 3);
  re_dataset_close(&ds);
  s = (re_dataset_source){0};
  s.format = "jsonl";
  const char *j = tx_text("c.jsonl", "{\"content\": \"hello\", \"lang\": \"en\"}\n");
  s.files = &j, s.nfiles = 1;
  CHECK_OK(re_dataset_source_set(&s, "tokenizer", tx_tokenizer("gpt2_bytelevel")));
  CHECK_OK(re_dataset_source_set(&s, "seq_len", "4"));
  CHECK_OK(re_dataset_source_set(&s, "field", "content"));
  CHECK_OK(re_dataset_source_set(&s, "label_field", "lang"));
  CHECK_OK(re_dataset_open_source(&s, &ds));
  CHECK(ds && re_dataset_get_info(ds)->count == 1 && !strcmp(re_dataset_class_name(ds, 0), "en"));
  re_dataset_close(&ds);
  /* webdataset: .txt members when a tokenizer is given; text options refused for images */
  fx_buf tar = {0};
  fx_tar_text(&tar, "a.txt", "some text");
  fx_tar_end(&tar);
  const char *sh = fx_write("s.tar", tar.p, tar.n);
  free(tar.p);
  s = (re_dataset_source){0};
  s.format = "webdataset";
  s.files = &sh, s.nfiles = 1;
  CHECK_OK(re_dataset_source_set(&s, "label_ext", "none"));
  CHECK_OK(re_dataset_source_set(&s, "tokenizer", tx_tokenizer("gpt2_bytelevel")));
  CHECK_OK(re_dataset_source_set(&s, "seq_len", "8"));
  CHECK_OK(re_dataset_open_source(&s, &ds));
  CHECK(ds && re_dataset_get_info(ds)->tokens && re_dataset_get_info(ds)->count == 1);
  re_dataset_close(&ds);
  CHECK_OK(re_dataset_source_set(&s, "input_ext", "png"));
  CHECK_FAILS(re_dataset_open_source(&s, &ds), RE_EINVAL, "the text options (tokenizer, seq_len, ...) go with input_ext txt");
  s.format = NULL;
  CHECK_FAILS(re_dataset_open_source(&s, &ds), RE_EINVAL, "unknown dataset format '(none)'");
  CHECK(ds == NULL);
  fx_rmdir();
  return check_report();
}
