/* Llama-2 / Mistral-style tokenizers (Metaspace or the legacy Prepend +
 * Replace normalizer, BPE with byte_fallback, <s> template, the
 * Replace/ByteFallback/Fuse/Strip decoder) on a small vocabulary give the ids
 * the definitions give: BPE applies the lowest-rank merge first, the leftmost
 * among equal ranks (Sennrich et al. 2016; the library's Word::merge_all);
 * characters without a token become <0xNN> byte tokens; Metaspace turns spaces
 * into U+2581 and prepends one per its scheme. */
#include "tok_testutil.h"

/* ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the words below */
enum { ID_SP = 259, ID_H, ID_E, ID_L, ID_O, ID_SPH, ID_LL, ID_SPHE, ID_SPHELL, ID_SPHELLO, ID_W, ID_R, ID_D, ID_SPW,
       ID_A, ID_B, ID_C, ID_AB, ID_BC, ID_AA };
static const char *const WORDS[] = {"▁", "h", "e", "l", "o", "▁h", "ll", "▁he", "▁hell", "▁hello",
                                    "w", "r", "d", "▁w", "a", "b", "c", "ab", "bc", "aa"};
/* in rank order */
static const char *const MERGES[] = {"▁ h", "l l", "▁h e", "▁he ll", "▁hell o", "▁ w", "a b", "b c", "a a"};
#define BYTE(b) (3 + (b))

static const char *vocab[3 + 256 + 20];
static char byte_names[256][8];

static re_tokenizer *build(const char *normalizer, const char *pre, const char *decoder, int byte_fallback,
                           int fuse_unk, const char *trunc, const char *pad) {
  static const int specials[] = {0, 1, 2};
  int nv = 0;
  vocab[nv++] = "<unk>", vocab[nv++] = "<s>", vocab[nv++] = "</s>";
  for (int b = 0; b < 256; b++) {
    snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
    vocab[nv++] = byte_names[b];
  }
  for (size_t k = 0; k < sizeof WORDS / sizeof *WORDS; k++)
    vocab[nv++] = WORDS[k];
  tt_str s = {0};
  tt_cat(&s, "{\"version\": \"1.0\", \"truncation\": %s, \"padding\": %s, \"added_tokens\": ", trunc, pad);
  tt_specials(&s, vocab, specials, 3);
  tt_cat(&s, ", \"normalizer\": %s, \"pre_tokenizer\": %s, \"decoder\": %s,", normalizer, pre, decoder);
  tt_cat(&s, " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\","
             " \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\":"
             " {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},");
  tt_cat(&s, " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\", \"continuing_subword_prefix\":"
             " null, \"end_of_word_suffix\": null, \"fuse_unk\": %s, \"byte_fallback\": %s, \"ignore_merges\": false,"
             " \"vocab\": ",
         fuse_unk ? "true" : "false", byte_fallback ? "true" : "false");
  tt_vocab(&s, vocab, nv);
  tt_cat(&s, ", \"merges\": ");
  tt_merges(&s, MERGES, (int)(sizeof MERGES / sizeof *MERGES));
  tt_cat(&s, "}}");
  re_tokenizer *t = tt_load(&s);
  free(s.p);
  return t;
}

static const char LLAMA_DECODER[] =
    "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"▁\"}, \"content\": \" \"},"
    " {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1,"
    " \"stop\": 0}]}";

static void test_metaspace_first(void) {
  re_tokenizer *t = build("null",
                          "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"first\","
                          " \"split\": false}",
                          LLAMA_DECODER, 1, 1, "null", "null");
  EXPECT_IDS(t, "hello", 1, 1, ID_SPHELLO);
  /* one piece: merges run across the inner ▁ */
  EXPECT_IDS(t, "hello hello", 0, ID_SPHELLO, ID_SPHELLO);
  /* é has no token: its UTF-8 bytes C3 A9 */
  EXPECT_IDS(t, "é", 0, ID_SP, BYTE(0xC3), BYTE(0xA9));
  /* ranks: a b (6) before b c (7), so ab + c */
  EXPECT_IDS(t, "abc", 0, ID_SP, ID_AB, ID_C);
  /* equal ranks: the leftmost a a first */
  EXPECT_IDS(t, "aaa", 0, ID_SP, ID_AA, ID_A);
  /* after a special token the piece does not start the text: no ▁ ("first") */
  EXPECT_IDS(t, "<s>hello", 1, 1, 1, ID_H, ID_E, ID_LL, ID_O);
  /* a text starting with a space already starts with ▁ */
  EXPECT_IDS(t, " hello", 0, ID_SPHELLO);
  EXPECT_IDS(t, "", 1, 1);
  EXPECT_IDS(t, "", 0, -1); /* no ids */
  EXPECT_TEXT(t, 0, "<s> hello hello", 1, ID_SPHELLO, ID_SPHELLO);
  EXPECT_TEXT(t, 1, "hello hello", 1, ID_SPHELLO, ID_SPHELLO);
  EXPECT_TEXT(t, 0, "é", ID_SP, BYTE(0xC3), BYTE(0xA9));
  /* a lone lead byte is not UTF-8: U+FFFD */
  EXPECT_TEXT(t, 0, "\xEF\xBF\xBD", ID_SP, BYTE(0xC3));
  re_tokenizer_destroy(&t);
}

