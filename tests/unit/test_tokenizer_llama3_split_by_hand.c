/* A Llama-3-style tokenizer (Split with the Llama-3 pattern, ByteLevel
 * without its own regex, BPE with ignore_merges, <|begin_of_text|> template,
 * ByteLevel decoder) on a byte-level vocabulary gives the ids the definitions
 * give: bytes map to characters as GPT-2's bytes_to_unicode (encoder.py);
 * ignore_merges takes a whole piece that is a token as it is, even when the
 * merges could not build it; added tokens are cut out first. */
#include "tok_testutil.h"

/* GPT-2 encoder.py bytes_to_unicode, written out again here */
static uint32_t byte_char(int b) {
  int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  if (printable)
    return (uint32_t)b;
  int n = 0;
  for (int x = 0; x < b; x++)
    n += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
  return 256u + (uint32_t)n;
}

/* ids 0..255: the byte-level character of byte id; then these */
enum { ID_GW = 256, ID_OR, ID_LD, ID_GWOR, ID_GWORLD, ID_HE, ID_LL, ID_HELL, ID_HELLO, ID_QT, ID_123, ID_NLNL, ID_12,
       ID_BOT, ID_EOT };
static const char *const WORDS[] = {"Ġw", "or", "ld", "Ġwor", "Ġworld", "he", "ll", "hell", "hello", "'T", "123",
                                    "ĊĊ", "12"};
/* Ġworld is a token, but no merge builds it from Ġwor + ld */
static const char *const MERGES[] = {"Ġ w", "o r", "l d", "Ġw or", "h e", "l l", "he ll", "hell o", "' T",
                                     "1 2", "12 3", "Ċ Ċ"};

static re_tokenizer *build(int ignore_merges) {
  static char chars[256][8];
  const char *vocab[256 + 13];
  for (int b = 0; b < 256; b++) {
    chars[b][tok_utf8_put(byte_char(b), chars[b])] = '\0';
    vocab[b] = chars[b];
  }
  for (int k = 0; k < 13; k++)
    vocab[256 + k] = WORDS[k];
  tt_str s = {0};
  tt_cat(&s, "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": ["
             "{\"id\": 269, \"content\": \"<|begin_of_text|>\", \"single_word\": false, \"lstrip\": false,"
             " \"rstrip\": false, \"normalized\": false, \"special\": true},"
             "{\"id\": 270, \"content\": \"<|end_of_text|>\", \"single_word\": false, \"lstrip\": false,"
             " \"rstrip\": false, \"normalized\": false, \"special\": true}],"
             " \"normalizer\": null,"
             " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\":"
             " {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}|"
             " ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\":"
             " \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
             " \"trim_offsets\": true, \"use_regex\": false}]},"
             " \"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\","
             " \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true}, {\"type\":"
             " \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", \"type_id\": 0}},"
             " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"<|begin_of_text|>\":"
             " {\"id\": \"<|begin_of_text|>\", \"ids\": [269], \"tokens\": [\"<|begin_of_text|>\"]}}}]},"
             " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true,"
             " \"use_regex\": true},"
             " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null,"
             " \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": %s,"
             " \"vocab\": ",
         ignore_merges ? "true" : "false");
  tt_vocab(&s, vocab, 256 + 13);
  /* this time the merges as pairs, the newer format */
  tt_cat(&s, ", \"merges\": [");
  for (size_t k = 0; k < sizeof MERGES / sizeof *MERGES; k++) {
    const char *sp = strchr(MERGES[k], ' ');
    tt_cat(&s, "%s[\"%.*s\", \"%s\"]", k ? ", " : "", (int)(sp - MERGES[k]), MERGES[k], sp + 1);
  }
  tt_cat(&s, "]}}");
  re_tokenizer *t = tt_load(&s);
  free(s.p);
  return t;
}

int main(void) {
  re_tokenizer *t = build(1);
  /* hello | " world" -> hello, Ġworld: both whole tokens */
  EXPECT_IDS(t, "hello world", 1, ID_BOT, ID_HELLO, ID_GWORLD);
  EXPECT_IDS(t, "hello world", 0, ID_HELLO, ID_GWORLD);
  /* DON | 'T (case-insensitive contraction); DON has no merges: its bytes */
  EXPECT_IDS(t, "DON'T", 0, 'D', 'O', 'N', ID_QT);
  /* digits in threes: 123 | 456 | 7 */
  EXPECT_IDS(t, "1234567", 0, ID_123, '4', '5', '6', '7');
  /* x | \n\n | y, and \n\n is the token ĊĊ */
  EXPECT_IDS(t, "x\n\ny", 0, 'x', ID_NLNL, 'y');
  /* bytes of é (C3 A9) and of an emoji (F0 9F A4 96) */
  EXPECT_IDS(t, "é🤖", 0, 0xC3, 0xA9, 0xF0, 0x9F, 0xA4, 0x96);
  /* added tokens are cut out of the raw text */
  EXPECT_IDS(t, "<|begin_of_text|>hi<|end_of_text|>", 0, ID_BOT, 'h', 'i', ID_EOT);
  EXPECT_TEXT(t, 0, "<|begin_of_text|>hello world", ID_BOT, ID_HELLO, ID_GWORLD);
  EXPECT_TEXT(t, 1, "hello world", ID_BOT, ID_HELLO, ID_GWORLD);
  EXPECT_TEXT(t, 0, "é🤖", 0xC3, 0xA9, 0xF0, 0x9F, 0xA4, 0x96);
  /* an emoji cut in the middle decodes to one U+FFFD (a maximal invalid subpart) */
  EXPECT_TEXT(t, 0, "x\xEF\xBF\xBD", 'x', 0xF0, 0x9F, 0xA4);
  CHECK(re_tokenizer_vocab_size(t) == 271);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_BOS) == ID_BOT);
  CHECK(re_tokenizer_special_id(t, RE_TOKEN_UNK) == -1);
  re_tokenizer_destroy(&t);

  /* without ignore_merges: Ġ w o r l d -> Ġw or ld -> Ġwor ld; hello merges to hello */
  t = build(0);
  EXPECT_IDS(t, "hello world", 0, ID_HELLO, ID_GWOR, ID_LD);
  re_tokenizer_destroy(&t);
  return check_report();
}
