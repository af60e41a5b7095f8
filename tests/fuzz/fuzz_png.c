/* Fuzz target: PNG header parsing and full decodes. Byte 0 bit 0 = check CRCs
 * (otherwise they are ignored, so mutations reach the image data); the rest is
 * the PNG. */
#include <stdlib.h>

#include "repeval/png.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int flags = (data[0] & 1) ? 0 : RE_PNG_IGNORE_CRC;
  re_png_info in;
  if (re_png_read_info(data + 1, (int64_t)size - 1, "fuzz.png", flags, &in) != RE_OK)
    return 0;
  int64_t values = (int64_t)in.channels * in.width * in.height;
  if (values <= 0 || values > (1 << 22))
    return 0;
  float *x = malloc(sizeof(float) * (size_t)values);
  if (x)
    (void)re_png_decode(data + 1, (int64_t)size - 1, "fuzz.png", flags, &in, x, values);
  free(x);
  return 0;
}
