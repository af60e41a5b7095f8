/* PNG decoding (libpng) of images held in memory, to float32 in [0, 1], planar
 * C x H x W. Channels follow the colour type: gray 1, gray+alpha 2, RGB 3, RGBA 4;
 * palette images expand to RGB, or RGBA when they carry a tRNS chunk. 1/2/4-bit
 * gray is expanded to 8 bits by bit replication; values are v / 255 for 8-bit and
 * v / 65535 for 16-bit samples, exactly as stored (no gamma or colour-profile
 * conversion; a tRNS chunk of a gray or RGB image is ignored). */
#ifndef REPEVAL_PNG_H
#define REPEVAL_PNG_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RE_PNG_MAX_SIDE 65535 /* largest accepted width or height */

/* Flags. RE_PNG_IGNORE_CRC accepts chunks whose CRC (and zlib Adler-32) is
 * wrong; meant for fuzzing, where random mutations would otherwise stop at the CRC. */
#define RE_PNG_IGNORE_CRC 1

typedef struct re_png_info {
  int width, height;
  int channels;   /* after expansion: 1, 2, 3 or 4 */
  int bit_depth;  /* after expansion: 8 or 16 */
  int color_type; /* as stored: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA */
  int interlaced; /* Adam7 */
} re_png_info;

/* Parse the signature and the chunks before the image data of a PNG of `len`
 * bytes; `name` is used in messages. */
re_status re_png_read_info(const void *buf, int64_t len, const char *name, int flags, re_png_info *info);

/* Decode a whole PNG into out (channels x height x width floats, planar); `cap` is
 * the capacity of out in floats (RE_ESHAPE, before any decoding, if too small).
 * *info receives the geometry. */
re_status re_png_decode(const void *buf, int64_t len, const char *name, int flags, re_png_info *info, float *out,
                        int64_t cap);

#ifdef __cplusplus
}
#endif
#endif
