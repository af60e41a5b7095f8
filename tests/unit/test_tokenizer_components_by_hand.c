/* Each normalizer and pre-tokenizer, alone, turns text into what its
 * definition in the tokenizers library says (normalizers/, pre_tokenizers/ and
 * NormalizedString::split there), worked out by hand: Unicode forms (UAX #15),
 * Rust's char::to_lowercase, BERT's cleaning and CJK spacing, the five split
 * behaviours, the byte-level alphabet of GPT-2. */
#include "tok_testutil.h"

static void test_normalizers(void) {
  EXPECT_NORM("{\"type\": \"NFC\"}", "e\xcc\x81", "\xc3\xa9");
  EXPECT_NORM("{\"type\": \"NFD\"}", "\xc3\xa9", "e\xcc\x81");
  /* compatibility forms: the fi ligature, a circled one, the Angstrom sign */
  EXPECT_NORM("{\"type\": \"NFKC\"}", "\xef\xac\x81 \xe2\x91\xa0", "fi 1");
  EXPECT_NORM("{\"type\": \"NFKD\"}", "\xe2\x84\xab", "A\xcc\x8a");
  /* U+0130 lowercases to i + U+0307, the one unconditional multi-character mapping */
  EXPECT_NORM("{\"type\": \"Lowercase\"}", "\xc3\x80" "B \xc4\xb0", "\xc3\xa0" "b i\xcc\x87");
  /* StripAccents drops marks but does not decompose */
  EXPECT_NORM("{\"type\": \"StripAccents\"}", "e\xcc\x81 \xc3\xa9", "e \xc3\xa9");
  /* BERT: tab -> space, control removed, CJK spaced, accents stripped, lowercased */
  EXPECT_NORM("{\"type\": \"BertNormalizer\"}", "H\xc3\xa9llo\tW\xc3\xb6rld\x01\xe4\xb8\xad\xe6\x96\x87",
              "hello world \xe4\xb8\xad  \xe6\x96\x87 ");
  /* NEL, VT and FF are controls (Cc) before they are white space: removed; U+3000 and
   * NBSP become spaces; U+200B (Cf) and U+FFFD go */
  EXPECT_NORM("{\"type\": \"BertNormalizer\"}", "a\xc2\x85" "b\x0b" "c\x0c" "d\xe3\x80\x80" "e\xc2\xa0" "f\xe2\x80\x8b" "g\xef\xbf\xbd",
              "abcd e fg");
  EXPECT_NORM("{\"type\": \"BertNormalizer\", \"strip_accents\": false, \"lowercase\": true}", "\xc3\x89" "a",
              "\xc3\xa9" "a");
  EXPECT_NORM("{\"type\": \"BertNormalizer\", \"lowercase\": false, \"handle_chinese_chars\": false}",
              "\xc3\x89\xe4\xb8\xad", "\xc3\x89\xe4\xb8\xad");
  EXPECT_NORM("{\"type\": \"Replace\", \"pattern\": {\"Regex\": \" +\"}, \"content\": \" \"}", "a   b  c", "a b c");
  EXPECT_NORM("{\"type\": \"Replace\", \"pattern\": {\"String\": \"..\"}, \"content\": \"!\"}", "a...b", "a!.b");
  EXPECT_NORM("{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"}", "x", "\xe2\x96\x81x");
  EXPECT_NORM("{\"type\": \"Prepend\", \"prepend\": \"\xe2\x96\x81\"}", "", "");
  EXPECT_NORM("{\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": true}", "  a b \t\xe3\x80\x80", "a b");
  EXPECT_NORM("{\"type\": \"Strip\", \"strip_left\": false, \"strip_right\": true}", "  a ", "  a");
  EXPECT_NORM("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, {\"type\": \"Lowercase\"}]}",
              "\xef\xbc\xa1\xef\xbc\xa2", "ab");
  EXPECT_NORM("{\"type\": \"Sequence\", \"normalizers\": []}", "Ab", "Ab");
}

static void test_pretokenizers(void) {
  EXPECT_PRE("{\"type\": \"Whitespace\"}", "Hello, world!  ok?", "Hello|,|world|!|ok|?");
  EXPECT_PRE("{\"type\": \"Whitespace\"}", "don't", "don|'|t");
  /* \w includes combining marks */
  EXPECT_PRE("{\"type\": \"Whitespace\"}", "nai\xcc\x88ve!?", "nai\xcc\x88ve|!?");
  EXPECT_PRE("{\"type\": \"WhitespaceSplit\"}", "a  b\tc\xc2\xa0" "d", "a|b|c|d");
  EXPECT_PRE("{\"type\": \"Digits\", \"individual_digits\": false}", "ab123cd45", "ab|123|cd|45");
  EXPECT_PRE("{\"type\": \"Digits\", \"individual_digits\": true}", "a12", "a|1|2");
  EXPECT_PRE("{\"type\": \"Punctuation\"}", "a,b!!", "a|,|b|!|!");
  EXPECT_PRE("{\"type\": \"Punctuation\", \"behavior\": \"Contiguous\"}", "a,b!!", "a|,|b|!!");
  EXPECT_PRE("{\"type\": \"Punctuation\", \"behavior\": \"MergedWithPrevious\"}", "a,b!!", "a,|b!|!");
  EXPECT_PRE("{\"type\": \"Punctuation\", \"behavior\": \"MergedWithNext\"}", "a,b!!", "a|,b|!|!");
  EXPECT_PRE("{\"type\": \"Punctuation\", \"behavior\": \"Removed\"}", "a,b!!", "a|b");
  /* the library's own example: The-final--countdown */
  EXPECT_PRE("{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \"MergedWithNext\", \"invert\": false}",
             "The-final--countdown", "The|-final|-|-countdown");
  EXPECT_PRE("{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \"Contiguous\", \"invert\": false}",
             "The-final--countdown", "The|-|final|--|countdown");
  /* invert: the digits are what stays */
  EXPECT_PRE("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\d+\"}, \"behavior\": \"Removed\", \"invert\": true}",
             "ab12cd", "12");
  EXPECT_PRE("{\"type\": \"CharDelimiterSplit\", \"delimiter\": \"-\"}", "a-b--c", "a|b|c");
  /* BERT: ASCII symbols count as punctuation too */
  EXPECT_PRE("{\"type\": \"BertPreTokenizer\"}", "Hi, there! a$b", "Hi|,|there|!|a|$|b");
  EXPECT_PRE("{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}", "Hello world",
             "\xc4\xa0Hello|\xc4\xa0world");
  EXPECT_PRE("{\"type\": \"ByteLevel\", \"add_prefix_space\": false}", "Hello world", "Hello|\xc4\xa0world");
  /* bytes below 0x21 map to U+0100 + n: space U+0120, newline U+010A; é's bytes to Ã © */
  EXPECT_PRE("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}", "a b\n\xc3\xa9",
             "a\xc4\xa0" "b\xc4\x8a\xc3\x83\xc2\xa9");
  EXPECT_PRE("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"WhitespaceSplit\"}, {\"type\": \"Digits\","
             " \"individual_digits\": true}]}",
             "ab12 c3", "ab|1|2|c|3");
  EXPECT_PRE("{\"type\": \"Metaspace\", \"replacement\": \"_\", \"prepend_scheme\": \"always\", \"split\": true}",
             "a b  c", "_a|_b|_|_c");
  EXPECT_PRE("{\"type\": \"Whitespace\"}", "", "");
}

int main(void) {
  test_normalizers();
  test_pretokenizers();
  return check_report();
}
