/* PyTorch checkpoints written by torch.save (the zip format, default since 1.6):
 *   <prefix>/data.pkl     the pickled object, storages replaced by persistent ids
 *   <prefix>/data/<key>   raw bytes of each storage
 *   <prefix>/byteorder    "little" or "big" (optional; absent means little)
 * <prefix> is the archive's top folder (torch uses the file's stem, or "archive").
 *
 * The zip is read twice over the same mmap: our own validated central directory
 * (zipdir.c) locates stored members so tensors point into the mapping without a
 * copy, and libarchive reads (and CRC-checks) data.pkl, byteorder and any
 * compressed member. data.pkl goes through the restricted unpickler (pickle.c).
 *
 * State dict selection (re_ckpt_options.state_dict_key == NULL):
 *   1. the top-level object is a dict with at least one tensor value: it is the state dict;
 *   2. otherwise the value under "state_dict", "model" or "model_state_dict" (first
 *      present, in that order) if it is a dict of tensors;
 *   3. otherwise the first top-level value (in file order) that is a dict of tensors.
 * Scalars (int, float, str, bool) in the top-level dict beside the selected one,
 * and inside it, become metadata. Other values (lists, nested dicts, None) are
 * skipped. A leading "module." (DataParallel) is stripped from tensor names
 * unless keep_module_prefix is set. */
#include "torch_ckpt.h"
#include "ckpt_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "zipdir.h"

typedef struct tload {
  re_ckpt *c;
  const uint8_t *buf;
  re_zipdir z;
  char prefix[1024];
  const re_zip_member *pkl;
  uint8_t *pkl_bytes; /* data.pkl as read by libarchive */
  int64_t pkl_len;
  const uint8_t **member_data; /* z.count: data of each member (into buf, or an owned copy) */
  int swap;
} tload;

