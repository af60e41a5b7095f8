/* WebDataset reader: grouping of members into samples, every refusal (links,
 * devices, missing or duplicate members, bad labels, absurd sizes, undecodable
 * PNGs, geometry mismatches, corrupt archives) with the shard and member in the
 * message, and streaming reads that continue from the archive position. */
#include "check.h"
#include "ds_fixtures.h"
#include "repeval/dataset.h"
#include "repeval/npy.h"

static re_dataset *ds;

static re_status open_tar(const char *name, fx_buf *t) {
  re_dataset_close(&ds);
  const char *p = fx_write(name, t->p, t->n);
  const char *shards[1] = {p};
  return re_dataset_open_wds(shards, 1, "png", "cls", &ds);
}

static fx_buf png4x4(int seed) { return fx_png(4, 4, 0, seed); }

static void add_sample(fx_buf *t, const char *key, int seed, const char *label) {
  char name[128];
  fx_buf p = png4x4(seed);
  snprintf(name, sizeof name, "%s.png", key);
  fx_tar_file(t, name, p.p, p.n);
  free(p.p);
  if (label) {
    snprintf(name, sizeof name, "%s.cls", key);
    fx_tar_text(t, name, label);
  }
}

/* A .npy image of a float32 array of `n` values k + seed, shape (d0, d1). */
static fx_buf npy_f32(int64_t d0, int64_t d1, int seed) {
  fx_buf b = {0};
  uint8_t hdr[256];
  int64_t len, shape[2] = {d0, d1};
  re_npy_encode_header(RE_DTYPE_F32, 2, shape, hdr, sizeof hdr, &len);
  fx_put(&b, hdr, (size_t)len);
  for (int64_t k = 0; k < d0 * d1; k++) {
    float v = (float)(k + seed);
    fx_put(&b, &v, 4);
  }
  return b;
}

/* Expect a refusal at open of a shard made of `t` (consumed). */
#define REFUSED(name, t, code, msg)                                                  \
  do {                                                                               \
    fx_tar_end(&(t));                                                                \
    CHECK_FAILS(open_tar(name, &(t)), code, msg);                                    \
    CHECK(strstr(re_errmsg(), name) != NULL);                                        \
    free((t).p);                                                                     \
    (t) = (fx_buf){0};                                                               \
  } while (0)

