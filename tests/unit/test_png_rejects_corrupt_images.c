/* PNG decoder: bad signatures, every truncation of a valid file, forged IHDR
 * sizes, over-limit sides and too-small buffers fail with a message naming the
 * image; valid gray/RGB/RGBA images decode to v / 255 in planar order. */
#include "check.h"
#include "ds_fixtures.h"
#include "repeval/png.h"

/* CRC-32 of the PNG spec (ISO 3309), bit by bit. */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Rewrite the IHDR width/height of a PNG and fix its CRC. */
static void forge_size(fx_buf *b, uint32_t w, uint32_t h) {
  put_be32(b->p + 16, w);
  put_be32(b->p + 20, h);
  put_be32(b->p + 29, crc32_of(b->p + 12, 17));
}

int main(void) {
  re_png_info in;
  static float out[3 * 64 * 64];
  for (int ct = 0; ct <= 6; ct += 2) {
    if (ct == 4)
      continue;
    fx_buf b = fx_png(7, 5, ct, ct);
    int ch = ct == 0 ? 1 : ct == 2 ? 3 : 4;
    CHECK_OK(re_png_read_info(b.p, (int64_t)b.n, "img.png", 0, &in));
    CHECK(in.width == 7 && in.height == 5 && in.channels == ch && in.bit_depth == 8 && in.color_type == ct);
    CHECK_OK(re_png_decode(b.p, (int64_t)b.n, "img.png", 0, &in, out, (int64_t)(sizeof out / sizeof *out)));
    int bad = 0;
    for (int c = 0; c < ch; c++)
      for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
          bad += out[(c * 5 + y) * 7 + x] != fx_png_value(x, y, c, ct);
    CHECK(bad == 0);
    CHECK_FAILS(re_png_decode(b.p, (int64_t)b.n, "img.png", 0, &in, out, 7 * 5 * ch - 1), RE_ESHAPE,
                "img.png: PNG: ");
    free(b.p);
  }

  fx_buf b = fx_png(16, 16, 2, 9);
  /* every truncation fails cleanly (the signature check or libpng's end of data) */
  int wrong = 0;
  for (size_t n = 0; n < b.n; n++) { /* IEND is required too */
    re_status st = re_png_decode(b.p, (int64_t)n, "cut.png", 0, &in, out, sizeof out / sizeof *out);
    wrong += st != RE_EFORMAT || !strstr(re_errmsg(), "cut.png");
  }
  CHECK(wrong == 0);
  CHECK_FAILS(re_png_decode(b.p, (int64_t)b.n - 6, "cut.png", 0, &in, out, sizeof out / sizeof *out), RE_EFORMAT,
              "cut.png: undecodable PNG: unexpected end of data (truncated PNG)");
  CHECK_FAILS(re_png_read_info("GIF89a..", 8, "sig.png", 0, &in), RE_EFORMAT,
              "sig.png: not a PNG image (bad signature in the first 8 bytes)");
  CHECK_FAILS(re_png_read_info(b.p, 7, "short.png", 0, &in), RE_EFORMAT, "short.png: not a PNG image");
  /* a corrupted IDAT byte (zlib's Adler-32 or the chunk CRC), accepted when
   * checksums are ignored (fuzzing) */
  fx_buf c = {0};
  fx_put(&c, b.p, b.n);
  c.p[c.n - 20] ^= 0x01;
  CHECK_FAILS(re_png_decode(c.p, (int64_t)c.n, "crc.png", 0, &in, out, sizeof out / sizeof *out), RE_EFORMAT,
              "crc.png: undecodable PNG: IDAT: ");
  re_status st = re_png_decode(c.p, (int64_t)c.n, "crc.png", RE_PNG_IGNORE_CRC, &in, out, sizeof out / sizeof *out);
  CHECK(st == RE_OK);
  free(c.p);
  /* forged sizes: more pixels than the data can hold, beyond the side limit */
  c = (fx_buf){0};
  fx_put(&c, b.p, b.n);
  forge_size(&c, 60000, 60000);
  CHECK_OK(re_png_read_info(c.p, (int64_t)c.n, "forged.png", 0, &in));
  CHECK(in.width == 60000 && in.height == 60000);
  static float dummy[1];
  CHECK_FAILS(re_png_decode(c.p, (int64_t)c.n, "forged.png", 0, &in, dummy, INT64_MAX), RE_EFORMAT,
              "forged.png: PNG: 60000 x 60000 pixels cannot fit in");
  forge_size(&c, 70000, 4);
  CHECK_FAILS(re_png_read_info(c.p, (int64_t)c.n, "wide.png", 0, &in), RE_EFORMAT,
              "wide.png: undecodable PNG: Invalid IHDR data (last warning: Image width exceeds user limit");
  forge_size(&c, 0, 4);
  CHECK_FAILS(re_png_read_info(c.p, (int64_t)c.n, "zero.png", 0, &in), RE_EFORMAT, "zero.png: undecodable PNG");
  free(c.p);
  free(b.p);
  return check_report();
}