static int host_is_big_endian(void) {
  const uint16_t one = 1;
  uint8_t b;
  memcpy(&b, &one, 1);
  return b == 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* "<p>/version" or "<p>/data/<key>": members only torch.save writes besides the pickle. */
static int is_torch_marker(const char *n) {
  const char *slash = strchr(n, '/');
  return slash && slash != n && (ends_with(n, "/version") || strstr(n, "/data/"));
}

/* The single "<prefix>/data.pkl" member with a one-component prefix. */
static re_status find_prefix(tload *t) {
  const re_zip_member *found = NULL;
  for (int64_t k = 0; k < t->z.count; k++) {
    const char *n = t->z.m[k].name;
    size_t len = strlen(n);
    if (len <= 9 || strcmp(n + len - 9, "/data.pkl") != 0)
      continue;
    const char *slash = strchr(n, '/');
    if (slash != n + len - 9)
      continue; /* nested deeper: not torch's layout */
    if (found)
      return re_err(RE_EFORMAT, "%s: two pickles '%s' and '%s' in one archive", t->c->path, found->name, n);
    found = &t->z.m[k];
  }
  if (!found) {
    /* say why: a pickle too deep, or torch.save members around a missing pickle */
    const char *deep = NULL, *marker = NULL;
    for (int64_t k = 0; k < t->z.count; k++) {
      const char *n = t->z.m[k].name;
      if (!deep && (ends_with(n, "/data.pkl") || !strcmp(n, "data.pkl")))
        deep = n;
      else if (!marker && is_torch_marker(n))
        marker = n;
    }
    if (deep)
      return re_err(RE_EFORMAT, "%s: zip archive without a '<prefix>/data.pkl' member: '%s' is not one (the "
                    "prefix must be a single folder)", t->c->path, deep);
    if (marker)
      return re_err(RE_EFORMAT, "%s: zip archive without a '<prefix>/data.pkl' member: '%s' belongs to a "
                    "torch.save archive, but '%.*s/data.pkl' is missing", t->c->path, marker,
                    (int)(strchr(marker, '/') - marker), marker);
    return re_err(RE_EFORMAT, "%s: zip archive without a '<prefix>/data.pkl' member (not a torch.save file)",
                  t->c->path);
  }
  size_t plen = strlen(found->name) - 9;
  if (plen >= sizeof t->prefix)
    return re_err(RE_EFORMAT, "%s: archive prefix longer than %zu bytes", t->c->path, sizeof t->prefix - 1);
  memcpy(t->prefix, found->name, plen);
  t->prefix[plen] = '\0';
  t->pkl = found;
  return RE_OK;
}

static int has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* Read the current libarchive entry (expected `want` bytes) into a new buffer. */
static re_status read_entry(tload *t, struct archive *ar, const char *name, int64_t want, uint8_t **out) {
  uint8_t *b;
  *out = NULL;
  RE_TRY(re_malloc(want + 1, 1, &b));
  int64_t got = 0;
  for (;;) {
    la_ssize_t r = archive_read_data(ar, b + got, (size_t)(want + 1 - got));
    if (r < 0) {
      re_status st = re_err(RE_EFORMAT, "%s[%s]: cannot read member: %s", t->c->path, name, archive_error_string(ar));
      free(b);
      return st;
    }
    if (r == 0)
      break;
    got += r;
    if (got > want)
      break;
  }
  if (got != want) {
    free(b);
    return re_err(RE_EFORMAT, "%s[%s]: member holds %s%lld bytes, the central directory says %lld", t->c->path, name,
                  got > want ? "more than " : "", (long long)(got > want ? want : got), (long long)want);
  }
  *out = b;
  return RE_OK;
}

/* One libarchive pass: every entry must be in our directory with the same size;
 * read data.pkl, byteorder and compressed storages. */
static re_status read_members(tload *t, int64_t len) {
  re_status st = RE_OK;
  struct archive *ar = archive_read_new();
  struct archive_entry *e;
  char data_dir[1100], byteorder[1100];
  snprintf(data_dir, sizeof data_dir, "%s/data/", t->prefix);
  snprintf(byteorder, sizeof byteorder, "%s/byteorder", t->prefix);
  if (!ar)
    return re_err(RE_ENOMEM, "%s: cannot allocate a libarchive reader", t->c->path);
  archive_read_support_format_zip_seekable(ar);
  if (archive_read_open_memory(ar, t->buf, (size_t)len) != ARCHIVE_OK) {
    st = re_err(RE_EFORMAT, "%s: unreadable zip archive: %s", t->c->path, archive_error_string(ar));
    goto done;
  }
  for (;;) {
    int r = archive_read_next_header(ar, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      st = re_err(RE_EFORMAT, "%s: corrupt zip archive: %s", t->c->path, archive_error_string(ar));
      goto done;
    }
    const char *name = archive_entry_pathname(e);
    const re_zip_member *m = name ? re_zipdir_find(&t->z, name) : NULL;
    if (!m) {
      st = re_err(RE_EFORMAT, "%s: zip member '%s' is not in the central directory", t->c->path,
                  name ? name : "(unnamed)");
      goto done;
    }
    /* deflate cannot expand more than ~1032:1; larger claims are bombs or lies */
    int needed = m == t->pkl || !strcmp(name, byteorder) || has_prefix(name, data_dir);
    if (needed && m->method != 0 && (m->method != 8 || m->usize / 1032 > m->csize + 1024)) {
      st = re_err(m->method == 8 ? RE_EFORMAT : RE_EUNSUPPORTED, "%s[%s]: %s", t->c->path, name,
                  m->method == 8 ? "deflated size claims more than deflate can expand to" :
                  "compression other than stored or deflate");
      goto done;
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) != m->usize) {
      st = re_err(RE_EFORMAT, "%s[%s]: sizes disagree between zip headers", t->c->path, name);
      goto done;
    }
    int64_t idx = m - t->z.m;
    if (m == t->pkl) {
      RE_CHECK(read_entry(t, ar, name, m->usize, &t->pkl_bytes));
      t->pkl_len = m->usize;
    } else if (!strcmp(name, byteorder)) {
      uint8_t *b = NULL;
      if (m->usize > 16) {
        st = re_err(RE_EFORMAT, "%s[%s]: expected 'little' or 'big'", t->c->path, name);
        goto done;
      }
      RE_CHECK(read_entry(t, ar, name, m->usize, &b));
      b[m->usize] = '\0';
      int big = !strcmp((char *)b, "big") || !strcmp((char *)b, "big\n");
      int little = !strcmp((char *)b, "little") || !strcmp((char *)b, "little\n");
      free(b);
      if (!big && !little) {
        st = re_err(RE_EFORMAT, "%s[%s]: expected 'little' or 'big'", t->c->path, name);
        goto done;
      }
      t->swap = big != host_is_big_endian();
    } else if (has_prefix(name, data_dir) && m->method != 0) {
      uint8_t *b = NULL;
      RE_CHECK(read_entry(t, ar, name, m->usize, &b));
      RE_CHECK(re_ckpt_own(t->c, b));
      t->member_data[idx] = b;
    }
  }
  if (!t->pkl_bytes)
    st = re_err(RE_EFORMAT, "%s: libarchive did not list '%s'", t->c->path, t->pkl->name);
done:
  archive_read_free(ar);
  return st;
}

