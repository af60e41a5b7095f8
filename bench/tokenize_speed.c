/* Tokenizer throughput: encode every line of the given text files, repeated
 * until at least --mb megabytes, with one tokenizer on one core.
 *
 *   bench_tokenize_speed TOKENIZER [--mb N] [--ids-out F] FILE...
 *
 * Prints the text size, tokens, and MB/s for the first pass over the text (every
 * word new to the BPE cache) and for the whole run. --ids-out writes the ids of
 * the first pass, one line per input line, for comparison with a reference
 * (bench/tokenize_speed.py does both). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repeval/tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(char **files, int n, long *len) {
  char *buf = NULL;
  long cap = 0, used = 0;
  for (int i = 0; i < n; i++) {
    FILE *f = fopen(files[i], "rb");
    if (!f) {
      fprintf(stderr, "cannot open %s\n", files[i]);
      exit(1);
    }
    char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
      if (used + (long)got + 2 > cap) {
        cap = 2 * (used + (long)got + 2);
        buf = realloc(buf, (size_t)cap);
        if (!buf)
          exit(1);
      }
      memcpy(buf + used, chunk, got);
      used += (long)got;
    }
    fclose(f);
    if (used > 0 && buf[used - 1] != '\n')
      buf[used++] = '\n';
  }
  *len = used;
  return buf;
}

int main(int argc, char **argv) {
  const char *tok_path = NULL, *ids_out = NULL;
  double mb = 4;
  char **files = calloc((size_t)argc, sizeof *files);
  int nf = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mb") && i + 1 < argc)
      mb = atof(argv[++i]);
    else if (!strcmp(argv[i], "--ids-out") && i + 1 < argc)
      ids_out = argv[++i];
    else if (!tok_path)
      tok_path = argv[i];
    else
      files[nf++] = argv[i];
  }
  if (!tok_path || nf == 0) {
    fprintf(stderr, "usage: bench_tokenize_speed TOKENIZER [--mb N] [--ids-out F] FILE...\n");
    return 2;
  }
  re_tokenizer *tok = NULL;
  double t0 = now();
  if (re_tokenizer_load(tok_path, &tok) != RE_OK) {
    fprintf(stderr, "error: %s\n", re_errmsg());
    return 1;
  }
  double t_load = now() - t0;
  long len;
  char *text = read_all(files, nf, &len);
  FILE *out = ids_out ? fopen(ids_out, "w") : NULL;
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0, tokens = 0, tokens_first = 0;
  double bytes = 0, bytes_first = 0, t_first = 0;
  t0 = now();
  for (int pass = 0; pass == 0 || bytes < mb * 1e6; pass++) {
    for (long a = 0; a < len;) {
      const char *nl = memchr(text + a, '\n', (size_t)(len - a));
      long b = nl ? nl - text : len;
      if (re_tokenizer_encode(tok, text + a, b - a, 0, &ids, &n, &cap) != RE_OK) {
        fprintf(stderr, "error: %s\n", re_errmsg());
        return 1;
      }
      tokens += n;
      bytes += (double)(b - a + 1);
      if (pass == 0 && out) {
        for (int64_t k = 0; k < n; k++)
          fprintf(out, k ? " %d" : "%d", ids[k]);
        fputc('\n', out);
      }
      a = b + 1;
    }
    if (pass == 0) {
      t_first = now() - t0;
      bytes_first = bytes;
      tokens_first = tokens;
    }
  }
  double t_all = now() - t0;
  if (out)
    fclose(out);
  printf("tokenizer %s: loaded in %.3f s, vocabulary %lld\n", tok_path, t_load,
         (long long)re_tokenizer_vocab_size(tok));
  printf("first pass: %.3f MB, %lld tokens, %.3f s, %.2f MB/s\n", bytes_first / 1e6, (long long)tokens_first, t_first,
         bytes_first / 1e6 / t_first);
  printf("all passes: %.3f MB, %lld tokens, %.3f s, %.2f MB/s\n", bytes / 1e6, (long long)tokens, t_all,
         bytes / 1e6 / t_all);
  free(ids);
  free(text);
  free(files);
  re_tokenizer_destroy(&tok);
  return 0;
}
