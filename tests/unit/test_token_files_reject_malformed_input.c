/* Token files: ids/mask/labels .npy (values, padding sides, every refusal with the
 * file and sample or byte offset) and token streams (.bin uint16/uint32, 1-D .npy,
 * samples across files, the partial tail dropped, ids against vocab); token and
 * image datasets refuse each other's read function. */
#include "check.h"
#include "text_fixtures.h"

static re_dataset *ds;

int main(void) {
  fx_mkdir();
  int64_t sh2[2] = {3, 4}, sh1[1] = {3};
  int64_t ids[12] = {5, 6, 7, 8, 9, 10, 0, 0, 0, 1, 2, 3};
  uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1};
  int32_t lab[3] = {2, 0, 7};
  const char *pi = tx_npy("ids.npy", RE_DTYPE_I64, 2, sh2, ids);
  const char *pm = tx_npy("mask.npy", RE_DTYPE_U8, 2, sh2, mask);
  const char *pl = tx_npy("labels.npy", RE_DTYPE_I32, 1, sh1, lab);

  /* a good triple: values as stored, right and left padding, labels */
  CHECK_OK(re_dataset_open_tokens(pi, pm, pl, 0, &ds));
  if (ds) {
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->tokens == 1 && in->count == 3 && in->seq_len == 4 && in->vocab == 11);
    CHECK(in->has_labels && in->num_classes == 8);
    int64_t got[12];
    uint8_t gm[12];
    int32_t gy[3];
    CHECK_OK(re_dataset_read_tokens(ds, 0, 3, got, gm, gy));
    CHECK(!memcmp(got, ids, sizeof ids) && !memcmp(gm, mask, sizeof mask) && !memcmp(gy, lab, sizeof lab));
    CHECK_OK(re_dataset_read_tokens(ds, 2, 3, got, gm, gy));
    CHECK(got[0] == 0 && got[3] == 3 && gm[0] == 0 && gm[3] == 1 && gy[0] == 7);
    float x[4];
    CHECK_FAILS(re_dataset_read(ds, 0, 1, x, NULL), RE_EINVAL, "holds token ids (4 per sample)");
    float m = 0, s = 1;
    CHECK_FAILS(re_dataset_set_normalize(ds, &m, &s, 1), RE_EINVAL, "not to a token dataset");
    CHECK_FAILS(re_dataset_read_tokens(ds, 2, 4, got, gm, gy), RE_EINVAL, "out of range");
  }
  re_dataset_close(&ds);
  /* no mask: all tokens; int16 ids in Fortran order; a given vocab */
  int16_t f16[12];
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 4; c++)
      f16[c * 3 + r] = (int16_t)ids[r * 4 + c]; /* column-major bytes */
  fx_buf fb = {0};
  uint8_t hdr[128];
  const char *fh = "{'descr': '<i2', 'fortran_order': True, 'shape': (3, 4), }";
  size_t hl = strlen(fh), pad = 64 - (10 + hl + 1) % 64;
  memcpy(hdr, "\x93NUMPY\x01\x00", 8);
  hdr[8] = (uint8_t)((hl + pad + 1) & 0xff), hdr[9] = (uint8_t)((hl + pad + 1) >> 8);
  fx_put(&fb, hdr, 10);
  fx_put(&fb, fh, hl);
  for (size_t k = 0; k < pad; k++)
    fx_put(&fb, " ", 1);
  fx_put(&fb, "\n", 1);
  fx_put(&fb, f16, sizeof f16);
  const char *pf = fx_write("fortran.npy", fb.p, fb.n);
  free(fb.p);
  CHECK_OK(re_dataset_open_tokens(pf, NULL, NULL, 50, &ds));
  if (ds) {
    int64_t got[12];
    uint8_t gm[12];
    int32_t gy[3];
    CHECK(re_dataset_get_info(ds)->vocab == 50 && !re_dataset_get_info(ds)->has_labels);
    CHECK_OK(re_dataset_read_tokens(ds, 0, 3, got, gm, gy));
    CHECK(!memcmp(got, ids, sizeof ids) && gm[6] == 1 && gy[0] == -1);
  }
  re_dataset_close(&ds);

  /* refusals: ids */
  CHECK_FAILS(re_dataset_open_tokens(pi, NULL, NULL, 10, &ds), RE_EDATA,
              "ids.npy: sample 1, position 1 (byte 168): id 10 is not below vocab 10");
  int64_t neg[12] = {0, 1, 2, 3, 4, -1};
  CHECK_FAILS(re_dataset_open_tokens(tx_npy("neg.npy", RE_DTYPE_I64, 2, sh2, neg), NULL, NULL, 0, &ds), RE_EDATA,
              "neg.npy: sample 1, position 1 (byte 168): id -1 is negative");
  float fl[12] = {0};
  CHECK_FAILS(re_dataset_open_tokens(tx_npy("float.npy", RE_DTYPE_F32, 2, sh2, fl), NULL, NULL, 0, &ds),
              RE_EUNSUPPORTED, "float.npy: token ids must have an integer dtype, found float32");
  int64_t sh12[1] = {12};
  CHECK_FAILS(re_dataset_open_tokens(tx_npy("flat.npy", RE_DTYPE_I64, 1, sh12, ids), NULL, NULL, 0, &ds), RE_ESHAPE,
              "flat.npy: token ids must be 2-D");
  int64_t sh0[2] = {0, 4};
  CHECK_FAILS(re_dataset_open_tokens(tx_npy("empty.npy", RE_DTYPE_I64, 2, sh0, ids), NULL, NULL, 0, &ds), RE_EDATA,
              "empty.npy: no tokens (shape 0 x 4): an empty corpus");
  /* mask */
  uint8_t m2[12] = {1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1};
  CHECK_FAILS(re_dataset_open_tokens(pi, tx_npy("m2.npy", RE_DTYPE_U8, 2, sh2, m2), NULL, 0, &ds), RE_EDATA,
              "m2.npy: sample 1, position 1 (byte 133): mask value 2 (expected 0 or 1)");
  uint8_t m0[12] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1};
  CHECK_FAILS(re_dataset_open_tokens(pi, tx_npy("m0.npy", RE_DTYPE_U8, 2, sh2, m0), NULL, 0, &ds), RE_EDATA,
              "m0.npy: sample 1: the mask row is all zeros");
  uint8_t mh[12] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1};
  CHECK_FAILS(re_dataset_open_tokens(pi, tx_npy("mh.npy", RE_DTYPE_U8, 2, sh2, mh), NULL, 0, &ds), RE_EDATA,
              "mh.npy: sample 1: the mask is neither right- nor left-padded");
  uint8_t mm[12] = {0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  CHECK_FAILS(re_dataset_open_tokens(pi, tx_npy("mm.npy", RE_DTYPE_U8, 2, sh2, mm), NULL, 0, &ds), RE_EDATA,
              "mm.npy: sample 0: the mask is neither right- nor left-padded");
  int64_t sh43[2] = {4, 3};
  CHECK_FAILS(re_dataset_open_tokens(pi, tx_npy("mshape.npy", RE_DTYPE_U8, 2, sh43, mask), NULL, 0, &ds), RE_ESHAPE,
              "mshape.npy: mask shape 4 x 3, but");
  CHECK_FAILS(re_dataset_open_tokens(pi, tx_npy("mflat.npy", RE_DTYPE_U8, 1, sh12, mask), NULL, 0, &ds), RE_ESHAPE,
              "mflat.npy: the mask must be 2-D");
  /* labels */
  int64_t sh4[1] = {4};
  int32_t l4[4] = {0, 1, 2, 3};
  CHECK_FAILS(re_dataset_open_tokens(pi, NULL, tx_npy("l4.npy", RE_DTYPE_I32, 1, sh4, l4), 0, &ds), RE_ESHAPE,
              "l4.npy: labels must be 1-D with 3 entries");
  int32_t ln[3] = {0, -2, 1};
  CHECK_FAILS(re_dataset_open_tokens(pi, NULL, tx_npy("ln.npy", RE_DTYPE_I32, 1, sh1, ln), 0, &ds), RE_EDATA,
              "ln.npy: label -2 of sample 1 (byte 132) is out of range");
  double ld[3] = {0, 1, 2};
  CHECK_FAILS(re_dataset_open_tokens(pi, NULL, tx_npy("ld.npy", RE_DTYPE_F64, 1, sh1, ld), 0, &ds), RE_EUNSUPPORTED,
              "ld.npy: labels must have an integer dtype");
  CHECK(ds == NULL);

  /* token streams: uint16 .bin, 10 ids cut into samples of 3 (the last id dropped) */
  uint16_t s16[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 65535};
  const char *b16 = fx_write("s16.bin", s16, sizeof s16);
  const char *one[1] = {b16};
  CHECK_OK(re_dataset_open_token_stream(one, 1, "uint16", 3, 0, &ds));
  if (ds) {
    const re_dataset_info *in = re_dataset_get_info(ds);
    CHECK(in->count == 3 && in->seq_len == 3 && in->vocab == 65536 && !in->has_labels);
    int64_t got[9];
    uint8_t gm[9];
    CHECK_OK(re_dataset_read_tokens(ds, 1, 3, got, gm, NULL));
    CHECK(got[0] == 4 && got[5] == 9 && gm[0] == 1 && gm[5] == 1);
  }
  re_dataset_close(&ds);
  CHECK_OK(re_dataset_open_token_stream(one, 1, "uint16", 3, 10, &ds)); /* vocab given: checked on read */
  if (ds) {
    int64_t got[9];
    uint8_t gm[9];
    CHECK_OK(re_dataset_read_tokens(ds, 0, 3, got, gm, NULL));
    re_dataset_close(&ds);
  }
  CHECK_OK(re_dataset_open_token_stream(one, 1, "uint16", 5, 9, &ds));
  if (ds) {
    int64_t got[10];
    uint8_t gm[10];
    CHECK_OK(re_dataset_read_tokens(ds, 0, 1, got, gm, NULL));
    CHECK_FAILS(re_dataset_read_tokens(ds, 1, 2, got, gm, NULL), RE_EDATA,
                "s16.bin: id 8 (byte 16): value 9 is not below vocab 9");
  }
  re_dataset_close(&ds);
  /* uint32 across two files (a sample spans them) and a 1-D .npy */
  uint32_t a32[4] = {100000, 1, 2, 3}, b32[3] = {4, 5, 6};
  int64_t npy_ids[5] = {7, 8, 9, 10, 11}, sh5[1] = {5};
  const char *two[2] = {fx_write("a.bin", a32, sizeof a32), fx_write("b.bin", b32, sizeof b32)};
  CHECK_OK(re_dataset_open_token_stream(two, 2, "uint32", 3, 0, &ds));
  if (ds) {
    int64_t got[6];
    uint8_t gm[6];
    CHECK(re_dataset_get_info(ds)->count == 2 && re_dataset_get_info(ds)->vocab == 100001);
    CHECK_OK(re_dataset_read_tokens(ds, 1, 2, got, gm, NULL));
    CHECK(got[0] == 3 && got[1] == 4 && got[2] == 5);
  }
  re_dataset_close(&ds);
  const char *np1[1] = {tx_npy("stream.npy", RE_DTYPE_I64, 1, sh5, npy_ids)};
  CHECK_OK(re_dataset_open_token_stream(np1, 1, NULL, 2, 0, &ds));
  if (ds) {
    int64_t got[4];
    uint8_t gm[4];
    CHECK(re_dataset_get_info(ds)->count == 2 && re_dataset_get_info(ds)->vocab == 12);
    CHECK_OK(re_dataset_read_tokens(ds, 0, 2, got, gm, NULL));
    CHECK(got[0] == 7 && got[3] == 10);
  }
  re_dataset_close(&ds);
  /* refusals */
  const char *odd[1] = {fx_write("odd.bin", s16, 7)};
  CHECK_FAILS(re_dataset_open_token_stream(odd, 1, "uint16", 2, 0, &ds), RE_EFORMAT,
              "odd.bin: 7 bytes is not a whole number of 2-byte ids (1 bytes left over)");
  const char *odd4[1] = {fx_write("odd4.bin", s16, 6)};
  CHECK_FAILS(re_dataset_open_token_stream(odd4, 1, "uint32", 1, 0, &ds), RE_EFORMAT,
              "odd4.bin: 6 bytes is not a whole number of 4-byte ids");
  CHECK_FAILS(re_dataset_open_token_stream(one, 1, NULL, 2, 0, &ds), RE_EINVAL, "s16.bin: a raw token file needs its dtype");
  CHECK_FAILS(re_dataset_open_token_stream(one, 1, "int8", 2, 0, &ds), RE_EINVAL, "dtype 'int8' is not supported");
  CHECK_FAILS(re_dataset_open_token_stream(np1, 1, "uint16", 2, 0, &ds), RE_EINVAL, "a .npy header gives its own");
  CHECK_FAILS(re_dataset_open_token_stream(one, 1, "uint16", 11, 0, &ds), RE_EDATA,
              "s16.bin: 10 ids, fewer than seq_len 11: no sample");
  const char *p2d[1] = {pi};
  CHECK_FAILS(re_dataset_open_token_stream(p2d, 1, NULL, 2, 0, &ds), RE_ESHAPE, "a token stream is 1-D");
  int64_t sneg[5] = {1, 2, -5, 3, 4};
  const char *pn[1] = {tx_npy("sneg.npy", RE_DTYPE_I64, 1, sh5, sneg)};
  CHECK_FAILS(re_dataset_open_token_stream(pn, 1, NULL, 2, 0, &ds), RE_EDATA,
              "sneg.npy: id 2 (byte 144): value -5 is negative");
  CHECK_FAILS(re_dataset_open_token_stream(one, 1, "uint16", 0, 0, &ds), RE_EINVAL, "seq_len 0 must be positive");
  CHECK(ds == NULL);

  /* an image dataset refuses token reads */
  float xs[6] = {0, 1, 2, 3, 4, 5};
  int64_t sh23[2] = {2, 3};
  CHECK_OK(re_dataset_open_npy(tx_npy("x.npy", RE_DTYPE_F32, 2, sh23, xs), NULL, &ds));
  if (ds) {
    int64_t got[6];
    uint8_t gm[6];
    CHECK(re_dataset_get_info(ds)->tokens == 0);
    CHECK_FAILS(re_dataset_read_tokens(ds, 0, 1, got, gm, NULL), RE_EINVAL, "not token ids: read it with re_dataset_read");
  }
  re_dataset_close(&ds);
  fx_rmdir();
  return check_report();
}
