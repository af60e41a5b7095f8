/* Samples are defined by their global index: for every token and text format and
 * both sequencing modes, any range [i, j) read in any order (backwards, single
 * samples, random ranges, a fresh dataset per range as a resumed run has) gives
 * exactly the ids, mask and labels of one sequential pass in batches. */
#include "check.h"
#include "text_fixtures.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static int64_t next_rand(int64_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (int64_t)(rng % (uint64_t)n);
}

/* Opens the dataset again for each check (nfresh > 0) or reuses one. */
typedef re_status (*opener)(re_dataset **out);

static const char *corpus[4];
static re_text_options opts;

static re_status open_jsonl(re_dataset **out) { return re_dataset_open_jsonl(corpus, 2, "text", NULL, &opts, out); }
static re_status open_jsonl_labels(re_dataset **out) {
  return re_dataset_open_jsonl(corpus, 2, "text", "label", &opts, out);
}
static re_status open_text(re_dataset **out) { return re_dataset_open_text(corpus + 2, 1, NULL, "%", NULL, &opts, out); }
static re_status open_wds(re_dataset **out) { return re_dataset_open_wds_text(corpus + 3, 1, "cls", &opts, out); }
static const char *tok_files[3];
static re_status open_tokens(re_dataset **out) { return re_dataset_open_tokens(tok_files[0], tok_files[1], tok_files[2], 0, out); }
static re_status open_stream(re_dataset **out) { return re_dataset_open_token_stream(tok_files, 1, NULL, 7, 0, out); }

static void check_format(const char *what, opener op) {
  re_dataset *d = NULL;
  re_status st = op(&d);
  CHECK_OK(st);
  if (st != RE_OK) {
    fprintf(stderr, "  (%s)\n", what);
    return;
  }
  const re_dataset_info *in = re_dataset_get_info(d);
  int64_t n = in->count, T = in->seq_len;
  int64_t *ids, *ids2 = calloc((size_t)(n * T), sizeof *ids2);
  uint8_t *mask, *mask2 = calloc((size_t)(n * T), 1);
  int32_t *y, *y2 = calloc((size_t)n, sizeof *y2);
  CHECK_OK(tx_read_all(d, 3, &ids, &mask, &y));
  CHECK(n >= 5);
  /* every row has a token; padding ids are masked */
  int empty = 0;
  for (int64_t r = 0; r < n; r++) {
    int any = 0;
    for (int64_t t = 0; t < T; t++)
      any |= mask[r * T + t];
    empty += !any;
  }
  CHECK(empty == 0);
  /* backwards, one sample at a time */
  int bad = 0;
  for (int64_t i = n - 1; i >= 0; i--) {
    CHECK_OK(re_dataset_read_tokens(d, i, i + 1, ids2 + i * T, mask2 + i * T, y2 + i));
  }
  bad += memcmp(ids, ids2, sizeof *ids * (size_t)(n * T)) != 0;
  bad += memcmp(mask, mask2, (size_t)(n * T)) != 0;
  bad += memcmp(y, y2, sizeof *y * (size_t)n) != 0;
  /* random ranges, on the same dataset and on fresh ones */
  for (int r = 0; r < 40; r++) {
    int64_t i = next_rand(n), j = i + 1 + next_rand(n - i);
    re_dataset *use = d, *fresh = NULL;
    if (r % 4 == 3) {
      CHECK_OK(op(&fresh));
      use = fresh;
    }
    memset(ids2, 0xAB, sizeof *ids2 * (size_t)(n * T));
    CHECK_OK(re_dataset_read_tokens(use, i, j, ids2, mask2, y2));
    bad += memcmp(ids + i * T, ids2, sizeof *ids * (size_t)((j - i) * T)) != 0;
    bad += memcmp(mask + i * T, mask2, (size_t)((j - i) * T)) != 0;
    bad += memcmp(y + i, y2, sizeof *y * (size_t)(j - i)) != 0;
    re_dataset_close(&fresh);
  }
  CHECK(bad == 0);
  if (bad)
    fprintf(stderr, "  %s: %d mismatching reads\n", what, bad);
  free(ids), free(mask), free(y), free(ids2), free(mask2), free(y2);
  re_dataset_close(&d);
}

