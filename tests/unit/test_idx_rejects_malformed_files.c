/* IDX reader: every validation rule fails with its status and a message naming
 * the file and what was wrong; well-formed plain and gzip files read back their
 * bytes / 255 exactly (run under ASan for the bounds). */
#include "check.h"
#include "ds_fixtures.h"
#include "repeval/dataset.h"

static re_dataset *ds;

static re_status open_files(const char *img, const char *lab) {
  re_dataset_close(&ds);
  return re_dataset_open_idx(img, lab, &ds);
}

int main(void) {
  fx_mkdir();
  uint32_t dims3[3] = {5, 4, 3}, dims1[1] = {5};
  fx_buf img = fx_idx(0x08, 3, dims3, 60, 1);
  fx_buf lab = fx_idx(0x08, 1, dims1, 5, 3);
  const char *img_p = fx_write("img.idx", img.p, img.n);
  const char *lab_p = fx_write("lab.idx", lab.p, lab.n);

  /* good files: plain, gzip, mixed; values and labels exact */
  CHECK_OK(open_files(img_p, lab_p));
  fx_buf gz = fx_gzip(img.p, img.n), lgz = fx_gzip(lab.p, lab.n);
  CHECK(gz.n > 2 && gz.p[0] == 0x1f && gz.p[1] == 0x8b);
  const char *gz_p = fx_write("img.idx.gz", gz.p, gz.n);
  const char *lgz_p = fx_write("lab-no-suffix", lgz.p, lgz.n); /* gzip by magic, not by name */
  const char *pairs[3][2] = {{img_p, lab_p}, {gz_p, lgz_p}, {gz_p, lab_p}};
  for (int t = 0; t < 3; t++) {
    CHECK_OK(open_files(pairs[t][0], pairs[t][1]));
    if (!ds)
      continue;
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 5 && in->sample_dim == 12 && in->channels == 1 && in->height == 4 && in->width == 3);
    CHECK(in->has_labels == 1 && in->num_classes == 8); /* labels 3..7 */
    float x[60];
    int32_t y[5];
    CHECK_OK(re_dataset_read(ds, 1, 5, x, y));
    int bad = 0;
    for (int k = 0; k < 48; k++)
      bad += x[k] != (float)img.p[16 + 12 + k] / 255.0f;
    CHECK(bad == 0);
    CHECK(y[0] == 4 && y[3] == 7);
    CHECK_FAILS(re_dataset_read(ds, 3, 6, x, y), RE_EINVAL, "out of range (the dataset has 5 samples)");
  }

  /* wrong magic */
  fx_buf b = fx_idx(0x08, 3, dims3, 60, 1);
  b.p[1] = 0x01;
  CHECK_FAILS(open_files(fx_write("magic.idx", b.p, b.n), NULL), RE_EFORMAT, "magic bytes at offset 0 are 00 01");
  CHECK(strstr(re_errmsg(), "magic.idx") != NULL);
  free(b.p);
  /* unknown and unsupported element types */
  b = fx_idx(0x0A, 3, dims3, 60, 1);
  CHECK_FAILS(open_files(fx_write("type.idx", b.p, b.n), NULL), RE_EFORMAT, "type.idx: unknown IDX element type 0x0a at offset 2");
  free(b.p);
  b = fx_idx(0x0D, 3, dims3, 240, 1);
  CHECK_FAILS(open_files(fx_write("f32.idx", b.p, b.n), NULL), RE_EUNSUPPORTED, "f32.idx: IDX images of element type float32");
  free(b.p);
  /* wrong number of dimensions */
  uint32_t dims2[2] = {5, 12};
  b = fx_idx(0x08, 2, dims2, 60, 1);
  CHECK_FAILS(open_files(fx_write("nd.idx", b.p, b.n), NULL), RE_EFORMAT, "nd.idx: IDX images must have 3 dimensions (N, H, W), the header at offset 3 declares 2");
  free(b.p);
  CHECK_FAILS(open_files(img_p, img_p), RE_EFORMAT, "IDX labels must have 1 dimension (N)");
  /* truncated header, truncated data, trailing data, too short */
  CHECK_FAILS(open_files(fx_write("hdr.idx", img.p, 9), NULL), RE_EFORMAT, "hdr.idx: IDX header truncated: 3 dimensions need 16 bytes, the file has 9");
  CHECK_FAILS(open_files(fx_write("trunc.idx", img.p, img.n - 1), NULL), RE_EFORMAT,
              "trunc.idx: IDX data truncated: the header declares 60 bytes of unsigned byte after the 16-byte header, the file has 59");
  b = fx_idx(0x08, 3, dims3, 61, 1);
  CHECK_FAILS(open_files(fx_write("trail.idx", b.p, b.n), NULL), RE_EFORMAT, "trail.idx: 1 bytes after the IDX data (the header declares 60)");
  free(b.p);
  CHECK_FAILS(open_files(fx_write("short.idx", "\0\0", 2), NULL), RE_EFORMAT, "short.idx: too short for an IDX header (2 bytes");
  /* dimensions whose product overflows, zero-sized images */
  uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
  b = fx_idx(0x08, 3, huge, 0, 1);
  CHECK_FAILS(open_files(fx_write("huge.idx", b.p, b.n), NULL), RE_EFORMAT, "huge.idx: IDX dimensions overflow 64 bits");
  free(b.p);
  uint32_t zero[3] = {5, 0, 3};
  b = fx_idx(0x08, 3, zero, 0, 1);
  CHECK_FAILS(open_files(fx_write("zero.idx", b.p, b.n), NULL), RE_EFORMAT, "zero.idx: IDX images of 0 x 3 pixels");
  free(b.p);
  /* image count != label count */
  uint32_t dims4[1] = {4};
  b = fx_idx(0x08, 1, dims4, 4, 0);
  CHECK_FAILS(open_files(img_p, fx_write("lab4.idx", b.p, b.n)), RE_ESHAPE, "lab4.idx: 4 labels, but");
  CHECK(strstr(re_errmsg(), "img.idx has 5 images") != NULL);
  free(b.p);
  /* int32 labels: accepted when non-negative, a negative one is named with its offset */
  fx_buf l32 = {0};
  uint8_t m[4] = {0, 0, 0x0C, 1};
  fx_put(&l32, m, 4);
  fx_put_be32(&l32, 5);
  for (uint32_t k = 0; k < 5; k++)
    fx_put_be32(&l32, k == 3 ? 0xfffffffeu : 100 + k);
  CHECK_FAILS(open_files(img_p, fx_write("l32.idx", l32.p, l32.n)), RE_EDATA, "l32.idx: label -2 of sample 3 (offset 20) is negative");
  memcpy(l32.p + 20, "\0\0\0\x09", 4);
  CHECK_OK(open_files(img_p, fx_write("l32ok.idx", l32.p, l32.n)));
  if (ds) {
    int32_t y[5];
    float x[60];
    CHECK_OK(re_dataset_read(ds, 0, 5, x, y));
    CHECK(y[0] == 100 && y[3] == 9 && y[4] == 104 && re_dataset_get_info(ds)->num_classes == 105);
  }
  free(l32.p);
  /* float labels are refused */
  b = fx_idx(0x0D, 1, dims1, 20, 0);
  CHECK_FAILS(open_files(img_p, fx_write("lf.idx", b.p, b.n)), RE_EUNSUPPORTED, "lf.idx: IDX labels of element type float32");
  free(b.p);
  /* gzip: truncated stream, trailing data inside the stream, missing file */
  CHECK_FAILS(open_files(fx_write("cut.gz", gz.p, gz.n - 12), NULL), RE_EFORMAT, "cut.gz: ");
  CHECK(strstr(re_errmsg(), "truncated gzip input") != NULL);
  b = fx_idx(0x08, 3, dims3, 60 + 70000, 1);
  fx_buf bgz = fx_gzip(b.p, b.n);
  CHECK_FAILS(open_files(fx_write("big.gz", bgz.p, bgz.n), NULL), RE_EFORMAT,
              "big.gz: decompressed IDX data exceed the 76 bytes its header declares");
  free(b.p);
  free(bgz.p);
  CHECK_FAILS(open_files(fx_path("missing.idx"), NULL), RE_EIO, "missing.idx: cannot open");
  CHECK_FAILS(open_files(NULL, NULL), RE_EINVAL, "no images file");

  /* in memory, as the fuzz target uses it */
  re_dataset_close(&ds);
  CHECK_OK(re_dataset_open_idx_memory(gz.p, (int64_t)gz.n, lab.p, (int64_t)lab.n, "mem", &ds));
  CHECK(ds && re_dataset_get_info(ds)->count == 5);
  re_dataset_close(&ds);
  CHECK_FAILS(re_dataset_open_idx_memory(img.p, 10, NULL, 0, "mem", &ds), RE_EFORMAT, "mem[images]: IDX header truncated");
  CHECK(ds == NULL);

  re_dataset_close(&ds);
  free(img.p);
  free(lab.p);
  free(gz.p);
  free(lgz.p);
  fx_rmdir();
  return check_report();
}
