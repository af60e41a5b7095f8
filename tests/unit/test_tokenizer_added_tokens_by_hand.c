/* Added tokens are cut out of the raw text before normalization and
 * splitting, leftmost-longest, with the rules of the library's
 * AddedVocabulary::find_matches: lstrip / rstrip take the whitespace around
 * them, single_word needs non-word characters on both sides, `normalized`
 * tokens are matched in the normalized text by their normalized form. The
 * model is a BPE without merges and without pre-tokenizer, so every other
 * character shows as its own id. */
#include "tok_testutil.h"

/* ids 0-9: single characters; 10.. added tokens (following the vocab, as loading assigns) */
static const char *const VOCAB[] = {"a", "b", " ", "<", ">", "m", "k", "[", "]", "x"};

static re_tokenizer *build(const char *normalizer) {
  tt_str s = {0};
  tt_cat(&s, "{\"version\": \"1.0\", \"added_tokens\": ["
             "{\"id\": 10, \"content\": \"<m>\", \"single_word\": false, \"lstrip\": true, \"rstrip\": true,"
             " \"normalized\": false, \"special\": true},"
             "{\"id\": 11, \"content\": \"mk\", \"single_word\": true, \"lstrip\": false, \"rstrip\": false,"
             " \"normalized\": false, \"special\": false},"
             "{\"id\": 12, \"content\": \"[B]\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
             " \"normalized\": true, \"special\": false},"
             "{\"id\": 13, \"content\": \"ab\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
             " \"normalized\": false, \"special\": false},"
             "{\"id\": 14, \"content\": \"abab\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
             " \"normalized\": false, \"special\": false},"
             "{\"id\": 9, \"content\": \"x\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
             " \"normalized\": false, \"special\": false}],"
             " \"normalizer\": %s, \"pre_tokenizer\": null, \"post_processor\": null, \"decoder\": null,"
             " \"model\": {\"type\": \"BPE\", \"vocab\": ",
         normalizer);
  tt_vocab(&s, VOCAB, 10);
  tt_cat(&s, ", \"merges\": []}}");
  re_tokenizer *t = tt_load(&s);
  free(s.p);
  return t;
}

int main(void) {
  re_tokenizer *t = build("{\"type\": \"Lowercase\"}");
  /* lstrip and rstrip: the spaces around <m> belong to it */
  EXPECT_IDS(t, "a  <m> b", 0, 0, 10, 1);
  EXPECT_IDS(t, "a<m>b", 0, 0, 10, 1);
  /* single_word: mk alone or next to non-word characters, not inside a word */
  EXPECT_IDS(t, "mk a", 0, 11, 2, 0);
  EXPECT_IDS(t, "amk", 0, 0, 5, 6);
  EXPECT_IDS(t, "mka", 0, 5, 6, 0);
  EXPECT_IDS(t, "[mk]", 0, 7, 11, 8);
  /* leftmost-longest: abab, then ab */
  EXPECT_IDS(t, "ababab", 0, 14, 13);
  /* "[B]" is normalized: matched after lowercasing, in the normalized text */
  EXPECT_IDS(t, "[B]x[b]", 0, 12, 9, 12);
  /* raw tokens first: <M> is not <m> (no lowercasing before the raw match) */
  EXPECT_IDS(t, "x<M>", 0, 9, 3, 5, 4);
  /* an added token that is also in the vocab keeps the vocab id (x is 9) */
  EXPECT_IDS(t, "axb", 0, 0, 9, 1);
  /* decoding: a normalized added token comes back in its normalized form; without a
   * decoder the tokens are joined with spaces */
  EXPECT_TEXT(t, 0, "[b] x", 12, 9);
  EXPECT_TEXT(t, 1, "a b", 0, 10, 1);
  EXPECT_TEXT(t, 0, "a <m> b", 0, 10, 1);
  CHECK(re_tokenizer_token_to_id(t, "[B]", 3) == 12);
  CHECK(re_tokenizer_token_to_id(t, "<m>", 3) == 10);
  CHECK(re_tokenizer_is_special(t, 10) && !re_tokenizer_is_special(t, 11));
  CHECK(re_tokenizer_vocab_size(t) == 15);
  int64_t len;
  CHECK(!strcmp(re_tokenizer_id_to_token(t, 12, &len), "[B]") && len == 3);
  re_tokenizer_destroy(&t);
  return check_report();
}
