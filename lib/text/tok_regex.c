/* Regular expressions of tokenizer.json files with PCRE2 (8-bit, UTF + UCP, JIT).
 *
 * The tokenizers library compiles them with Oniguruma (Ruby syntax), so the few
 * places where the two differ are rewritten before compiling:
 *   \w, \W   Oniguruma: Letter | Mark | Number | Connector_Punctuation; PCRE2 10.42
 *            with UCP: L, N and '_' only (no marks), so the class is spelled out;
 *   \h, \H   Oniguruma: a hex digit; PCRE2: horizontal space;
 *   \uHHHH   Oniguruma only; becomes \x{HHHH};
 *   (?m)     Ruby: dot matches newline, which is PCRE2's (?s);
 *   [a[bc]]  a class nested in a class is a union in Oniguruma (BLOOM's pattern has
 *            one); PCRE2 cannot nest, so it is flattened to [abc];
 *   ^ and $  always line anchors in Ruby syntax: PCRE2_MULTILINE.
 * \s, \d and \p{..} mean the same in both (White_Space; Nd; general categories
 * and scripts). Matches are iterated as the library's find_iter does. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

struct tok_regex {
  pcre2_code *code;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jstack;
  int jit;
};

#define WORD_ITEMS "\\p{L}\\p{M}\\p{N}\\p{Pc}"
#define HEX_ITEMS "0-9a-fA-F"

static int hexv(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Rewrite the Oniguruma-only constructs listed above. */
static re_status translate(const char *p, int64_t n, tok_buf *o) {
  int in_class = 0;
  char nested[32] = {0}; /* per nesting depth: was that nested class flattened */
  for (int64_t i = 0; i < n;) {
    char c = p[i];
    if (c == '\\' && i + 1 < n) {
      char e = p[i + 1];
      const char *rep = NULL;
      switch (e) {
      case 'w': rep = in_class ? WORD_ITEMS : "[" WORD_ITEMS "]"; break;
      case 'W': rep = in_class ? NULL : "[^" WORD_ITEMS "]"; break;
      case 'h': rep = in_class ? HEX_ITEMS : "[" HEX_ITEMS "]"; break;
      case 'H': rep = in_class ? NULL : "[^" HEX_ITEMS "]"; break;
      default: break;
      }
      if (rep) {
        RE_TRY(tok_buf_add(o, rep, (int64_t)strlen(rep)));
        i += 2;
        continue;
      }
      if (e == 'u' && i + 5 < n && hexv(p[i + 2]) >= 0 && hexv(p[i + 3]) >= 0 && hexv(p[i + 4]) >= 0 &&
          hexv(p[i + 5]) >= 0) {
        RE_TRY(tok_buf_add(o, "\\x{", 3));
        RE_TRY(tok_buf_add(o, p + i + 2, 4));
        RE_TRY(tok_buf_add(o, "}", 1));
        i += 6;
        continue;
      }
      int l = tok_utf8_seqlen((unsigned char)e);
      if (i + 1 + l > n)
        l = (int)(n - i - 1);
      RE_TRY(tok_buf_add(o, p + i, 1 + l));
      i += 1 + l;
      continue;
    }
    if (in_class) {
      if (c == '[' && i + 1 < n && p[i + 1] == ':') { /* POSIX bracket [:alpha:] */
        const char *end = memchr(p + i + 2, ']', (size_t)(n - i - 2));
        int64_t stop = end ? (end - p) + 1 : n;
        RE_TRY(tok_buf_add(o, p + i, stop - i));
        i = stop;
        continue;
      }
      if (c == '[') {
        /* a nested class: Oniguruma takes [a[bc]] as the union [abc], which PCRE2
         * cannot nest; a plain nested class is flattened, a negated one kept */
        int flat = !(i + 1 < n && p[i + 1] == '^');
        if (in_class < (int)sizeof nested)
          nested[in_class] = (char)flat;
        in_class++;
        if (!flat)
          RE_TRY(tok_buf_add(o, &c, 1));
        i++;
        continue;
      }
      if (c == ']') {
        in_class--;
        if (!(in_class > 0 && in_class < (int)sizeof nested && nested[in_class]))
          RE_TRY(tok_buf_add(o, &c, 1));
        i++;
        continue;
      }
      RE_TRY(tok_buf_add(o, &c, 1));
      i++;
      continue;
    }
    if (c == '[') {
      in_class = 1;
      RE_TRY(tok_buf_add(o, &c, 1));
      i++;
      /* a ']' right after '[' or '[^' is a literal */
      if (i < n && p[i] == '^') {
        RE_TRY(tok_buf_add(o, "^", 1));
        i++;
      }
      if (i < n && p[i] == ']') {
        RE_TRY(tok_buf_add(o, "\\]", 2));
        i++;
      }
      continue;
    }
    if (c == '(' && i + 1 < n && p[i + 1] == '?') {
      /* inline options (?imx-imx) or (?imx-imx:...): Ruby's m is PCRE2's s */
      int64_t k = i + 2;
      while (k < n && (p[k] == 'i' || p[k] == 'm' || p[k] == 'x' || p[k] == '-'))
        k++;
      if (k > i + 2 && k < n && (p[k] == ')' || p[k] == ':')) {
        RE_TRY(tok_buf_add(o, "(?", 2));
        for (int64_t q = i + 2; q < k; q++) {
          char oc = p[q] == 'm' ? 's' : p[q];
          RE_TRY(tok_buf_add(o, &oc, 1));
        }
        i = k;
        continue;
      }
    }
    int l = tok_utf8_seqlen((unsigned char)c);
    if (i + l > n)
      l = (int)(n - i);
    RE_TRY(tok_buf_add(o, p + i, l));
    i += l;
  }
  return RE_OK;
}

