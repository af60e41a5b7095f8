/* A tokenizer.json the size of Llama-3's (about 300k merges, 10 MB of JSON)
 * loads within the parser's limits and encodes with the right merges. The
 * vocabulary is every lowercase string of 1 to 4 letters (475,254 tokens), the
 * merges build each string of 2 to 4 letters from its prefix and last letter,
 * shorter strings first; the first 300,000 are kept. Every pair of letters
 * merges before any longer token, so "abc" becomes ab c then abc, but "abcd"
 * becomes ab c d, then ab cd (cd ranks before abc), and no merge joins two
 * pairs; "zzzz" likewise ends as zz zz. */
#include <time.h>

#include "tok_testutil.h"

static void word(int64_t k, int len, char *out) {
  for (int i = len - 1; i >= 0; i--) {
    out[i] = (char)('a' + k % 26);
    k /= 26;
  }
  out[len] = '\0';
}

int main(void) {
  tt_str s = {0};
  tt_cat(&s, "{\"version\": \"1.0\", \"pre_tokenizer\": {\"type\": \"WhitespaceSplit\"}, \"model\": {\"type\": \"BPE\","
             " \"vocab\": {");
  int64_t id = 0, count[5] = {0, 26, 676, 17576, 456976};
  char w[8];
  for (int len = 1; len <= 4; len++)
    for (int64_t k = 0; k < count[len]; k++) {
      word(k, len, w);
      tt_cat(&s, "%s\"%s\": %lld", id ? ", " : "", w, (long long)id);
      id++;
    }
  tt_cat(&s, "}, \"merges\": [");
  int64_t merges = 0;
  for (int len = 2; len <= 4 && merges < 300000; len++)
    for (int64_t k = 0; k < count[len] && merges < 300000; k++) {
      word(k, len, w);
      tt_cat(&s, "%s\"%.*s %c\"", merges ? ", " : "", len - 1, w, w[len - 1]);
      merges++;
    }
  tt_cat(&s, "]}}");
  CHECK(s.n > 8000000);

  clock_t t0 = clock();
  re_tokenizer *t = tt_load(&s);
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  printf("loaded %.1f MB, %lld tokens, %lld merges in %.2f s of CPU\n", (double)s.n / 1e6, (long long)id,
         (long long)merges, secs);
  CHECK(re_tokenizer_vocab_size(t) == 475254);
  /* ids: 1-letter 0..25, 2-letter from 26, 3-letter from 702, 4-letter from 18278 */
  enum { AB = 26 + 1, CD = 26 + 2 * 26 + 3, ZZ = 26 + 675, ABC = 702 + 28 };
  EXPECT_IDS(t, "abc", 0, ABC);
  EXPECT_IDS(t, "abcd", 0, AB, CD);
  EXPECT_IDS(t, "zzzz abc", 0, ZZ, ZZ, ABC);
  EXPECT_TEXT(t, 0, "abc zz zz", ABC, ZZ, ZZ);
  re_tokenizer_destroy(&t);
  free(s.p);
  return check_report();
}
