/* Fuzz target: the input is a tokenizer.json; when it loads, a few texts (and
 * the input itself, when it is UTF-8) are encoded with and without special
 * tokens, and the ids decoded again. */
#include <stdlib.h>
#include <string.h>

#include "repeval/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(re_tokenizer *t, const char *text, int64_t len) {
  int32_t *ids = NULL;
  int64_t n = 0, cap = 0;
  for (int special = 0; special < 2; special++) {
    if (re_tokenizer_encode(t, text, len, special, &ids, &n, &cap) != RE_OK)
      continue;
    for (int skip = 0; skip < 2; skip++) {
      char *out = NULL;
      int64_t olen;
      if (re_tokenizer_decode(t, ids, n, skip, &out, &olen) == RE_OK)
        free(out);
    }
  }
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const texts[] = {
      "Hello, world! I'm fine; DON'T   stop.\n\n\tcode(x)**2 # 12345",
      "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 d\xc3\xa9j\xc3\xa0 vu e\xcc\x81 \xef\xac\x81 \xc4\xb0",
      "emoji \xf0\x9f\xa4\x96\xf0\x9f\x9a\x80 and \xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe7\xac\xa6 \xe3\x80\x80",
      "<s>[CLS] <|endoftext|> [MASK]</s>",
      "",
      "     ",
      "\xe2\x96\x81x \xe2\x96\x81\xe2\x96\x81 <0x0A>"};
  re_tokenizer *t = NULL;
  if (re_tokenizer_load_buffer((const char *)data, (int64_t)size, "fuzz.json", &t) != RE_OK)
    return 0;
  for (size_t k = 0; k < sizeof texts / sizeof *texts; k++)
    roundtrip(t, texts[k], (int64_t)strlen(texts[k]));
  roundtrip(t, (const char *)data, (int64_t)(size < 4096 ? size : 4096));
  int64_t vs = re_tokenizer_vocab_size(t);
  for (int32_t id = 0; id < vs && id < 300; id++) {
    int64_t len;
    const char *s = re_tokenizer_id_to_token(t, id, &len);
    if (s && re_tokenizer_token_to_id(t, s, len) < 0)
      abort(); /* every token of an id must find an id again */
  }
  for (int k = 0; k < 4; k++)
    (void)re_tokenizer_special_id(t, (re_special_token)k);
  re_tokenizer_destroy(&t);
  return 0;
}
