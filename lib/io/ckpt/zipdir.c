/* Zip central directory reader over an in-memory image; see zipdir.h. */
#include "zipdir.h"

#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* The end of central directory record: the last signature whose comment ends the file. */
static int64_t find_eocd(const uint8_t *buf, int64_t len) {
  if (len < 22)
    return -1;
  int64_t lowest = len - 22 - 65535;
  if (lowest < 0)
    lowest = 0;
  for (int64_t at = len - 22; at >= lowest; at--)
    if (rd32(buf + at) == SIG_EOCD && at + 22 + (int64_t)rd16(buf + at + 20) == len)
      return at;
  return -1;
}

/* Values from the zip64 extra field (id 1) of a central header: each present only
 * when the 32-bit field holds its all-ones marker, in the order usize, csize, offset. */
static re_status zip64_extra(const uint8_t *x, int64_t xlen, const char *label, const char *name, uint64_t *usize,
                             uint64_t *csize, uint64_t *offset, int need_u, int need_c, int need_o) {
  int64_t at = 0;
  while (xlen - at >= 4) {
    uint32_t id = rd16(x + at), sz = rd16(x + at + 2);
    if ((int64_t)sz > xlen - at - 4)
      return re_err(RE_EFORMAT, "%s: member '%s': extra field runs past its header", label, name);
    if (id == 1) {
      const uint8_t *f = x + at + 4;
      int64_t need = 8 * (need_u + need_c + need_o), k = 0;
      if ((int64_t)sz < need)
        return re_err(RE_EFORMAT, "%s: member '%s': zip64 extra field of %u bytes, need %lld", label, name, sz,
                      (long long)need);
      if (need_u)
        *usize = rd64(f + 8 * k++);
      if (need_c)
        *csize = rd64(f + 8 * k++);
      if (need_o)
        *offset = rd64(f + 8 * k++);
      return RE_OK;
    }
    at += 4 + sz;
  }
  if (need_u || need_c || need_o)
    return re_err(RE_EFORMAT, "%s: member '%s': 32-bit size marker without a zip64 extra field", label, name);
  return RE_OK;
}

static int cmp_member(const void *a, const void *b) {
  return strcmp((*(const re_zip_member *const *)a)->name, (*(const re_zip_member *const *)b)->name);
}

