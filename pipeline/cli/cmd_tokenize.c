/* repeval tokenize: encode texts to token ids (or decode ids to text) with a
 * Hugging Face tokenizer.json, one output line per input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/tokenizer.h"

static const re_opts_cmd TOKENIZE = {
    "tokenize",
    "--tokenizer DIR|tokenizer.json [--no-special] [--decode] [--json] [--file F | TEXT...]\n"
    "--tokenizer DIR|tokenizer.json --info",
    "Encode each TEXT (or each line of F; '-' reads standard input) with a Hugging Face\n"
    "tokenizer and print its token ids, space-separated, one line per input. A TEXT that\n"
    "starts with '-' goes after '--'.\n",
    "Text must be UTF-8. See docs/formats.md (Tokenizers) for what is supported.\n"};

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

/* The options and the texts; RE_OPTS_RUN to go on, else the exit code. */
static int parse(int argc, char **argv, run_state *r, const char **path, const char **file, int *info, char **texts,
                 int *ntext) {
  int nospecial = 0;
  re_opt opts[] = {
      RE_OPT_STRING("tokenizer", path, "P", "a tokenizer.json, or a folder holding one (and tokenizer_config.json)"),
      RE_OPT_FLAG("no-special", &nospecial,
                  "do not add the post-processor's special tokens ([CLS], <s>, ...); with --decode: leave special "
                  "tokens out of the text"),
      RE_OPT_FLAG("decode", &r->decode, "inputs are ids (space- or comma-separated); print the decoded text"),
      RE_OPT_FLAG("json", &r->json, "print each result as JSON: an array of ids, or a string"),
      RE_OPT_STRING("file", file, "F", "one input per line of F (the newline is not part of it)"),
      RE_OPT_FLAG("info", info, "print the vocabulary size and the bos/eos/pad/unk ids (-1: unknown)"),
      RE_OPT_END};
  re_opts_pos pos = {0, argc, texts, ntext, NULL, NULL, NULL, NULL, NULL};
  int rc = re_opts_parse(&TOKENIZE, opts, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  r->special = !nospecial;
  if (!*path)
    return re_cli_usage_error("tokenize", "give --tokenizer");
  if (*file && *ntext)
    return re_cli_usage_error("tokenize", "give TEXT arguments or --file, not both");
  if (!*file && !*ntext && !*info)
    return re_cli_usage_error("tokenize", "give TEXT arguments or --file");
  return RE_OPTS_RUN;
}

int re_cmd_tokenize(int argc, char **argv) {
  const char *path = NULL, *file = NULL;
  int info = 0, ntext = 0;
  run_state r = {0};
  char **texts = NULL;
  if (re_calloc(argc > 0 ? argc : 1, sizeof(char *), &texts) != RE_OK)
    return re_cli_fail(RE_ENOMEM);
  int rc = parse(argc, argv, &r, &path, &file, &info, texts, &ntext);
  if (rc != RE_OPTS_RUN) {
    free(texts);
    return rc;
  }
  re_status st = re_tokenizer_load(path, &r.tok);
  if (st != RE_OK) {
    free(texts);
    return re_cli_fail(st);
  }
  if (info) {
    printf("vocab_size %lld\nbos %d\neos %d\npad %d\nunk %d\n", (long long)re_tokenizer_vocab_size(r.tok),
           re_tokenizer_special_id(r.tok, RE_TOKEN_BOS), re_tokenizer_special_id(r.tok, RE_TOKEN_EOS),
           re_tokenizer_special_id(r.tok, RE_TOKEN_PAD), re_tokenizer_special_id(r.tok, RE_TOKEN_UNK));
  } else if (file) {
    st = run_file(&r, file);
  } else {
    for (int k = 0; k < ntext && st == RE_OK; k++) {
      st = one(&r, texts[k], (int64_t)strlen(texts[k]));
      if (st != RE_OK)
        re_err_context(st, "input %d: ", k + 1);
    }
  }
  re_tokenizer_destroy(&r.tok);
  free(r.ids);
  free(texts);
  if (fflush(stdout) != 0 && st == RE_OK)
    st = re_err(RE_EIO, "writing the output failed");
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
