/* A small byte-level BPE tokenizer.json for the text fuzz targets (no file needed):
 * the 256 byte symbols of GPT-2's bytes_to_unicode, a few merges, <s> and </s> as
 * special added tokens, and optionally a post-processor that puts them around the
 * text. */
#ifndef REPEVAL_FUZZ_TEXT_TOKENIZER_H
#define REPEVAL_FUZZ_TEXT_TOKENIZER_H

#include <stdio.h>
#include <string.h>

/* GPT-2's byte -> code point map. */
static inline unsigned fz_byte_symbol(int b) {
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
    return (unsigned)b;
  int n = 0;
  for (int k = 0; k < b; k++)
    if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF)))
      n++;
  return 256u + (unsigned)n;
}

/* JSON string body of a code point (escaped where needed). */
static inline int fz_put_cp(char *o, unsigned cp) {
  if (cp == '"' || cp == '\\')
    return sprintf(o, "\\%c", (char)cp);
  if (cp < 0x80)
    return sprintf(o, "%c", (char)cp);
  if (cp < 0x800)
    return sprintf(o, "%c%c", (char)(0xC0 | cp >> 6), (char)(0x80 | (cp & 0x3F)));
  return sprintf(o, "%c%c%c", (char)(0xE0 | cp >> 12), (char)(0x80 | ((cp >> 6) & 0x3F)), (char)(0x80 | (cp & 0x3F)));
}

/* Write the tokenizer.json into buf (cap >= 16384); with_post: <s> $A </s>. */
static inline void fz_tokenizer_json(char *buf, size_t cap, int with_post) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, cap - n,
                        "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": ["
                        "{\"id\": 259, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": "
                        "false, \"normalized\": false, \"special\": true}, "
                        "{\"id\": 260, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": "
                        "false, \"normalized\": false, \"special\": true}], \"normalizer\": null, "
                        "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": "
                        "true, \"use_regex\": true}, ");
  if (with_post)
    n += (size_t)snprintf(buf + n, cap - n,
                          "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
                          "{\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, "
                          "{\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}}], \"pair\": [{\"Sequence\": {\"id\": "
                          "\"A\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}], "
                          "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [259], \"tokens\": [\"<s>\"]}, "
                          "\"</s>\": {\"id\": \"</s>\", \"ids\": [260], \"tokens\": [\"</s>\"]}}}, ");
  else
    n += (size_t)snprintf(buf + n, cap - n, "\"post_processor\": null, ");
  n += (size_t)snprintf(buf + n, cap - n,
                        "\"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
                        "\"use_regex\": true}, \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
                        "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, "
                        "\"byte_fallback\": false, \"ignore_merges\": false, \"vocab\": {");
  for (int b = 0; b < 256; b++) {
    buf[n++] = '"';
    n += (size_t)fz_put_cp(buf + n, fz_byte_symbol(b));
    n += (size_t)snprintf(buf + n, cap - n, "\": %d, ", b);
  }
  /* merges: "t h" -> th (256), "Ġ t" -> Ġt (257), "e r" -> er (258) */
  n += (size_t)snprintf(buf + n, cap - n,
                        "\"th\": 256, \"\xc4\xa0t\": 257, \"er\": 258}, \"merges\": [\"t h\", \"\xc4\xa0 t\", "
                        "\"e r\"]}}");
}

#endif
