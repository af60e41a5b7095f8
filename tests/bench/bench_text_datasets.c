/* Text dataset throughput: a JSON Lines corpus built from the given text files
 * (one paragraph per line, repeated to about MB megabytes) read through a
 * tokenizer in truncate and pack mode, next to the tokenizer alone on the same
 * paragraphs. Prints MB/s of corpus bytes (open, then every sample in order in
 * batches of 64).
 *   bench_text_datasets TOKENIZER MB SEQ_LEN TEXT_FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repeval/dataset.h"
#include "repeval/tokenizer.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Paragraphs of the files (blank-line separated, lines joined by spaces), as JSON strings. */
static char *load_paragraphs(char **files, int n, size_t *len) {
  size_t cap = 1 << 20, used = 0;
  char *out = malloc(cap);
  for (int f = 0; f < n; f++) {
    FILE *fp = fopen(files[f], "rb");
    if (!fp)
      continue;
    char line[8192];
    int open = 0;
    while (fgets(line, sizeof line, fp)) {
      size_t l = strlen(line);
      while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
        line[--l] = '\0';
      if (used + 2 * l + 64 > cap)
        out = realloc(out, cap *= 2);
      if (!l) {
        if (open)
          used += (size_t)sprintf(out + used, "\"}\n");
        open = 0;
        continue;
      }
      if (!open)
        used += (size_t)sprintf(out + used, "{\"text\": \"");
      else
        out[used++] = ' ';
      open = 1;
      for (size_t k = 0; k < l; k++) {
        unsigned char c = (unsigned char)line[k];
        if (c == '"' || c == '\\')
          out[used++] = '\\', out[used++] = (char)c;
        else if (c == '\t')
          out[used++] = ' ';
        else if (c >= 0x20)
          out[used++] = (char)c;
      }
    }
    if (open)
      used += (size_t)sprintf(out + used, "\"}\n");
    fclose(fp);
  }
  *len = used;
  return out;
}

static int run(const char *path, double mb, const re_text_options *o, const char *what) {
  re_dataset *ds = NULL;
  const char *files[1] = {path};
  double t0 = now();
  if (re_dataset_open_jsonl(files, 1, "text", NULL, o, &ds) != RE_OK) {
    fprintf(stderr, "%s: %s\n", what, re_errmsg());
    return 1;
  }
  double t1 = now();
  const re_dataset_info *in = re_dataset_get_info(ds);
  int64_t T = in->seq_len, B = 64;
  int64_t *ids = malloc(sizeof *ids * (size_t)(B * T));
  uint8_t *mask = malloc((size_t)(B * T));
  for (int64_t i = 0; i < in->count; i += B)
    if (re_dataset_read_tokens(ds, i, i + B < in->count ? i + B : in->count, ids, mask, NULL) != RE_OK) {
      fprintf(stderr, "%s: %s\n", what, re_errmsg());
      return 1;
    }
  double t2 = now();
  printf("%-10s %8lld samples  open %6.2f s (%6.1f MB/s)  read %6.2f s (%6.1f MB/s)  open + read %6.1f MB/s\n", what,
         (long long)in->count, t1 - t0, mb / (t1 - t0), t2 - t1, mb / (t2 - t1), mb / (t2 - t0));
  free(ids);
  free(mask);
  re_dataset_close(&ds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: bench_text_datasets TOKENIZER MB SEQ_LEN TEXT_FILE...\n");
    return 2;
  }
  double want = atof(argv[2]);
  int64_t T = atoll(argv[3]);
  size_t plen;
  char *para = load_paragraphs(argv + 4, argc - 4, &plen);
  if (!plen)
    return fprintf(stderr, "no text\n"), 2;
  char path[512];
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/bench_text_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
  if (!f)
    return fprintf(stderr, "cannot write %s\n", path), 1;
  size_t total = 0;
  while ((double)total < want * 1e6) {
    fwrite(para, 1, plen, f);
    total += plen;
  }
  fclose(f);
  double mb = (double)total / 1e6;
  printf("corpus: %.1f MB of JSON Lines, seq_len %lld\n", mb, (long long)T);
  /* the tokenizer alone on the same paragraphs (once) */
  re_tokenizer *tok = NULL;
  if (re_tokenizer_load(argv[1], &tok) != RE_OK)
    return fprintf(stderr, "%s\n", re_errmsg()), 1;
  int32_t *ids = NULL;
  int64_t n, cap = 0;
  double t0 = now();
  for (char *p = para; p < para + plen;) {
    char *e = memchr(p, '\n', (size_t)(para + plen - p));
    re_tokenizer_encode(tok, p + 10, e - p - 12, 0, &ids, &n, &cap); /* the string's bytes, escapes and all */
    p = e + 1;
  }
  double t1 = now();
  printf("tokenizer alone on the text: %.1f MB/s\n", (double)plen / 1e6 / (t1 - t0));
  free(ids);
  re_tokenizer_destroy(&tok);
  re_text_options o;
  memset(&o, 0, sizeof o);
  o.tokenizer = argv[1];
  o.seq_len = T;
  int rc = run(path, mb, &o, "truncate");
  o.mode = RE_SEQ_PACK;
  o.eos_token = "<|endoftext|>";
  rc |= run(path, mb, &o, "pack");
  remove(path);
  free(para);
  return rc;
}
