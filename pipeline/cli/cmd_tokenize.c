/* repeval tokenize: encode texts to token ids (or decode ids to text) with a
 * Hugging Face tokenizer.json, one output line per input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "repeval/tokenizer.h"

static void help(void) {
  printf("usage: repeval tokenize --tokenizer DIR|tokenizer.json [--no-special] [--decode] [--json]\n"
         "                        [--file F | TEXT...]\n"
         "       repeval tokenize --tokenizer DIR|tokenizer.json --info\n"
         "\n"
         "Encode each TEXT (or each line of F; '-' reads standard input) with a Hugging Face\n"
         "tokenizer and print its token ids, space-separated, one line per input.\n"
         "\n"
         "  --tokenizer P   a tokenizer.json, or a folder holding one (and tokenizer_config.json)\n"
         "  --no-special    do not add the post-processor's special tokens ([CLS], <s>, ...);\n"
         "                  with --decode: leave special tokens out of the text\n"
         "  --decode        inputs are ids (space- or comma-separated); print the decoded text\n"
         "  --json          print each result as JSON: an array of ids, or a string\n"
         "  --file F        one input per line of F (the newline is not part of it)\n"
         "  --info          print the vocabulary size and the bos/eos/pad/unk ids (-1: unknown)\n"
         "\n"
         "Text must be UTF-8. See docs/formats.md (Tokenizers) for what is supported.\n");
}

static void print_json_string(const char *s, int64_t n) {
  putchar('"');
  for (int64_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c == '\n')
      fputs("\\n", stdout);
    else if (c == '\t')
      fputs("\\t", stdout);
    else if (c == '\r')
      fputs("\\r", stdout);
    else if (c < 0x20 || c == 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

typedef struct run_state {
  re_tokenizer *tok;
  int special, decode, json;
  int32_t *ids;
  int64_t cap;
} run_state;

/* Ids from "1 2 3", "1,2,3" or "[1, 2, 3]". */
static re_status parse_ids(const char *s, int64_t len, run_state *r, int64_t *n) {
  *n = 0;
  int64_t i = 0;
  while (i < len) {
    char c = s[i];
    if (c == ' ' || c == ',' || c == '\t' || c == '[' || c == ']' || c == '\r') {
      i++;
      continue;
    }
    if (c < '0' || c > '9')
      return re_err(RE_EINVAL, "decode input: '%c' at byte %lld is not part of an id", c, (long long)i);
    int64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i] - '0');
      if (v > INT32_MAX)
        return re_err(RE_EINVAL, "decode input: id at byte %lld is too large", (long long)i);
      i++;
    }
    if (*n == r->cap) {
      int64_t cap = r->cap ? 2 * r->cap : 64;
      RE_TRY(re_realloc(&r->ids, cap, sizeof *r->ids));
      r->cap = cap;
    }
    r->ids[(*n)++] = (int32_t)v;
  }
  return RE_OK;
}

static re_status one(run_state *r, const char *s, int64_t len) {
  int64_t n = 0;
  if (r->decode) {
    RE_TRY(parse_ids(s, len, r, &n));
    char *text;
    int64_t tl;
    RE_TRY(re_tokenizer_decode(r->tok, r->ids, n, !r->special, &text, &tl));
    if (r->json)
      print_json_string(text, tl);
    else
      fwrite(text, 1, (size_t)tl, stdout);
    putchar('\n');
    free(text);
    return RE_OK;
  }
  RE_TRY(re_tokenizer_encode(r->tok, s, len, r->special, &r->ids, &n, &r->cap));
  if (r->json)
    putchar('[');
  for (int64_t i = 0; i < n; i++)
    printf(i ? (r->json ? ", %d" : " %d") : "%d", r->ids[i]);
  if (r->json)
    putchar(']');
  putchar('\n');
  return RE_OK;
}

static re_status run_file(run_state *r, const char *path) {
  FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
  if (!f)
    return re_err(RE_EIO, "cannot open %s: %s", path, strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  re_status st = RE_OK;
  int64_t lineno = 0;
  while (st == RE_OK && (got = getline(&line, &cap, f)) >= 0) {
    lineno++;
    if (got > 0 && line[got - 1] == '\n')
      got--;
    st = one(r, line, (int64_t)got);
    if (st != RE_OK)
      re_err_context(st, "%s, line %lld: ", path, (long long)lineno);
  }
  if (st == RE_OK && ferror(f))
    st = re_err(RE_EIO, "reading %s failed", path);
  free(line);
  if (f != stdin)
    fclose(f);
  return st;
}

int re_cmd_tokenize(int argc, char **argv) {
  const char *path = NULL, *file = NULL, *v;
  int missing = 0, info = 0, ntext = 0;
  run_state r = {0};
  r.special = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      help();
      return RE_EXIT_OK;
    } else if (!strcmp(argv[i], "--no-special")) {
      r.special = 0;
    } else if (!strcmp(argv[i], "--decode")) {
      r.decode = 1;
    } else if (!strcmp(argv[i], "--json")) {
      r.json = 1;
    } else if (!strcmp(argv[i], "--info")) {
      info = 1;
    } else if ((v = re_cli_opt(argc, argv, &i, "--tokenizer", &missing)) || missing) {
      if (missing)
        return re_cli_usage_error("tokenize", "--tokenizer needs a value");
      path = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--file", &missing)) || missing) {
      if (missing)
        return re_cli_usage_error("tokenize", "--file needs a value");
      file = v;
    } else if (!strcmp(argv[i], "--")) {
      ntext += argc - i - 1;
      break;
    } else if (argv[i][0] == '-' && argv[i][1] == '-') {
      return re_cli_usage_error("tokenize", "unknown option '%s'", argv[i]);
    } else {
      ntext++;
    }
  }
  if (!path)
    return re_cli_usage_error("tokenize", "give --tokenizer");
  if (file && ntext)
    return re_cli_usage_error("tokenize", "give TEXT arguments or --file, not both");
  if (!file && !ntext && !info)
    return re_cli_usage_error("tokenize", "give TEXT arguments or --file");
  re_status st = re_tokenizer_load(path, &r.tok);
  if (st != RE_OK)
    return re_cli_fail(st);
  if (info) {
    printf("vocab_size %lld\nbos %d\neos %d\npad %d\nunk %d\n", (long long)re_tokenizer_vocab_size(r.tok),
           re_tokenizer_special_id(r.tok, RE_TOKEN_BOS), re_tokenizer_special_id(r.tok, RE_TOKEN_EOS),
           re_tokenizer_special_id(r.tok, RE_TOKEN_PAD), re_tokenizer_special_id(r.tok, RE_TOKEN_UNK));
  } else if (file) {
    st = run_file(&r, file);
  } else {
    /* the texts: every argument that is not an option or an option's value */
    int rest = 0, k = 0;
    for (int i = 1; i < argc && st == RE_OK; i++) {
      const char *a = argv[i];
      if (!rest && !strcmp(a, "--")) {
        rest = 1;
        continue;
      }
      if (!rest && (!strcmp(a, "--tokenizer") || !strcmp(a, "--file"))) {
        i++;
        continue;
      }
      if (!rest && a[0] == '-' && a[1] == '-')
        continue;
      st = one(&r, a, (int64_t)strlen(a));
      if (st != RE_OK)
        re_err_context(st, "input %d: ", k + 1);
      k++;
    }
  }
  re_tokenizer_destroy(&r.tok);
  free(r.ids);
  if (fflush(stdout) != 0 && st == RE_OK)
    st = re_err(RE_EIO, "writing the output failed");
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