int main(void) {
  fx_mkdir();
  float x[8 * 16];
  int32_t y[8];

  /* grouping: directories and dot-less / dot-first members are skipped, other
   * extensions ignored, a key may contain folders, `a.seg.png` is not `.png` */
  fx_buf t = {0};
  fx_tar_member(&t, "train/", '5', NULL, NULL, 0, 0);
  fx_tar_text(&t, "train/README", "no extension: skipped");
  fx_tar_text(&t, "train/.hidden.png", "dot first: skipped");
  add_sample(&t, "train/s0", 10, "3");
  fx_tar_text(&t, "train/s0.json", "{}");
  fx_buf seg = fx_png(2, 2, 0, 0);
  fx_tar_file(&t, "train/s1.seg.png", seg.p, seg.n);
  add_sample(&t, "train/s1", 20, " 7\n");
  add_sample(&t, "train/s2", 30, "+0");
  add_sample(&t, "train/s0", 40, "12"); /* the key again, not consecutive: a new sample */
  fx_tar_end(&t);
  CHECK_OK(open_tar("good.tar", &t));
  if (ds) {
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 4 && in->sample_dim == 16 && in->channels == 1 && in->height == 4 && in->width == 4);
    CHECK(in->has_labels && in->num_classes == 13);
    CHECK_OK(re_dataset_read(ds, 0, 4, x, y));
    CHECK(y[0] == 3 && y[1] == 7 && y[2] == 0 && y[3] == 12);
    int bad = 0;
    for (int s = 0; s < 4; s++)
      for (int yy = 0; yy < 4; yy++)
        for (int xx = 0; xx < 4; xx++)
          bad += x[s * 16 + yy * 4 + xx] != fx_png_value(xx, yy, 0, 10 * (s + 1));
    CHECK(bad == 0);
    /* backwards and forwards again: same values */
    float x2[16];
    CHECK_OK(re_dataset_read(ds, 1, 2, x2, y));
    CHECK(!memcmp(x2, x + 16, sizeof x2) && y[0] == 7);
    CHECK_OK(re_dataset_read(ds, 3, 4, x2, NULL));
    CHECK(!memcmp(x2, x + 48, sizeof x2));
    CHECK_OK(re_dataset_read(ds, 0, 1, x2, NULL));
    CHECK(!memcmp(x2, x, sizeof x2));
  }
  /* the same shard gzip-compressed, without labels; and two shards in a row */
  fx_buf gz = fx_gzip(t.p, t.n);
  const char *gz_p = fx_write("good.tar.gz", gz.p, gz.n);
  const char *two[3] = {gz_p, fx_path("good.tar"), gz_p};
  re_dataset_close(&ds);
  CHECK_OK(re_dataset_open_wds(two, 3, "png", NULL, &ds));
  if (ds) {
    CHECK(re_dataset_get_info(ds)->count == 12 && !re_dataset_get_info(ds)->has_labels);
    float all[12 * 16];
    for (int k = 0; k < 12; k += 5) /* batches 0-5, 5-10, 10-12 cross shard boundaries */
      CHECK_OK(re_dataset_read(ds, k, k + 5 > 12 ? 12 : k + 5, all + k * 16, y));
    CHECK(y[0] == -1);
    int bad = 0;
    for (int s = 0; s < 12; s++)
      bad += memcmp(all + s * 16, x + (s % 4) * 16, 16 * sizeof(float)) != 0;
    CHECK(bad == 0);
  }
  re_dataset_close(&ds);
  free(gz.p);
  free(seg.p);
  free(t.p);

  /* sequential reads continue from the archive position: after reading the
   * first samples, wreck the bytes before the position; the next sequential read
   * still works, a read that has to go back fails */
  fx_buf m = {0};
  for (int s = 0; s < 6; s++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", s);
    add_sample(&m, key, s, "1");
  }
  fx_tar_end(&m);
  CHECK_OK(re_dataset_open_wds_memory(m.p, (int64_t)m.n, "mem.tar", "png", "cls", &ds));
  if (ds) {
    CHECK_OK(re_dataset_read(ds, 0, 3, x, y));
    memset(m.p, 0xAB, 512); /* the first member's header */
    CHECK_OK(re_dataset_read(ds, 3, 5, x, y));
    CHECK(x[0] == fx_png_value(0, 0, 0, 3));
    CHECK_FAILS(re_dataset_read(ds, 0, 1, x, y), RE_EFORMAT, "mem.tar: ");
  }
  re_dataset_close(&ds);
  free(m.p);

  /* links, devices, FIFOs: refused, never followed */
  t = (fx_buf){0};
  add_sample(&t, "a", 1, "1");
  fx_tar_member(&t, "b.png", '2', "a.png", NULL, 0, 0);
  REFUSED("sym.tar", t, RE_EUNSUPPORTED, "member 'b.png' is a symbolic link (to 'a.png'); only regular files are accepted");
  add_sample(&t, "a", 1, "1");
  fx_tar_member(&t, "b.png", '1', "a.png", NULL, 0, 0);
  REFUSED("hard.tar", t, RE_EUNSUPPORTED, "member 'b.png' is a hard link (to 'a.png'); links are refused");
  fx_tar_member(&t, "dev.png", '3', NULL, NULL, 0, 0);
  REFUSED("dev.tar", t, RE_EUNSUPPORTED, "member 'dev.png' is a character device");
  fx_tar_member(&t, "fifo.cls", '6', NULL, NULL, 0, 0);
  REFUSED("fifo.tar", t, RE_EUNSUPPORTED, "member 'fifo.cls' is a FIFO");

  /* missing members, duplicates */
  add_sample(&t, "a", 1, "1");
  fx_tar_text(&t, "b.cls", "2");
  REFUSED("noinput.tar", t, RE_EFORMAT, "noinput.tar: sample 'b' has no '.png' member");
  add_sample(&t, "a", 1, "1");
  add_sample(&t, "b", 1, NULL);
  REFUSED("nolabel.tar", t, RE_EFORMAT, "nolabel.tar: sample 'b' has no '.cls' label member");
  add_sample(&t, "a", 1, "1");
  fx_tar_text(&t, "a.cls", "2");
  REFUSED("dup.tar", t, RE_EFORMAT, "dup.tar: member 'a.cls': sample 'a' already has a '.cls' member");

  /* labels */
  const char *bad_labels[] = {"abc", "-3", "", "3 4", "2147483648", "1.5"};
  for (size_t k = 0; k < sizeof bad_labels / sizeof *bad_labels; k++) {
    add_sample(&t, "x/a", 1, bad_labels[k]);
    REFUSED("label.tar", t, RE_EFORMAT, "label.tar: member 'x/a.cls': label \"");
  }
  add_sample(&t, "a", 1, "2147483648");
  REFUSED("label.tar", t, RE_EFORMAT, "exceeds 2147483647");
  char big[300];
  memset(big, ' ', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  big[0] = '1';
  add_sample(&t, "a", 1, big);
  REFUSED("biglabel.tar", t, RE_EFORMAT, "member 'a.cls': a label of 299 bytes (at most 256)");

  /* absurd sizes: refused from the header, before any data is read */
  add_sample(&t, "a", 1, "1");
  fx_tar_member(&t, "b.png", '0', NULL, "x", 1, (UINT64_C(1) << 30) + 1);
  REFUSED("huge.tar", t, RE_EFORMAT, "member 'b.png' declares 1073741825 bytes (the limit is 1 GiB)");

  /* PNGs: a bad signature is found at open, corrupt image data on read */
  fx_tar_text(&t, "a.png", "GIF89a, not a PNG");
  fx_tar_text(&t, "a.cls", "1");
  REFUSED("sig.tar", t, RE_EFORMAT, "sig.tar: a.png: not a PNG image (bad signature");
  fx_buf p = fx_png(4, 4, 0, 5);
  p.p[p.n - 20] ^= 0x55; /* inside IDAT: its CRC no longer matches */
  add_sample(&t, "a", 1, "1");
  fx_tar_file(&t, "b.png", p.p, p.n);
  fx_tar_text(&t, "b.cls", "1");
  fx_tar_end(&t);
  CHECK_OK(open_tar("idat.tar", &t));
  if (ds) {
    CHECK_OK(re_dataset_read(ds, 0, 1, x, y));
    CHECK_FAILS(re_dataset_read(ds, 0, 2, x, y), RE_EFORMAT, "idat.tar: b.png: undecodable PNG");
  }
  free(t.p);
  free(p.p);
  t = (fx_buf){0};
  add_sample(&t, "a", 1, "1");
  p = fx_png(5, 4, 0, 5);
  fx_tar_file(&t, "b.png", p.p, p.n);
  fx_tar_text(&t, "b.cls", "1");
  free(p.p);
  REFUSED("geom.tar", t, RE_ESHAPE, "geom.tar: member 'b.png': geometry mismatch: 1 x 4 x 5, the first sample is 1 x 4 x 4");
  add_sample(&t, "a", 1, "1");
  p = fx_png(4, 4, 2, 5);
  fx_tar_file(&t, "b.png", p.p, p.n);
  fx_tar_text(&t, "b.cls", "1");
  free(p.p);
  REFUSED("rgb.tar", t, RE_ESHAPE, "member 'b.png': geometry mismatch: 3 x 4 x 4, the first sample is 1 x 4 x 4");

  /* .npy inputs: values, and shape mismatches */
  re_dataset_close(&ds);
  fx_buf n1 = npy_f32(2, 3, 0), n2 = npy_f32(2, 3, 100), n3 = npy_f32(3, 2, 0);
  t = (fx_buf){0};
  fx_tar_file(&t, "a.npy", n1.p, n1.n);
  fx_tar_file(&t, "b.npy", n2.p, n2.n);
  fx_tar_end(&t);
  const char *np_p = fx_write("npy.tar", t.p, t.n);
  CHECK_OK(re_dataset_open_wds(&np_p, 1, "npy", NULL, &ds));
  if (ds) {
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 2 && in->sample_dim == 6 && in->channels == 1 && in->height == 2 && in->width == 3);
    CHECK_OK(re_dataset_read(ds, 0, 2, x, NULL));
    CHECK(x[0] == 0 && x[5] == 5 && x[6] == 100 && x[11] == 105);
  }
  re_dataset_close(&ds);
  free(t.p);
  t = (fx_buf){0};
  fx_tar_file(&t, "a.npy", n1.p, n1.n);
  fx_tar_file(&t, "b.npy", n3.p, n3.n);
  fx_tar_end(&t);
  np_p = fx_write("npy2.tar", t.p, t.n);
  CHECK_FAILS(re_dataset_open_wds(&np_p, 1, "npy", NULL, &ds), RE_ESHAPE,
              "npy2.tar: member 'b.npy': geometry mismatch: 1 x 3 x 2, the first sample is 1 x 2 x 3");
  free(t.p);
  t = (fx_buf){0};
  fx_tar_file(&t, "a.npy", n1.p, n1.n - 1);
  fx_tar_end(&t);
  np_p = fx_write("npy3.tar", t.p, t.n);
  CHECK_FAILS(re_dataset_open_wds(&np_p, 1, "npy", NULL, &ds), RE_EFORMAT, "npy3.tar: a.npy: .npy data truncated");
  free(t.p);
  free(n1.p);
  free(n2.p);
  free(n3.p);

  /* corrupt archives and bad arguments */
  t = (fx_buf){0};
  add_sample(&t, "a", 1, "1");
  add_sample(&t, "b", 2, "1");
  fx_buf cut = {0};
  fx_put(&cut, t.p, 512 + 30); /* stops inside the first member's data */
  CHECK_FAILS(open_tar("cut.tar", &cut), RE_EFORMAT, "cut.tar: member 'a.png': data unreadable");
  free(cut.p);
  free(t.p);
  t = (fx_buf){0};
  fx_put(&t, "this is not a tar archive at all", 32);
  CHECK_FAILS(open_tar("text.tar", &t), RE_EFORMAT, "text.tar: not a readable tar shard");
  free(t.p);
  const char *none[1] = {fx_path("absent.tar")};
  CHECK_FAILS(re_dataset_open_wds(none, 1, "png", "cls", &ds), RE_EIO, "absent.tar: cannot open");
  CHECK_FAILS(re_dataset_open_wds(none, 1, "jpg", "cls", &ds), RE_EINVAL, "input extension 'jpg' is not supported");
  CHECK_FAILS(re_dataset_open_wds(none, 1, "png", "png", &ds), RE_EINVAL, "must be non-empty and differ");
  CHECK_FAILS(re_dataset_open_wds(none, 0, "png", "cls", &ds), RE_EINVAL, "no shards");
  CHECK(ds == NULL);
  /* an empty archive is an empty dataset */
  t = (fx_buf){0};
  fx_tar_end(&t);
  CHECK_OK(open_tar("empty.tar", &t));
  CHECK(ds && re_dataset_get_info(ds)->count == 0);
  free(t.p);

  re_dataset_close(&ds);
  fx_rmdir();
  return check_report();
}
