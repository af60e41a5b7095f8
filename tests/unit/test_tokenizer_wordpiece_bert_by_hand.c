/* A BERT-style tokenizer (BertNormalizer lowercase + strip accents,
 * BertPreTokenizer, WordPiece, TemplateProcessing [CLS] $A [SEP], WordPiece
 * decoder) on a 26-token vocabulary gives the ids that the definitions give:
 * WordPiece is greedy longest-match-first with "##" continuations, and a word
 * with any unmatched rest is one [UNK] (google-research/bert tokenization.py;
 * the tokenizers library's models/wordpiece). */
#include "tok_testutil.h"

static const char *const VOCAB[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", /* 0-4 */
    "hello", "world", ",", "!", "un",             /* 5-9 */
    "##aff", "##able", "cafe", "naive", "中",     /* 10-14 */
    "##s", "i", "'", "m", "don",                  /* 15-19 */
    "t", "a", "##b", "##c", "ab",                 /* 20-24 */
    "1"};                                         /* 25 */

static re_tokenizer *bert(int max_chars, const char *extra_model) {
  static const int specials[] = {0, 1, 2, 3, 4};
  tt_str s = {0};
  tt_cat(&s, "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": ");
  tt_specials(&s, VOCAB, specials, 5);
  tt_cat(&s, ", \"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true, \"handle_chinese_chars\": true,"
             " \"strip_accents\": null, \"lowercase\": true},"
             " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
             " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\","
             " \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"[SEP]\","
             " \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"[CLS]\": {\"id\": \"[CLS]\", \"ids\": [2],"
             " \"tokens\": [\"[CLS]\"]}, \"[SEP]\": {\"id\": \"[SEP]\", \"ids\": [3], \"tokens\": [\"[SEP]\"]}}},"
             " \"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true},"
             " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"continuing_subword_prefix\": \"##\","
             " \"max_input_chars_per_word\": %d%s, \"vocab\": ",
         max_chars, extra_model);
  tt_vocab(&s, VOCAB, (int)(sizeof VOCAB / sizeof *VOCAB));
  tt_cat(&s, "}}");
  re_tokenizer *t = tt_load(&s);
  free(s.p);
  return t;
}

int main(void) {
  re_tokenizer *t = bert(100, "");
  /* lowercased; punctuation split off: hello , world ! */
  EXPECT_IDS(t, "Hello, World!", 1, 2, 5, 7, 6, 8, 3);
  EXPECT_IDS(t, "Hello, World!", 0, 5, 7, 6, 8);
  /* un + ##aff + ##able */
  EXPECT_IDS(t, "unaffable", 1, 2, 9, 10, 11, 3);
  /* strip_accents null follows lowercase: NFD, marks dropped, so café -> cafe */
  EXPECT_IDS(t, "Café NAÏVE", 1, 2, 12, 13, 3);
  /* Chinese characters become words of their own; 文 is unknown */
  EXPECT_IDS(t, "中文", 1, 2, 14, 1, 3);
  /* the apostrophe is punctuation: i ' m don ' t */
  EXPECT_IDS(t, "I'm DON'T", 0, 16, 17, 18, 19, 17, 20);
  /* abc: "abc" is not a token, "ab" is, then "##c"; abcd: "##d" never matches, so the
   * whole word is [UNK] */
  EXPECT_IDS(t, "abc abcd", 0, 24, 23, 1);
  /* tabs, newlines and runs of spaces only separate words; control characters vanish */
  EXPECT_IDS(t, " \thello\n\n  world\x01 ", 0, 5, 6);
  /* special tokens in the text are matched before normalization (not lowercased) */
  EXPECT_IDS(t, "[CLS] hello [MASK]", 1, 2, 2, 5, 4, 3);
  EXPECT_IDS(t, "[mask]", 0, 1, 1, 1); /* lowercase: [ mask ] with [ and ] unknown */
  EXPECT_IDS(t, "", 1, 2, 3);
  EXPECT_IDS(t, "", 0, -1); /* no ids */
  /* decode: ## pieces join, cleanup removes the space before punctuation */
  EXPECT_TEXT(t, 0, "[CLS] hello, world! [SEP]", 2, 5, 7, 6, 8, 3);
  EXPECT_TEXT(t, 1, "hello, world!", 2, 5, 7, 6, 8, 3);
  EXPECT_TEXT(t, 0, "unaffable", 9, 10, 11);
  /* cleanup works token by token (" '" has no " ' " to clean), as in the library */
  EXPECT_TEXT(t, 0, "i ' m don ' t", 16, 17, 18, 19, 17, 20);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_BOS) == 2);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_EOS) == 3);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_UNK) == 1);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_PAD) == -1);
  CHECK(re_tokenizer_vocab_size(t) == 26);
  CHECK(re_tokenizer_token_to_id(t, "##able", 6) == 11);
  CHECK(re_tokenizer_token_to_id(t, "nope", 4) == -1);
  CHECK(re_tokenizer_is_special(t, 4) && !re_tokenizer_is_special(t, 5));
  int64_t len;
  CHECK(!strcmp(re_tokenizer_id_to_token(t, 14, &len), "中") && len == 3);
  CHECK(re_tokenizer_id_to_token(t, 26, NULL) == NULL && re_tokenizer_id_to_token(t, -1, NULL) == NULL);
  re_tokenizer_destroy(&t);
  CHECK(t == NULL);

  /* max_input_chars_per_word: a word longer than 4 characters is [UNK] at once */
  t = bert(4, "");
  EXPECT_IDS(t, "hello cafe", 0, 1, 12);
  re_tokenizer_destroy(&t);
  return check_report();
}