re_status tok_regex_new(const char *pattern, int64_t len, int literal, const char *where, tok_regex **out) {
  *out = NULL;
  tok_buf pat = {0};
  re_status st = RE_OK;
  tok_regex *re = NULL;
  if (tok_utf8_check(pattern, len) >= 0)
    return re_err(RE_EFORMAT, "%s: the pattern is not valid UTF-8", where);
  if (literal)
    st = tok_buf_add(&pat, pattern, len);
  else
    st = translate(pattern, len, &pat);
  if (st == RE_OK)
    st = tok_buf_add(&pat, "", 0);
  if (st != RE_OK)
    goto done;
  RE_CHECK(re_calloc(1, sizeof *re, &re));
  int errcode;
  PCRE2_SIZE erroff;
  uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
  re->code = pcre2_compile((PCRE2_SPTR)pat.p, (PCRE2_SIZE)pat.n, opts, &errcode, &erroff, NULL);
  if (!re->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof msg);
    st = re_err(RE_EUNSUPPORTED, "%s: cannot compile the regex \"%.*s\" (as PCRE2 \"%s\", at %lu): %s", where,
                (int)(len > 200 ? 200 : len), pattern, pat.p, (unsigned long)erroff, (const char *)msg);
    goto done;
  }
  re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
  re->mctx = pcre2_match_context_create(NULL);
  if (!re->md || !re->mctx) {
    st = re_err(RE_ENOMEM, "%s: cannot allocate regex match data", where);
    goto done;
  }
  re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
  if (re->jit) {
    re->jstack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (re->jstack)
      pcre2_jit_stack_assign(re->mctx, NULL, re->jstack);
  }
  *out = re;
  re = NULL;
done:
  tok_buf_free(&pat);
  tok_regex_free(&re);
  return st;
}

void tok_regex_free(tok_regex **pre) {
  tok_regex *re = *pre;
  if (!re)
    return;
  pcre2_match_data_free(re->md);
  pcre2_match_context_free(re->mctx);
  if (re->jstack)
    pcre2_jit_stack_free(re->jstack);
  pcre2_code_free(re->code);
  free(re);
  *pre = NULL;
}

/* Leftmost match at or after `start`: 1 (found, *ms / *me set), 0 (none), or an error. */
static re_status match_at(tok_regex *re, const char *s, int64_t n, int64_t start, int64_t *ms, int64_t *me,
                          int *found) {
  int rc = pcre2_match(re->code, (PCRE2_SPTR)s, (PCRE2_SIZE)n, (PCRE2_SIZE)start, PCRE2_NO_UTF_CHECK, re->md,
                       re->mctx);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* fall back to the interpreter, which uses the heap */
    rc = pcre2_match(re->code, (PCRE2_SPTR)s, (PCRE2_SIZE)n, (PCRE2_SIZE)start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                     re->md, re->mctx);
  if (rc == PCRE2_ERROR_NOMATCH) {
    *found = 0;
    return RE_OK;
  }
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return re_err(RE_EDATA, "regex match failed at byte %lld of a %lld-byte piece: %s", (long long)start,
                  (long long)n, (const char *)msg);
  }
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
  *ms = (int64_t)ov[0];
  *me = (int64_t)ov[1];
  *found = 1;
  return RE_OK;
}

re_status tok_regex_spans(tok_regex *re, const char *s, int64_t n, tok_spans *out) {
  out->n = 0;
  if (n == 0)
    return tok_spans_push(out, 0, 0, 0);
  int64_t prev = 0, last_end = 0, last_match_end = -1;
  while (last_end <= n) {
    int64_t ms, me;
    int found;
    RE_TRY(match_at(re, s, n, last_end, &ms, &me, &found));
    if (!found)
      break;
    if (ms == me && last_match_end == me) {
      /* no empty match right after the previous match: step one character */
      if (last_end >= n)
        break;
      last_end += tok_utf8_seqlen((unsigned char)s[last_end]);
      continue;
    }
    last_end = me;
    last_match_end = me;
    if (prev != ms)
      RE_TRY(tok_spans_push(out, prev, ms, 0));
    RE_TRY(tok_spans_push(out, ms, me, 1));
    prev = me;
  }
  if (prev != n)
    RE_TRY(tok_spans_push(out, prev, n, 0));
  return RE_OK;
}
