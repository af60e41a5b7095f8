/* Builders for the dataset tests: IDX images, gzip (libarchive's raw writer),
 * ustar members written by hand (so links, devices and forged sizes are easy to
 * make), PNGs (libpng's writer) and a scratch folder removed at the end. */
#ifndef REPEVAL_TEST_DS_FIXTURES_H
#define REPEVAL_TEST_DS_FIXTURES_H

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A growable byte buffer. */
typedef struct fx_buf {
  uint8_t *p;
  size_t n, cap;
} fx_buf;

static inline void fx_put(fx_buf *b, const void *data, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = (uint8_t *)realloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
}

static inline void fx_put_be32(fx_buf *b, uint32_t v) {
  uint8_t q[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  fx_put(b, q, 4);
}

/* ---- scratch folder ---------------------------------------------------- */

static char fx_dir[64];

static inline void fx_mkdir(void) {
  snprintf(fx_dir, sizeof fx_dir, "ds_test_XXXXXX");
  if (!mkdtemp(fx_dir)) {
    perror("mkdtemp");
    exit(2);
  }
}

/* Path of `name` inside the scratch folder (one of 256 rotating static buffers). */
static inline const char *fx_path(const char *name) {
  static char bufs[256][512];
  static int k = 0;
  char *p = bufs[k++ % 256];
  snprintf(p, 512, "%.63s/%.400s", fx_dir, name);
  return p;
}

static inline const char *fx_write(const char *name, const void *data, size_t n) {
  const char *p = fx_path(name);
  FILE *f = fopen(p, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n)) {
    perror(p);
    exit(2);
  }
  fclose(f);
  return p;
}

static inline void fx_rmdir(void) {
  DIR *d = opendir(fx_dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    unlink(fx_path(e->d_name));
  }
  if (d)
    closedir(d);
  rmdir(fx_dir);
}

/* ---- IDX and gzip ------------------------------------------------------ */

/* IDX header with `nd` dims, then `ndata` bytes produced by (seed + k) % 251. */
static inline fx_buf fx_idx(int type, int nd, const uint32_t *dims, size_t ndata, int seed) {
  fx_buf b = {0};
  uint8_t m[4] = {0, 0, (uint8_t)type, (uint8_t)nd};
  fx_put(&b, m, 4);
  for (int k = 0; k < nd; k++)
    fx_put_be32(&b, dims[k]);
  for (size_t k = 0; k < ndata; k++) {
    uint8_t v = (uint8_t)((seed + k) % 251);
    fx_put(&b, &v, 1);
  }
  return b;
}

static inline fx_buf fx_gzip(const void *data, size_t n) {
  fx_buf out = {0};
  size_t cap = n + 4096, used = 0;
  out.p = (uint8_t *)malloc(cap);
  struct archive *a = archive_write_new();
  archive_write_set_format_raw(a);
  archive_write_add_filter_gzip(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open_memory(a, out.p, cap, &used);
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, "x");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, (la_int64_t)n);
  archive_write_header(a, e);
  archive_write_data(a, data, n);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  out.n = out.cap = used;
  return out;
}

/* ---- tar (ustar, by hand) ---------------------------------------------- */

/* v in octal, zero-padded to width - 1 digits, NUL-terminated (v must fit). */
static inline void fx_octal(char *field, size_t width, uint64_t v) {
  for (size_t k = width - 1; k-- > 0; v >>= 3)
    field[k] = (char)('0' + (v & 7));
  field[width - 1] = '\0';
}

static inline void fx_field(char *field, size_t width, const char *s) {
  size_t n = strlen(s);
  memcpy(field, s, n < width ? n : width);
}

/* One member: type '0' regular, '1' hard link, '2' symlink, '3' char device,
 * '5' directory, '6' FIFO. `declared` is the size written in the header (data of
 * n bytes follows, padded to 512). */
static inline void fx_tar_member(fx_buf *t, const char *name, char type, const char *link, const void *data,
                                 size_t n, uint64_t declared) {
  char h[512];
  memset(h, 0, sizeof h);
  fx_field(h, 100, name);
  fx_octal(h + 100, 8, 0644);
  fx_octal(h + 108, 8, 0);
  fx_octal(h + 116, 8, 0);
  fx_octal(h + 124, 12, declared);
  fx_octal(h + 136, 12, 0);
  h[156] = type;
  if (link)
    fx_field(h + 157, 100, link);
  memcpy(h + 257, "ustar", 6);
  memcpy(h + 263, "00", 2);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int k = 0; k < 512; k++)
    sum += (unsigned char)h[k];
  fx_octal(h + 148, 7, sum);
  h[155] = ' ';
  fx_put(t, h, 512);
  if (n) {
    fx_put(t, data, n);
    static const char zeros[512];
    if (n % 512)
      fx_put(t, zeros, 512 - n % 512);
  }
}

static inline void fx_tar_file(fx_buf *t, const char *name, const void *data, size_t n) {
  fx_tar_member(t, name, '0', NULL, data, n, n);
}

static inline void fx_tar_text(fx_buf *t, const char *name, const char *text) {
  fx_tar_file(t, name, text, strlen(text));
}

static inline void fx_tar_end(fx_buf *t) {
  static const char zeros[1024];
  fx_put(t, zeros, 1024);
}

/* ---- PNG (libpng's writer) --------------------------------------------- */

static void fx_png_write_fn(png_structp png, png_bytep data, size_t n) {
  fx_put((fx_buf *)png_get_io_ptr(png), data, n);
}
static void fx_png_flush_fn(png_structp png) { (void)png; }

/* An 8-bit image of colour type `ct` (0 gray, 2 RGB, 6 RGBA); pixel (x, y, c)
 * holds (seed + 7 x + 13 y + 29 c) % 256. */
static inline fx_buf fx_png(int w, int h, int ct, int seed) {
  fx_buf out = {0};
  int ch = ct == 0 ? 1 : ct == 2 ? 3 : ct == 4 ? 2 : 4;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  uint8_t *row = (uint8_t *)malloc((size_t)(w * ch));
  if (setjmp(png_jmpbuf(png))) {
    fprintf(stderr, "fx_png: libpng write failed\n");
    exit(2);
  }
  png_set_write_fn(png, &out, fx_png_write_fn, fx_png_flush_fn);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ct, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++)
      for (int c = 0; c < ch; c++)
        row[x * ch + c] = (uint8_t)((seed + 7 * x + 13 * y + 29 * c) % 256);
    png_write_row(png, row);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(row);
  return out;
}

static inline float fx_png_value(int x, int y, int c, int seed) {
  return (float)((seed + 7 * x + 13 * y + 29 * c) % 256) / 255.0f;
}

#endif