re_status re_zipdir_parse(const uint8_t *buf, int64_t len, const char *label, re_zipdir *out) {
  re_status st = RE_OK;
  memset(out, 0, sizeof *out);
  int64_t eocd = find_eocd(buf, len);
  if (eocd < 0)
    return re_err(RE_EFORMAT, "%s: no zip end-of-central-directory record", label);
  const uint8_t *e = buf + eocd;
  uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n_total = rd16(e + 10);
  uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
  int64_t cd_limit = eocd; /* the central directory ends before this */
  if (eocd >= 20 && rd32(buf + eocd - 20) == SIG_LOCATOR64) {
    const uint8_t *l = buf + eocd - 20;
    uint64_t at = rd64(l + 8);
    if (rd32(l + 4) != 0 || rd32(l + 16) != 1)
      return re_err(RE_EUNSUPPORTED, "%s: multi-disk zip archives are not supported", label);
    if (at > (uint64_t)(eocd - 20) || (uint64_t)(eocd - 20) - at < 56 || rd32(buf + at) != SIG_EOCD64)
      return re_err(RE_EFORMAT, "%s: zip64 end record locator points to offset %llu, where there is no record",
                    label, (unsigned long long)at);
    const uint8_t *z = buf + at;
    disk = rd32(z + 16);
    cd_disk = rd32(z + 20);
    n_disk = rd64(z + 24);
    n_total = rd64(z + 32);
    cd_size = rd64(z + 40);
    cd_off = rd64(z + 48);
    cd_limit = (int64_t)at;
  } else if (n_total == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    return re_err(RE_EFORMAT, "%s: zip64 markers in the end record but no zip64 locator", label);
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_total)
    return re_err(RE_EUNSUPPORTED, "%s: multi-disk zip archives are not supported", label);
  if (cd_off > (uint64_t)cd_limit || cd_size > (uint64_t)cd_limit - cd_off)
    return re_err(RE_EFORMAT, "%s: central directory [%llu, +%llu) lies outside the archive (ends at %lld)", label,
                  (unsigned long long)cd_off, (unsigned long long)cd_size, (long long)cd_limit);
  if (n_total > RE_ZIP_MAX_MEMBERS || n_total > cd_size / 46)
    return re_err(RE_EFORMAT, "%s: %llu members cannot fit a central directory of %llu bytes (limit %d)", label,
                  (unsigned long long)n_total, (unsigned long long)cd_size, RE_ZIP_MAX_MEMBERS);
  RE_CHECK(re_calloc((int64_t)n_total + 1, sizeof *out->m, &out->m));
  int64_t at = (int64_t)cd_off, end = (int64_t)(cd_off + cd_size);
  for (uint64_t k = 0; k < n_total; k++) {
    if (end - at < 46 || rd32(buf + at) != SIG_CENTRAL) {
      st = re_err(RE_EFORMAT, "%s: central directory entry %llu at offset %lld is missing or truncated", label,
                  (unsigned long long)k, (long long)at);
      goto done;
    }
    const uint8_t *h = buf + at;
    uint32_t flags = rd16(h + 8), method = rd16(h + 10), nlen = rd16(h + 28), xlen = rd16(h + 30),
             clen = rd16(h + 32), mdisk = rd16(h + 34);
    if ((int64_t)(46 + nlen + xlen + clen) > end - at) {
      st = re_err(RE_EFORMAT, "%s: central directory entry %llu runs past the directory", label,
                  (unsigned long long)k);
      goto done;
    }
    if (memchr(h + 46, 0, nlen)) {
      st = re_err(RE_EFORMAT, "%s: member name with a NUL byte (entry %llu)", label, (unsigned long long)k);
      goto done;
    }
    re_zip_member *m = &out->m[out->count];
    RE_CHECK(re_malloc(nlen + 1, 1, &m->name));
    memcpy(m->name, h + 46, nlen);
    m->name[nlen] = '\0';
    out->count++;
    uint64_t csize = rd32(h + 20), usize = rd32(h + 24), lho = rd32(h + 42);
    RE_CHECK(zip64_extra(h + 46 + nlen, xlen, label, m->name, &usize, &csize, &lho, usize == 0xFFFFFFFFu,
                         csize == 0xFFFFFFFFu, lho == 0xFFFFFFFFu));
    if (flags & 0x41u) {
      st = re_err(RE_EUNSUPPORTED, "%s: member '%s' is encrypted", label, m->name);
      goto done;
    }
    if (mdisk != 0 && mdisk != 0xFFFF) {
      st = re_err(RE_EUNSUPPORTED, "%s: member '%s' lies on another disk", label, m->name);
      goto done;
    }
    if (csize > INT64_MAX || usize > INT64_MAX || lho > (uint64_t)cd_off || cd_off - lho < 30) {
      st = re_err(RE_EFORMAT, "%s: member '%s': local header offset %llu is not inside the archive data", label,
                  m->name, (unsigned long long)lho);
      goto done;
    }
    const uint8_t *lh = buf + lho;
    if (rd32(lh) != SIG_LOCAL) {
      st = re_err(RE_EFORMAT, "%s: member '%s': no local header at offset %llu", label, m->name,
                  (unsigned long long)lho);
      goto done;
    }
    uint32_t lnlen = rd16(lh + 26), lxlen = rd16(lh + 28);
    uint64_t data = lho + 30 + lnlen + lxlen;
    if (lnlen != nlen || data > (uint64_t)cd_off || memcmp(lh + 30, m->name, nlen) != 0) {
      st = re_err(RE_EFORMAT, "%s: member '%s': local header at offset %llu does not match the central directory",
                  label, m->name, (unsigned long long)lho);
      goto done;
    }
    if (rd16(lh + 8) != method) {
      st = re_err(RE_EFORMAT, "%s: member '%s': compression method differs between local and central headers",
                  label, m->name);
      goto done;
    }
    if (csize > (uint64_t)cd_off - data) {
      st = re_err(RE_EFORMAT, "%s: member '%s': %llu bytes of data at offset %llu run into the central directory "
                  "at %llu", label, m->name, (unsigned long long)csize, (unsigned long long)data,
                  (unsigned long long)cd_off);
      goto done;
    }
    if (method == 0 && csize != usize) {
      st = re_err(RE_EFORMAT, "%s: stored member '%s' has compressed size %llu != size %llu", label, m->name,
                  (unsigned long long)csize, (unsigned long long)usize);
      goto done;
    }
    m->method = (int)method;
    m->crc32 = rd32(h + 16);
    m->csize = (int64_t)csize;
    m->usize = (int64_t)usize;
    m->data_offset = (int64_t)data;
    at += 46 + nlen + xlen + clen;
  }
  /* a name index; duplicate names would make lookups ambiguous */
  RE_CHECK(re_malloc(out->count + 1, sizeof *out->byname, &out->byname));
  for (int64_t k = 0; k < out->count; k++)
    out->byname[k] = &out->m[k];
  qsort(out->byname, (size_t)out->count, sizeof *out->byname, cmp_member);
  for (int64_t k = 1; k < out->count; k++)
    if (!strcmp(out->byname[k - 1]->name, out->byname[k]->name)) {
      st = re_err(RE_EFORMAT, "%s: member '%s' appears twice", label, out->byname[k]->name);
      goto done;
    }
done:
  if (st != RE_OK)
    re_zipdir_free(out);
  return st;
}

const re_zip_member *re_zipdir_find(const re_zipdir *z, const char *name) {
  int64_t lo = 0, hi = z->count;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(z->byname[mid]->name, name);
    if (c == 0)
      return z->byname[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

void re_zipdir_free(re_zipdir *z) {
  if (!z)
    return;
  for (int64_t k = 0; k < z->count; k++)
    free(z->m[k].name);
  free(z->m);
  free(z->byname);
  memset(z, 0, sizeof *z);
}
