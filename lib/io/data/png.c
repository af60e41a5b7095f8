/* PNG decoding with libpng's sequential read API from a memory buffer.
 * libpng reports errors by longjmp: the setjmp lives in run(), and everything
 * run() changes after it sits in the caller's png_ctx, so no local of the
 * function that called setjmp is modified between setjmp and longjmp (C11
 * 7.13.2.1). libpng warnings are never printed; the last one is added to the
 * error message. */
#include "repeval/png.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>

typedef struct png_ctx {
  const uint8_t *buf;
  int64_t len, pos;
  int flags;
  int decode;  /* 0: header only */
  float *out;
  int64_t cap;
  re_png_info info;
  uint8_t *raw;    /* height x rowbytes, after transforms */
  uint8_t **rows;  /* height */
  re_status st;    /* a failure found by us rather than by libpng */
  char msg[256];
  char warning[160]; /* libpng's last warning, often the reason for its error */
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
  png_ctx *c = (png_ctx *)png_get_error_ptr(png);
  snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  png_ctx *c = (png_ctx *)png_get_error_ptr(png);
  snprintf(c->warning, sizeof c->warning, "%s", msg ? msg : "");
}

static void on_read(png_structp png, png_bytep data, size_t n) {
  png_ctx *c = (png_ctx *)png_get_io_ptr(png);
  if ((int64_t)n > c->len - c->pos)
    png_error(png, "unexpected end of data (truncated PNG)");
  memcpy(data, c->buf + c->pos, n);
  c->pos += (int64_t)n;
}

/* Planar float conversion of the decoded interleaved rows. */
static void to_planar(const png_ctx *c, int64_t rowbytes) {
  const re_png_info *in = &c->info;
  int64_t plane = (int64_t)in->width * in->height;
  for (int y = 0; y < in->height; y++) {
    const uint8_t *r = c->raw + (int64_t)y * rowbytes;
    float *o = c->out + (int64_t)y * in->width;
    if (in->bit_depth == 8) {
      for (int x = 0; x < in->width; x++)
        for (int ch = 0; ch < in->channels; ch++)
          o[ch * plane + x] = (float)r[x * in->channels + ch] / 255.0f;
    } else {
      for (int x = 0; x < in->width; x++)
        for (int ch = 0; ch < in->channels; ch++) {
          const uint8_t *p = r + 2 * (x * in->channels + ch); /* big-endian in PNG */
          o[ch * plane + x] = (float)(p[0] << 8 | p[1]) / 65535.0f;
        }
    }
  }
}

/* Returns 0 on success, 1 after a libpng error (message in c->msg), 2 after a
 * failure of ours (c->st set). */
static int run(png_structp png, png_infop pinfo, png_ctx *c) {
  if (setjmp(png_jmpbuf(png)))
    return 1;
  png_set_read_fn(png, c, on_read);
  png_set_user_limits(png, RE_PNG_MAX_SIDE, RE_PNG_MAX_SIDE);
  if (c->flags & RE_PNG_IGNORE_CRC) {
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
#ifdef PNG_IGNORE_ADLER32
    png_set_option(png, PNG_IGNORE_ADLER32, PNG_OPTION_ON);
#endif
  }
  png_read_info(png, pinfo);
  png_uint_32 w = png_get_image_width(png, pinfo), h = png_get_image_height(png, pinfo);
  int depth = png_get_bit_depth(png, pinfo), ct = png_get_color_type(png, pinfo);
  int stored_channels = png_get_channels(png, pinfo);
  c->info.width = (int)w, c->info.height = (int)h;
  c->info.color_type = ct;
  c->info.interlaced = png_get_interlace_type(png, pinfo) != PNG_INTERLACE_NONE;
  if (ct == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb(png); /* adds alpha when tRNS is present */
  if (ct == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (c->info.interlaced)
    png_set_interlace_handling(png);
  png_read_update_info(png, pinfo);
  c->info.channels = png_get_channels(png, pinfo);
  c->info.bit_depth = png_get_bit_depth(png, pinfo);
  if (!c->decode)
    return 0;

  int64_t values = (int64_t)c->info.channels * (int64_t)w * (int64_t)h; /* < 2^34: sides <= 65535 */
  if (values > c->cap) {
    c->st = re_err(RE_ESHAPE, "%dx%dx%d image needs %lld floats, the buffer holds %lld", c->info.channels,
                   c->info.height, c->info.width, (long long)values, (long long)c->cap);
    return 2;
  }
  /* Deflate expands at most 1032:1 (a 258-byte match per 2 bits), so a stream
   * of `len` bytes cannot hold more pixel bytes than this: refuse before
   * allocating what a forged header claims. */
  int64_t pixel_bytes = (int64_t)w * h * stored_channels * depth / 8;
  if ((pixel_bytes - 1024) / 1032 > c->len) {
    c->st = re_err(RE_EFORMAT, "%u x %u pixels cannot fit in %lld bytes of PNG data (truncated or forged header)",
                   (unsigned)w, (unsigned)h, (long long)c->len);
    return 2;
  }
  int64_t rowbytes = (int64_t)png_get_rowbytes(png, pinfo);
  c->st = re_malloc((int64_t)h, rowbytes, &c->raw);
  if (c->st == RE_OK)
    c->st = re_malloc((int64_t)h, sizeof *c->rows, &c->rows);
  if (c->st != RE_OK)
    return 2;
  for (png_uint_32 y = 0; y < h; y++)
    c->rows[y] = c->raw + (int64_t)y * rowbytes;
  png_read_image(png, c->rows);
  png_read_end(png, NULL);
  to_planar(c, rowbytes);
  return 0;
}

static re_status png_run(const void *buf, int64_t len, const char *name, int flags, int decode, re_png_info *info,
                         float *out, int64_t cap) {
  memset(info, 0, sizeof *info);
  if (len < 8 || png_sig_cmp((png_const_bytep)buf, 0, 8) != 0)
    return re_err(RE_EFORMAT, "%s: not a PNG image (bad signature in the first 8 bytes)", name);
  png_ctx c;
  memset(&c, 0, sizeof c);
  c.buf = (const uint8_t *)buf, c.len = len, c.flags = flags, c.decode = decode, c.out = out, c.cap = cap;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
  if (!png)
    return re_err(RE_ENOMEM, "%s: cannot allocate a PNG reader", name);
  png_infop pinfo = png_create_info_struct(png);
  re_status st = RE_OK;
  if (!pinfo) {
    st = re_err(RE_ENOMEM, "%s: cannot allocate a PNG reader", name);
  } else {
    int r = run(png, pinfo, &c);
    if (r == 1)
      st = re_err(RE_EFORMAT, "%s: undecodable PNG: %s%s%s%s", name, c.msg, c.warning[0] ? " (last warning: " : "",
                  c.warning, c.warning[0] ? ")" : "");
    else if (r == 2)
      st = re_err_context(c.st, "%s: PNG: ", name);
    else
      *info = c.info;
  }
  png_destroy_read_struct(&png, pinfo ? &pinfo : NULL, NULL);
  free(c.raw);
  free(c.rows);
  return st;
}

re_status re_png_read_info(const void *buf, int64_t len, const char *name, int flags, re_png_info *info) {
  return png_run(buf, len, name, flags, 0, info, NULL, 0);
}

re_status re_png_decode(const void *buf, int64_t len, const char *name, int flags, re_png_info *info, float *out,
                        int64_t cap) {
  return png_run(buf, len, name, flags, 1, info, out, cap);
}