/* ---- from pickled objects to the tensor table ---------------------------- */

static int is_scalar(const re_pk_obj *o) {
  return o->kind == RE_PK_INT || o->kind == RE_PK_FLOAT || o->kind == RE_PK_STR || o->kind == RE_PK_BOOL;
}

static int is_tensor_dict(const re_pk_obj *o) {
  if (o->kind != RE_PK_DICT)
    return 0;
  for (int64_t k = 0; k < o->n; k++)
    if (o->items[2 * k + 1]->kind == RE_PK_TENSOR)
      return 1;
  return 0;
}

static const re_pk_obj *dict_get(const re_pk_obj *d, const char *key) {
  for (int64_t k = 0; k < d->n; k++) {
    const re_pk_obj *kk = d->items[2 * k];
    if (kk->kind == RE_PK_STR && !strcmp(kk->s, key) && (int64_t)strlen(kk->s) == kk->len)
      return d->items[2 * k + 1];
  }
  return NULL;
}

/* Shortest "%.Ng" that reads back as the same double, like Python's repr. */
static void format_double(double v, char *buf, size_t cap) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      return;
  }
}

static re_status add_scalar(re_ckpt *c, const re_pk_obj *k, const re_pk_obj *v) {
  char key[64], val[64];
  const char *ks = key, *vs = val;
  if (k->kind == RE_PK_STR)
    ks = k->s;
  else if (k->kind == RE_PK_INT)
    snprintf(key, sizeof key, "%lld", (long long)k->i);
  else
    return RE_OK;
  switch (v->kind) {
  case RE_PK_INT: snprintf(val, sizeof val, "%lld", (long long)v->i); break;
  case RE_PK_FLOAT: format_double(v->f, val, sizeof val); break;
  case RE_PK_BOOL: vs = v->i ? "True" : "False"; break;
  case RE_PK_STR: vs = v->s; break;
  default: return RE_OK;
  }
  return re_ckpt_add_metadata(c, ks, vs);
}

static re_status add_tensor(tload *t, const char *name, const re_pk_tensor *pt) {
  re_ckpt *c = t->c;
  const re_pk_obj *s = pt->storage;
  char mname[2200];
  if (strlen(t->prefix) + 6 + (size_t)s->len >= sizeof mname)
    return re_err(RE_EFORMAT, "%s: tensor '%s': storage key of %lld bytes is too long", c->path, name,
                  (long long)s->len);
  snprintf(mname, sizeof mname, "%s/data/%s", t->prefix, s->s);
  const re_zip_member *m = re_zipdir_find(&t->z, mname);
  if (!m)
    return re_err(RE_EFORMAT, "%s: tensor '%s': its storage '%s' has no member '%s'", c->path, name, s->s, mname);
  int64_t sbytes;
  if (re_mul_i64(s->i, re_dtype_size(s->dtype), &sbytes) != RE_OK)
    return re_err(RE_EFORMAT, "%s: tensor '%s': storage '%s' size overflows", c->path, name, s->s);
  if (sbytes != m->usize)
    return re_err(RE_EFORMAT, "%s: tensor '%s': storage '%s' should hold %lld %s elements (%lld bytes) but '%s' has "
                  "%lld bytes", c->path, name, s->s, (long long)s->i, re_dtype_name(s->dtype), (long long)sbytes,
                  mname, (long long)m->usize);
  const uint8_t *data = t->member_data[m - t->z.m];
  if (!data) {
    if (m->method != 0)
      return re_err(RE_EUNSUPPORTED, "%s[%s]: compression method %d", c->path, mname, m->method);
    data = t->buf + m->data_offset;
  }
  re_tensor_loc loc = {0};
  loc.base = data;
  loc.storage_bytes = sbytes;
  loc.offset = pt->offset;
  for (int d = 0; d < pt->ndim; d++)
    loc.strides[d] = pt->strides[d];
  loc.swap = t->swap && re_dtype_size(pt->dtype) > 1;
  return re_ckpt_add(c, name, pt->dtype, pt->ndim, pt->shape, &loc);
}