int main(void) {
  fx_mkdir();
  /* a corpus of documents of varied lengths, some longer than seq_len */
  static const char *words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dogs", "caf\xc3\xa9",
                                "\xe4\xb8\xad\xe6\x96\x87", "1234", "don't", "\\\"quoted\\\""};
  fx_buf j1 = {0}, j2 = {0}, txt = {0}, tar = {0};
  for (int d = 0; d < 23; d++) {
    char doc[512] = "";
    int nw = 1 + (d * 7) % 19;
    for (int w = 0; w < nw; w++) {
      strcat(doc, words[(d + 3 * w) % 13]);
      strcat(doc, w + 1 < nw ? " " : "");
    }
    char line[700];
    snprintf(line, sizeof line, "{\"text\": \"%s\", \"label\": %d}\n", doc, d % 4);
    fx_put(d < 12 ? &j1 : &j2, line, strlen(line));
    if (d % 5 == 2)
      fx_put(&j1, "\n", 1); /* blank lines */
    /* the text and tar copies hold the unescaped words */
    char plain[512] = "";
    for (int w = 0; w < nw; w++) {
      const char *wd = words[(d + 3 * w) % 13];
      strcat(plain, wd[0] == '\\' ? "\"quoted\"" : wd);
      strcat(plain, w + 1 < nw ? (w % 4 == 3 ? "\n" : " ") : "");
    }
    fx_put(&txt, plain, strlen(plain));
    fx_put(&txt, "\n%\n", 3);
    char key[32], cls[8];
    snprintf(key, sizeof key, "s%02d.txt", d);
    fx_tar_text(&tar, key, plain);
    snprintf(key, sizeof key, "s%02d.cls", d);
    snprintf(cls, sizeof cls, "%d", d % 3);
    fx_tar_text(&tar, key, cls);
  }
  fx_tar_end(&tar);
  corpus[0] = fx_write("a.jsonl", j1.p, j1.n);
  corpus[1] = fx_write("b.jsonl", j2.p, j2.n);
  corpus[2] = fx_write("fortunes", txt.p, txt.n);
  corpus[3] = fx_write("t.tar", tar.p, tar.n);
  free(j1.p), free(j2.p), free(txt.p), free(tar.p);

  static const char *toks[] = {"gpt2_bytelevel", "bert_cased", "llama2_metaspace", "llama3_bytelevel"};
  for (int t = 0; t < 4; t++) {
    for (int mode = 0; mode < 3; mode++) {
      opts = tx_opts(toks[t], 6);
      opts.mode = mode == 2 ? RE_SEQ_PACK : RE_SEQ_TRUNCATE;
      opts.pad_left = mode == 1;
      if (t == 0)
        opts.eos_token = "<|endoftext|>";
      if (t == 2) {
        opts.add_bos = 1; /* already there: nothing changes */
        opts.eos_token = "</s>";
      }
      if (t == 3) {
        opts.eos_token = "<|end_of_text|>";
        opts.no_special = mode == 2;
      }
      char what[128];
      snprintf(what, sizeof what, "%s mode %d", toks[t], mode);
      check_format(what, open_jsonl);
      check_format(what, open_text);
      if (mode != 2) {
        check_format(what, open_jsonl_labels);
        check_format(what, open_wds);
      }
    }
  }

  /* token files */
  int64_t sh[2] = {11, 5}, sh1[1] = {11}, sh55[1] = {55};
  int64_t ids[55];
  uint8_t mask[55];
  int32_t lab[11];
  for (int k = 0; k < 55; k++) {
    ids[k] = (k * 37) % 101;
    int r = k / 5, c = k % 5;
    mask[k] = r % 2 ? c >= r % 5 : c < 5 - r % 5 || c == 0;
  }
  for (int k = 0; k < 11; k++)
    lab[k] = k % 3;
  tok_files[0] = tx_npy("ids.npy", RE_DTYPE_I64, 2, sh, ids);
  tok_files[1] = tx_npy("mask.npy", RE_DTYPE_U8, 2, sh, mask);
  tok_files[2] = tx_npy("labels.npy", RE_DTYPE_I32, 1, sh1, lab);
  check_format("tokens", open_tokens);
  tok_files[0] = tx_npy("stream.npy", RE_DTYPE_I64, 1, sh55, ids);
  check_format("token-stream", open_stream);
  fx_rmdir();
  return check_report();
}
