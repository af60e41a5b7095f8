/* The split patterns of GPT-2 and Llama-3 / Qwen2 cut text exactly as the
 * tokenizers library's Oniguruma does. Expected pieces are worked out by hand
 * from backtracking-regex semantics (leftmost match, alternatives in order,
 * greedy quantifiers that give back characters for (?!\S)), and the
 * Oniguruma-only constructs (\w with marks, \h, \uHHHH) and the iteration over
 * empty matches follow Oniguruma / the onig crate's find_iter. */
#include "tok_testutil.h"

static const char GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                             "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The spans of a pattern over text, written as "[match]" and "(gap)" pieces. */
static void expect_spans(const char *pattern, int literal, const char *text, const char *want, int line) {
  tok_regex *re = NULL;
  tok_spans sp = {0};
  tt_str got = {0};
  tt_cat(&got, "%s", "");
  re_status st = tok_regex_new(pattern, (int64_t)strlen(pattern), literal, "test", &re);
  if (st == RE_OK)
    st = tok_regex_spans(re, text, (int64_t)strlen(text), &sp);
  for (int64_t k = 0; st == RE_OK && k < sp.n; k++)
    tt_cat(&got, sp.v[k].match ? "[%.*s]" : "(%.*s)", (int)(sp.v[k].end - sp.v[k].start), text + sp.v[k].start);
  if (st == RE_OK && !strcmp(got.p, want)) {
    check_passed_++;
  } else {
    check_failed_++;
    fprintf(stderr, "line %d: /%s/ on \"%s\": got %s (%s), want %s\n", line, pattern, text, got.p,
            st == RE_OK ? "ok" : re_errmsg(), want);
  }
  free(got.p);
  free(sp.v);
  tok_regex_free(&re);
}

#define SPANS(p, text, want) expect_spans(p, 0, text, want, __LINE__)

static void test_gpt2(void) {
  SPANS(GPT2, "Hello world", "[Hello][ world]");
  SPANS(GPT2, "I'm fine", "[I]['m][ fine]");
  /* \s+ backs off one space so that (?!\S) holds; the last space joins the word */
  SPANS(GPT2, "  leading", "[ ][ leading]");
  SPANS(GPT2, "a   b", "[a][  ][ b]");
  /* "\n\n" then 'b': the first \n is \s+(?!\S), the second only plain \s+ */
  SPANS(GPT2, "a\n\nb", "[a][\n][\n][b]");
  SPANS(GPT2, "end  ", "[end][  ]");
  /* contractions are lowercase only in GPT-2 */
  SPANS(GPT2, "DON'T", "[DON]['][T]");
  SPANS(GPT2, "123456 x", "[123456][ x]");
  SPANS(GPT2, "x**2  # c", "[x][**][2][ ][ #][ c]");
  SPANS(GPT2, "naïve 中文 🤖!", "[naïve][ 中文][ 🤖!]");
  /* a tab is not the optional space before a word */
  SPANS(GPT2, "\t\treturn", "[\t][\t][return]");
  SPANS(GPT2, "", "()");
}

static void test_llama3(void) {
  SPANS(LLAMA3, "DON'T", "[DON]['T]");
  SPANS(LLAMA3, "I'M HE'LL", "[I]['M][ HE]['LL]");
  SPANS(LLAMA3, "1234567", "[123][456][7]");
  SPANS(LLAMA3, "hello world", "[hello][ world]");
  SPANS(LLAMA3, "  hi", "[ ][ hi]");
  /* \s*[\r\n]+ takes whitespace up to the last newline of a run */
  SPANS(LLAMA3, "x\n\ny", "[x][\n\n][y]");
  SPANS(LLAMA3, "   \n  x", "[   \n][ ][ x]");
  /* punctuation keeps the newlines after it */
  SPANS(LLAMA3, "a!!\n\nb", "[a][!!\n\n][b]");
  /* one non-letter, non-digit, non-newline character may lead a word */
  SPANS(LLAMA3, "(hello)", "[(hello][)]");
  SPANS(LLAMA3, "😀😀 hi", "[😀😀][ hi]");
  SPANS(LLAMA3, "x\t\ty", "[x][\t][\ty]");
  /* case-insensitive contractions include the long s (U+017F), as in Oniguruma */
  SPANS(LLAMA3, "it'ſ", "[it]['ſ]");
  SPANS(LLAMA3, "中文字符", "[中文字符]");
}

static void test_oniguruma_constructs(void) {
  /* \w includes combining marks (U+0308) and connector punctuation (U+203F) */
  SPANS("\\w+", "nai\xcc\x88ve x\xe2\x80\xbfy", "[nai\xcc\x88ve]( )[x\xe2\x80\xbfy]");
  /* and every number, superscript two (No) too */
  SPANS("\\w+", "x\xc2\xb2", "[x\xc2\xb2]");
  SPANS("[\\w]+", "e\xcc\x81!", "[e\xcc\x81](!)");
  SPANS("\\W+", "a, b", "(a)[, ](b)");
  /* \h is a hex digit, \uHHHH a code point */
  SPANS("\\h+", "xyz0fa9g", "(xyz)[0fa9](g)");
  SPANS("\\u0041+", "bAAc", "(b)[AA](c)");
  /* Ruby's (?m) lets the dot match a newline */
  SPANS("(?m)a.b", "a\nb", "[a\nb]");
  SPANS("a.b", "a\nb", "(a\nb)");
  /* \s is White_Space: NEL and NBSP included */
  SPANS("\\s", "a\xc2\x85" "b\xc2\xa0" "c", "(a)[\xc2\x85](b)[\xc2\xa0](c)");
  /* BLOOM's split pattern nests a class in a negated class: a union in Oniguruma */
  SPANS(" ?[^(\\s|[.,!?\xe2\x80\xa6\xe3\x80\x82])]+", "Hello, world! \xe4\xbd\xa0\xe5\xa5\xbd\xe3\x80\x82test(x)",
        "[Hello](,)[ world](!)[ \xe4\xbd\xa0\xe5\xa5\xbd](\xe3\x80\x82)[test](()[x]())");
  SPANS("[a[bc]]+", "xabcax", "(x)[abca](x)");
  SPANS("[^a[bc]]+", "xabcax", "[x](abca)[x]");
  /* a literal pattern matches its characters only */
  expect_spans(".*", 1, "a.*b", "(a)[.*](b)", __LINE__);
}

static void test_empty_matches(void) {
  /* x* matches empty at 0, then "x", then empty at 3; never an empty match
   * right after the previous match's end */
  SPANS("x*", "axb", "[](a)[x](b)[]");
  SPANS("", "ab", "[](a)[](b)[]");
}

int main(void) {
  test_gpt2();
  test_llama3();
  test_oniguruma_constructs();
  test_empty_matches();
  return check_report();
}