static void test_metaspace_split_schemes(void) {
  const char *dec = "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\", \"split\": true}";
  re_tokenizer *t = build("null", dec, dec, 1, 1, "null", "null");
  /* split before every ▁: ▁hello | ▁world, and ▁ w merges first in ▁world */
  EXPECT_IDS(t, "hello world", 0, ID_SPHELLO, ID_SPW, ID_O, ID_R, ID_L, ID_D);
  /* always: the piece after a special token gets a ▁ too */
  EXPECT_IDS(t, "<s>hello", 0, 1, ID_SPHELLO);
  /* the Metaspace decoder drops the ▁ of the first token only */
  EXPECT_TEXT(t, 0, "hello hello", ID_SPHELLO, ID_SPHELLO);
  re_tokenizer_destroy(&t);

  t = build("null", "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"never\"}", "null", 1, 1,
            "null", "null");
  EXPECT_IDS(t, "hello", 0, ID_H, ID_E, ID_LL, ID_O);
  /* no decoder: tokens joined with spaces */
  EXPECT_TEXT(t, 0, "h e ll o", ID_H, ID_E, ID_LL, ID_O);
  re_tokenizer_destroy(&t);

  /* the older field add_prefix_space false means never */
  t = build("null", "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"add_prefix_space\": false}", "null", 1, 1,
            "null", "null");
  EXPECT_IDS(t, "hello", 0, ID_H, ID_E, ID_LL, ID_O);
  re_tokenizer_destroy(&t);
}

static void test_legacy_normalizer(void) {
  re_tokenizer *t = build("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"▁\"},"
                          " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"▁\"}]}",
                          "null", LLAMA_DECODER, 1, 1, "null", "null");
  EXPECT_IDS(t, "hello", 1, 1, ID_SPHELLO);
  /* Prepend then Replace: ▁▁hello */
  EXPECT_IDS(t, " hello", 0, ID_SP, ID_SPHELLO);
  /* the normalizer runs on every piece between added tokens (the legacy behaviour) */
  EXPECT_IDS(t, "<s>hello", 0, 1, ID_SPHELLO);
  re_tokenizer_destroy(&t);
}

static void test_unknown_characters(void) {
  /* no byte fallback: unknown characters are <unk>, fused into one with fuse_unk */
  const char *pre = "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\", \"split\": true}";
  re_tokenizer *t = build("null", pre, "null", 0, 1, "null", "null");
  EXPECT_IDS(t, "xyzh", 0, ID_SP, 0, ID_H);
  re_tokenizer_destroy(&t);
  t = build("null", pre, "null", 0, 0, "null", "null");
  EXPECT_IDS(t, "xyzh", 0, ID_SP, 0, 0, 0, ID_H);
  re_tokenizer_destroy(&t);
}

static void test_truncation_padding(void) {
  const char *pre = "{\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"always\", \"split\": true}";
  const char *trunc_r = "{\"direction\": \"Right\", \"max_length\": 3, \"strategy\": \"LongestFirst\", \"stride\": 0}";
  const char *trunc_l = "{\"direction\": \"Left\", \"max_length\": 3, \"strategy\": \"LongestFirst\", \"stride\": 0}";
  const char *pad = "{\"strategy\": {\"Fixed\": 5}, \"direction\": \"Right\", \"pad_to_multiple_of\": null,"
                    " \"pad_id\": 2, \"pad_type_id\": 0, \"pad_token\": \"</s>\"}";
  const char *pad_l = "{\"strategy\": \"BatchLongest\", \"direction\": \"Left\", \"pad_to_multiple_of\": 4,"
                      " \"pad_id\": 2, \"pad_type_id\": 0, \"pad_token\": \"</s>\"}";
  /* room is left for the <s> the template adds: 2 tokens of text */
  re_tokenizer *t = build("null", pre, "null", 1, 1, trunc_r, "null");
  EXPECT_IDS(t, "hello aaa", 1, 1, ID_SPHELLO, ID_SP);
  EXPECT_IDS(t, "hello aaa", 0, ID_SPHELLO, ID_SP, ID_AA);
  re_tokenizer_destroy(&t);
  t = build("null", pre, "null", 1, 1, trunc_l, "null");
  EXPECT_IDS(t, "hello aaa", 1, 1, ID_AA, ID_A);
  re_tokenizer_destroy(&t);
  t = build("null", pre, "null", 1, 1, "null", pad);
  EXPECT_IDS(t, "hello", 1, 1, ID_SPHELLO, 2, 2, 2);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_PAD) == 2);
  re_tokenizer_destroy(&t);
  t = build("null", pre, "null", 1, 1, "null", pad_l);
  EXPECT_IDS(t, "hello", 1, 2, 2, 1, ID_SPHELLO);
  re_tokenizer_destroy(&t);
}

int main(void) {
  test_metaspace_first();
  test_metaspace_split_schemes();
  test_legacy_normalizer();
  test_unknown_characters();
  test_truncation_padding();
  return check_report();
}