static re_status add_state_dict(tload *t, const re_pk_obj *sd, const re_ckpt_options *opt) {
  char key[64];
  for (int64_t k = 0; k < sd->n; k++) {
    const re_pk_obj *kk = sd->items[2 * k], *v = sd->items[2 * k + 1];
    if (v->kind != RE_PK_TENSOR) {
      if (is_scalar(v))
        RE_TRY(add_scalar(t->c, kk, v));
      continue;
    }
    const char *name;
    if (kk->kind == RE_PK_STR) {
      if ((int64_t)strlen(kk->s) != kk->len)
        return re_err(RE_EFORMAT, "%s: a tensor name contains a NUL character", t->c->path);
      name = kk->s;
    } else if (kk->kind == RE_PK_INT) {
      snprintf(key, sizeof key, "%lld", (long long)kk->i);
      name = key;
    } else {
      return re_err(RE_EFORMAT, "%s: state_dict key of type %s (expected str)", t->c->path, re_pk_kind_name(kk->kind));
    }
    if (!opt->keep_module_prefix && !strncmp(name, "module.", 7))
      name += 7;
    RE_TRY(add_tensor(t, name, v->t));
  }
  return RE_OK;
}

/* Comma-separated string keys of a dict, for messages. */
static void list_keys(const re_pk_obj *d, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  for (int64_t k = 0; k < d->n && at + 8 < cap; k++) {
    const re_pk_obj *kk = d->items[2 * k];
    int w = snprintf(buf + at, cap - at, "%s'%.40s'", k ? ", " : "", kk->kind == RE_PK_STR ? kk->s : "?");
    if (w < 0 || (size_t)w >= cap - at) {
      snprintf(buf + (cap > 4 ? cap - 4 : 0), 4, "...");
      return;
    }
    at += (size_t)w;
  }
}

static re_status select_and_add(tload *t, const re_pk_obj *root, const re_ckpt_options *opt) {
  re_ckpt *c = t->c;
  char keys[512];
  if (root->kind == RE_PK_TENSOR) { /* torch.save(tensor): one tensor named after the file */
    const char *base = strrchr(c->path, '/');
    char name[256];
    snprintf(name, sizeof name, "%s", base ? base + 1 : c->path);
    char *dot = strrchr(name, '.');
    if (dot && dot != name)
      *dot = '\0';
    return add_tensor(t, name, root->t);
  }
  if (root->kind != RE_PK_DICT)
    return re_err(RE_EFORMAT, "%s: the checkpoint holds a %s; expected a state_dict (a dict of tensors) or a dict "
                  "containing one", c->path, re_pk_kind_name(root->kind));
  const re_pk_obj *sd = NULL;
  if (opt->state_dict_key) {
    sd = dict_get(root, opt->state_dict_key);
    list_keys(root, keys, sizeof keys);
    if (!sd)
      return re_err(RE_EINVAL, "%s: no key '%s' at the top level (keys: %s)", c->path, opt->state_dict_key, keys);
    if (!is_tensor_dict(sd))
      return re_err(RE_EINVAL, "%s: '%s' holds a %s without tensors, not a state_dict", c->path, opt->state_dict_key,
                    re_pk_kind_name(sd->kind));
  } else if (is_tensor_dict(root)) {
    sd = root;
  } else {
    static const char *preferred[] = {"state_dict", "model", "model_state_dict"};
    for (size_t k = 0; k < 3 && !sd; k++) {
      const re_pk_obj *v = dict_get(root, preferred[k]);
      if (v && is_tensor_dict(v))
        sd = v;
    }
    for (int64_t k = 0; k < root->n && !sd; k++)
      if (is_tensor_dict(root->items[2 * k + 1]))
        sd = root->items[2 * k + 1];
    if (!sd) {
      list_keys(root, keys, sizeof keys);
      return re_err(RE_EFORMAT, "%s: no state_dict found: no top-level value is a dict of tensors (keys: %s)",
                    c->path, keys);
    }
  }
  if (sd != root)
    for (int64_t k = 0; k < root->n; k++)
      if (is_scalar(root->items[2 * k + 1]))
        RE_TRY(add_scalar(c, root->items[2 * k], root->items[2 * k + 1]));
  return add_state_dict(t, sd, opt);
}

re_status re_torch_parse(re_ckpt *c, const uint8_t *buf, int64_t len, const re_ckpt_options *opt) {
  re_ckpt_options defaults = {0};
  re_status st = RE_OK;
  re_pickle *pk = NULL;
  tload t;
  memset(&t, 0, sizeof t);
  t.c = c;
  t.buf = buf;
  if (!opt)
    opt = &defaults;
  RE_CHECK(re_zipdir_parse(buf, len, c->path, &t.z));
  RE_CHECK(find_prefix(&t));
  RE_CHECK(re_calloc(t.z.count + 1, sizeof *t.member_data, &t.member_data));
  RE_CHECK(read_members(&t, len));
  char label[1200];
  snprintf(label, sizeof label, "%s[%s]", c->path, t.pkl->name);
  RE_CHECK(re_pickle_load(t.pkl_bytes, t.pkl_len, label, &pk));
  RE_CHECK(select_and_add(&t, re_pickle_root(pk), opt));
done:
  re_pickle_free(&pk);
  free(t.pkl_bytes);
  free(t.member_data);
  re_zipdir_free(&t.z);
  return st;
}

/* ---- the reader entry ------------------------------------------------- */

/* A zip is a torch.save archive when a member is named like one: "data.pkl" at any
 * depth, or "<p>/version" or "<p>/data/<key>" in an archive without .npy members
 * (an .npz could hold "<p>/data/x.npy"). Deciding by content, not by the name of the
 * file, means an archive that lost its pickle is refused naming it instead of being
 * read as an empty .npz. */
static re_status zip_is_torch(const char *path, int *match) {
  struct archive *ar = archive_read_new();
  if (!ar)
    return re_err(RE_ENOMEM, "%s: cannot allocate a libarchive reader", path);
  archive_read_support_format_zip_seekable(ar);
  if (re_check_regular(path) != RE_OK) {
    archive_read_free(ar);
    return RE_EIO;
  }
  if (archive_read_open_filename(ar, path, 1 << 16) != ARCHIVE_OK) {
    re_status st = re_err(RE_EFORMAT, "%s: unreadable zip archive: %s", path, archive_error_string(ar));
    archive_read_free(ar);
    return st;
  }
  struct archive_entry *e;
  int pickle = 0, marker = 0, npy = 0;
  while (!pickle && archive_read_next_header(ar, &e) == ARCHIVE_OK) {
    const char *n = archive_entry_pathname(e);
    if (!n)
      continue;
    pickle = ends_with(n, "/data.pkl") || !strcmp(n, "data.pkl");
    marker |= is_torch_marker(n);
    npy |= ends_with(n, ".npy");
  }
  archive_read_free(ar);
  *match = pickle || (marker && !npy);
  return RE_OK;
}

static re_status torch_probe(const re_ckpt_probe *p, int *match) {
  *match = 0;
  if (p->is_dir)
    return RE_OK;
  if (p->nhead >= 2 && p->head[0] == 0x80) { /* a bare pickle: refused by torch_open */
    *match = 1;
    return RE_OK;
  }
  if (p->nhead >= 4 && !memcmp(p->head, "PK\x03\x04", 4))
    return zip_is_torch(p->path, match);
  return RE_OK;
}

static re_status torch_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  re_ckpt *c = NULL;
  *out = NULL;
  RE_TRY(re_ckpt_alloc(path, RE_CKPT_TORCH, &c));
  re_status st = re_ckpt_map_file(c);
  if (st == RE_OK && ((const uint8_t *)c->map)[0] == 0x80) /* torch.save(..., _use_new_zipfile_serialization=False) */
    st = re_err(RE_EUNSUPPORTED, "%s: legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with torch.save in a "
                "current PyTorch or convert it to safetensors", path);
  if (st == RE_OK)
    st = re_torch_parse(c, (const uint8_t *)c->map, c->map_len, opt);
  if (st != RE_OK) {
    re_ckpt_close(&c);
    return st;
  }
  *out = c;
  return RE_OK;
}

const re_ckpt_reader re_ckpt_reader_torch = {"pytorch", torch_probe, torch_open};
