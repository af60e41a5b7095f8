/* WebDataset shards: tar archives (plain, gzip or zstd, read with libarchive as
 * a stream) in which a sample is a run of consecutive members sharing a key. The
 * key of `dir/abc.seg.png` is `dir/abc` (the path up to the first dot of the
 * basename) and its extension `seg.png`, as in the webdataset library. Members
 * whose basename has no dot, or starts with one, belong to no sample and are
 * skipped; so are directories. Links, devices and FIFOs are refused (never
 * followed). Member names are only compared, never used as paths.
 *
 * Open makes one pass over every shard: it counts the samples per shard, parses
 * every label and the header of every input (PNG chunks before the image data,
 * .npy header) and checks that all samples share one geometry. Reads then
 * decode inputs while streaming: a read continues from the current archive
 * position when possible and restarts only the shard that holds its first
 * sample otherwise.
 *
 * Text shards (re_dataset_open_wds_text): the `.txt` member of each sample is a
 * document for the sequencer (ds_seq.c); the scan checks it is UTF-8 and hands
 * it over (pack mode counts its tokens), reads fetch it again from the stream. */
#include "ds_internal.h"
#include "ds_seq.h"

#include "repeval/npy.h"
#include "repeval/png.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WDS_MAX_MEMBER (INT64_C(1) << 30) /* larger members are refused */
#define WDS_MAX_LABEL_BYTES 256
#define WDS_MAX_SAMPLE_MEMBERS 256

enum { IN_PNG, IN_NPY, IN_TXT };
enum { MODE_SCAN, MODE_SKIP, MODE_READ };

typedef struct wds_shard {
  char *name;
  int64_t first, count;
} wds_shard;

typedef struct wds_sample {
  int have_input, have_label;
  char *input_member; /* name of the input member (owned) */
  int64_t input_len;  /* bytes of input data in the dataset's buffer (SCAN/READ) */
  char label[WDS_MAX_LABEL_BYTES + 1];
  char *label_member; /* owned */
  char **exts;        /* extensions seen so far (owned), for duplicate checks */
  int nexts;
} wds_sample;

typedef struct wds_ds {
  wds_shard *shards;
  int nshards;
  const void *mem; /* the in-memory shard, or NULL */
  int64_t mem_len;
  char *input_ext, *label_ext;
  int kind;
  int32_t *labels; /* count (has_labels) */
  int64_t count, labels_cap;
  /* geometry, identical for every sample */
  int channels, height, width;
  int64_t sample_dim;
  re_dtype npy_dtype;
  int npy_ndim;
  int64_t npy_shape[RE_NPY_MAX_DIMS];
  /* stream state */
  struct archive *ar;
  int shard;             /* shard of ar */
  int64_t next;          /* global index of the next sample ar yields */
  struct archive_entry *pending; /* header read, not yet consumed (valid until the next header call) */
  int at_eof;            /* ar reported the end of the archive */
  char *key;             /* key of the sample being assembled */
  int64_t key_cap;
  uint8_t *buf;          /* input member data */
  int64_t buf_cap;
  wds_sample s;
  /* text shards */
  re_ds_seq *seq;       /* during the scan only (borrowed) */
  int64_t *doc_sample;  /* sample of document k (blank texts give no document) */
  int64_t ndocs, docs_cap;
} wds_ds;

/* ---- archive stream ---------------------------------------------------- */

static void stream_close(wds_ds *d) {
  if (d->ar)
    archive_read_free(d->ar);
  d->ar = NULL;
  d->pending = NULL;
  d->at_eof = 0;
  d->shard = -1;
}

static re_status stream_open(wds_ds *d, int s) {
  stream_close(d);
  const char *name = d->shards[s].name;
  if (!d->mem)
    RE_TRY(re_check_regular(name));
  struct archive *ar = archive_read_new();
  if (!ar)
    return re_err(RE_ENOMEM, "%s: cannot allocate a tar reader", name);
  archive_read_support_format_tar(ar);
  archive_read_support_filter_none(ar);
  archive_read_support_filter_gzip(ar);
  archive_read_support_filter_zstd(ar);
  int r = d->mem ? archive_read_open_memory(ar, d->mem, (size_t)d->mem_len)
                 : archive_read_open_filename(ar, name, 1 << 16);
  if (r != ARCHIVE_OK) {
    re_status st = re_err(RE_EFORMAT, "%s: not a readable tar shard (.tar, .tar.gz, .tar.zst): %s", name,
                          archive_error_string(ar));
    archive_read_free(ar);
    return st;
  }
  d->ar = ar;
  d->shard = s;
  d->next = d->shards[s].first;
  return RE_OK;
}

static void sample_reset(wds_sample *s) {
  for (int k = 0; k < s->nexts; k++)
    free(s->exts[k]);
  free(s->exts);
  free(s->input_member);
  free(s->label_member);
  memset(s, 0, sizeof *s);
}

/* Read the data of the current member into d->buf (grown with the data actually
 * delivered, never beyond `declared`). */
static re_status read_data(wds_ds *d, const char *shard, const char *member, int64_t declared, int64_t *len) {
  int64_t n = 0;
  for (;;) {
    if (n == d->buf_cap) { /* n <= declared here, so this always grows */
      int64_t want = d->buf_cap ? d->buf_cap * 2 : 1 << 16;
      if (want > declared + 1) /* one spare byte detects data beyond the declared size */
        want = declared + 1;
      RE_TRY(re_realloc(&d->buf, want, 1));
      d->buf_cap = want;
    }
    la_ssize_t r = archive_read_data(d->ar, d->buf + n, (size_t)(d->buf_cap - n));
    if (r < 0)
      return re_err(RE_EFORMAT, "%s: member '%s': data unreadable after %lld bytes: %s", shard, member,
                    (long long)n, archive_error_string(d->ar));
    if (r == 0)
      break;
    n += r;
    if (n > declared)
      return re_err(RE_EFORMAT, "%s: member '%s': more data than the %lld bytes its header declares", shard,
                    member, (long long)declared);
  }
  if (n != declared)
    return re_err(RE_EFORMAT, "%s: member '%s': %lld bytes of data, its header declares %lld", shard, member,
                  (long long)n, (long long)declared);
  *len = n;
  return RE_OK;
}

/* Read a small label member into s->label (NUL-terminated). */
static re_status read_label(wds_ds *d, const char *shard, const char *member, int64_t declared) {
  if (declared > WDS_MAX_LABEL_BYTES)
    return re_err(RE_EFORMAT, "%s: member '%s': a label of %lld bytes (at most %d)", shard, member,
                  (long long)declared, WDS_MAX_LABEL_BYTES);
  int64_t n = 0;
  for (;;) {
    la_ssize_t r = archive_read_data(d->ar, d->s.label + n, (size_t)(WDS_MAX_LABEL_BYTES - n));
    if (r < 0)
      return re_err(RE_EFORMAT, "%s: member '%s': data unreadable: %s", shard, member, archive_error_string(d->ar));
    if (r == 0)
      break;
    n += r;
    if (n >= WDS_MAX_LABEL_BYTES)
      break;
  }
  if (n != declared)
    return re_err(RE_EFORMAT, "%s: member '%s': %lld bytes of data, its header declares %lld", shard, member,
                  (long long)n, (long long)declared);
  d->s.label[n] = '\0';
  return RE_OK;
}

static const char *filetype_name(int t) {
  switch (t) {
  case AE_IFLNK: return "symbolic link";
  case AE_IFCHR: return "character device";
  case AE_IFBLK: return "block device";
  case AE_IFIFO: return "FIFO";
  case AE_IFSOCK: return "socket";
  default: return "special file";
  }
}

/* Assemble the next sample of the open shard into d->s (and d->key). *eof is set
 * when the shard has no more samples. MODE_SKIP reads no data; MODE_READ reads
 * the input only; MODE_SCAN the input and the label. */
static re_status next_sample(wds_ds *d, int mode, int *eof) {
  const char *shard = d->shards[d->shard].name;
  int started = 0;
  sample_reset(&d->s);
  *eof = 0;
  for (;;) {
    struct archive_entry *e = d->pending;
    if (!e) {
      int r = d->at_eof ? ARCHIVE_EOF : archive_read_next_header(d->ar, &e);
      if (r == ARCHIVE_EOF) {
        d->at_eof = 1;
        if (!started)
          *eof = 1;
        return RE_OK;
      }
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return re_err(RE_EFORMAT, "%s: corrupt tar %s%s%s: %s", shard, started ? "after member of sample '" : "",
                      started ? d->key : "", started ? "'" : "header", archive_error_string(d->ar));
      d->pending = e;
    }
    const char *name = archive_entry_pathname(e);
    if (!name)
      return re_err(RE_EFORMAT, "%s: a tar member without a readable name", shard);
    int type = archive_entry_filetype(e);
    const char *target = archive_entry_hardlink(e);
    if (target)
      return re_err(RE_EUNSUPPORTED, "%s: member '%s' is a hard link (to '%s'); links are refused", shard, name,
                    target);
    if (type == AE_IFDIR) {
      d->pending = NULL;
      continue;
    }
    if (type != AE_IFREG) {
      const char *to = type == AE_IFLNK ? archive_entry_symlink(e) : NULL;
      return re_err(RE_EUNSUPPORTED, "%s: member '%s' is a %s%s%s%s; only regular files are accepted", shard, name,
                    filetype_name(type), to ? " (to '" : "", to ? to : "", to ? "')" : "");
    }
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    if (!dot || dot == base) { /* not part of any sample */
      d->pending = NULL;
      continue;
    }
    int64_t klen = dot - name;
    const char *ext = dot + 1;
    if (started && ((int64_t)strlen(d->key) != klen || memcmp(d->key, name, (size_t)klen) != 0))
      return RE_OK; /* the next sample begins: keep this header pending */
    d->pending = NULL;
    if (!started) {
      if (klen + 1 > d->key_cap) {
        RE_TRY(re_realloc(&d->key, klen + 1, 1));
        d->key_cap = klen + 1;
      }
      memcpy(d->key, name, (size_t)klen);
      d->key[klen] = '\0';
      started = 1;
    }
    for (int k = 0; k < d->s.nexts; k++)
      if (!strcmp(d->s.exts[k], ext))
        return re_err(RE_EFORMAT, "%s: member '%s': sample '%s' already has a '.%s' member", shard, name, d->key,
                      ext);
    if (d->s.nexts >= WDS_MAX_SAMPLE_MEMBERS)
      return re_err(RE_EFORMAT, "%s: member '%s': sample '%s' has more than %d members", shard, name, d->key,
                    WDS_MAX_SAMPLE_MEMBERS);
    RE_TRY(re_realloc(&d->s.exts, d->s.nexts + 1, sizeof *d->s.exts));
    d->s.exts[d->s.nexts] = NULL;
    RE_TRY(re_strdup(ext, &d->s.exts[d->s.nexts]));
    d->s.nexts++;
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : WDS_MAX_MEMBER;
    if (size < 0 || size > WDS_MAX_MEMBER)
      return re_err(RE_EFORMAT, "%s: member '%s' declares %lld bytes (the limit is 1 GiB)", shard, name,
                    (long long)size);
    if (!strcmp(ext, d->input_ext)) {
      d->s.have_input = 1;
      RE_TRY(re_strdup(name, &d->s.input_member));
      if (mode != MODE_SKIP)
        RE_TRY(read_data(d, shard, name, size, &d->s.input_len));
    } else if (d->label_ext && !strcmp(ext, d->label_ext)) {
      d->s.have_label = 1;
      RE_TRY(re_strdup(name, &d->s.label_member));
      if (mode == MODE_SCAN)
        RE_TRY(read_label(d, shard, name, size));
    }
  }
}

/* ---- labels and geometry ----------------------------------------------- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* ASCII decimal integer with optional surrounding whitespace, 0 .. INT32_MAX
 * (locale-independent). */
static re_status parse_label(const char *shard, const char *member, const char *txt, int32_t *out) {
  const char *p = txt;
  while (*p && is_space(*p))
    p++;
  if (*p == '+')
    p++;
  if (!is_digit(*p))
    return re_err(RE_EFORMAT, "%s: member '%s': label \"%.40s\" is not a non-negative decimal integer", shard,
                  member, txt);
  int64_t v = 0;
  while (is_digit(*p)) {
    v = v * 10 + (*p++ - '0');
    if (v > RE_DS_MAX_LABEL)
      return re_err(RE_EFORMAT, "%s: member '%s': label \"%.40s\" exceeds %d", shard, member, txt, RE_DS_MAX_LABEL);
  }
  while (*p && is_space(*p))
    p++;
  if (*p)
    return re_err(RE_EFORMAT, "%s: member '%s': label \"%.40s\" is not a non-negative decimal integer", shard,
                  member, txt);
  *out = (int32_t)v;
  return RE_OK;
}

/* Geometry of one input (header only); the first sample sets the dataset's. */
static re_status check_geometry(wds_ds *d, int first) {
  const char *shard = d->shards[d->shard].name, *member = d->s.input_member;
  int c, h, w;
  int64_t dim;
  re_npy_header nh;
  if (d->kind == IN_PNG) {
    re_png_info pi;
    re_status st = re_png_read_info(d->buf, d->s.input_len, member, 0, &pi);
    if (st != RE_OK)
      return re_err_context(st, "%s: ", shard);
    c = pi.channels, h = pi.height, w = pi.width;
    dim = (int64_t)c * h * w;
  } else {
    re_status st = re_npy_parse_header(d->buf, d->s.input_len, member, &nh);
    if (st != RE_OK)
      return re_err_context(st, "%s: ", shard);
    dim = nh.count;
    if (dim < 1)
      return re_err(RE_ESHAPE, "%s: member '%s': an empty array", shard, member);
    int64_t cc = 1, hh = 1, ww = dim;
    if (nh.ndim == 3)
      cc = nh.shape[0], hh = nh.shape[1], ww = nh.shape[2];
    else if (nh.ndim == 2)
      hh = nh.shape[0], ww = nh.shape[1];
    if (cc > INT_MAX || hh > INT_MAX || ww > INT_MAX)
      return re_err(RE_ESHAPE, "%s: member '%s': dimensions beyond %d", shard, member, INT_MAX);
    c = (int)cc, h = (int)hh, w = (int)ww;
  }
  if (first) {
    d->channels = c, d->height = h, d->width = w, d->sample_dim = dim;
    if (d->kind == IN_NPY) {
      d->npy_dtype = nh.dtype;
      d->npy_ndim = nh.ndim;
      memcpy(d->npy_shape, nh.shape, sizeof nh.shape);
    }
    return RE_OK;
  }
  int same = c == d->channels && h == d->height && w == d->width && dim == d->sample_dim;
  if (same && d->kind == IN_NPY)
    same = nh.dtype == d->npy_dtype && nh.ndim == d->npy_ndim &&
           !memcmp(nh.shape, d->npy_shape, sizeof(int64_t) * (size_t)nh.ndim);
  if (!same) {
    if (d->kind == IN_NPY && dim == d->sample_dim && c == d->channels && h == d->height && w == d->width)
      return re_err(RE_ESHAPE, "%s: member '%s': geometry mismatch: %s array of %d dimensions, the first sample "
                    "is a %s array of %d", shard, member, re_dtype_name(nh.dtype), nh.ndim,
                    re_dtype_name(d->npy_dtype), d->npy_ndim);
    return re_err(RE_ESHAPE, "%s: member '%s': geometry mismatch: %d x %d x %d, the first sample is %d x %d x %d",
                  shard, member, c, h, w, d->channels, d->height, d->width);
  }
  return RE_OK;
}

/* ---- open: one scan --------------------------------------------------- */

/* A text sample at open: UTF-8, then to the sequencer unless blank. */
static re_status scan_text(wds_ds *d, const char *shard, int32_t label) {
  const char *text = (const char *)d->buf;
  int64_t len = d->s.input_len;
  int64_t bad = re_ds_utf8_invalid(text, len);
  if (bad >= 0)
    return re_err(RE_EFORMAT, "%s: member '%s', byte %lld: invalid UTF-8 (byte 0x%02X)", shard, d->s.input_member,
                  (long long)bad, (unsigned char)text[bad]);
  if (re_ds_text_blank(text, len))
    return RE_OK;
  if (d->ndocs == d->docs_cap) {
    int64_t cap = d->docs_cap ? 2 * d->docs_cap : 1024;
    RE_TRY(re_realloc(&d->doc_sample, cap, sizeof *d->doc_sample));
    d->docs_cap = cap;
  }
  d->doc_sample[d->ndocs++] = d->count;
  char where[1200];
  snprintf(where, sizeof where, "%s: member '%s'", shard, d->s.input_member);
  return re_ds_seq_doc(d->seq, text ? text : "", len, label, where);
}

static re_status scan_shard(wds_ds *d, int s) {
  RE_TRY(stream_open(d, s));
  const char *shard = d->shards[s].name;
  d->shards[s].first = d->count;
  for (;;) {
    int eof;
    RE_TRY(next_sample(d, MODE_SCAN, &eof));
    if (eof)
      break;
    if (!d->s.have_input)
      return re_err(RE_EFORMAT, "%s: sample '%s' has no '.%s' member", shard, d->key, d->input_ext);
    if (d->label_ext && !d->s.have_label)
      return re_err(RE_EFORMAT, "%s: sample '%s' has no '.%s' label member", shard, d->key, d->label_ext);
    if (d->kind != IN_TXT)
      RE_TRY(check_geometry(d, d->count == 0));
    int32_t v = -1;
    if (d->label_ext) {
      RE_TRY(parse_label(shard, d->s.label_member, d->s.label, &v));
      if (d->count == d->labels_cap) {
        int64_t cap = d->labels_cap ? d->labels_cap * 2 : 1024;
        RE_TRY(re_realloc(&d->labels, cap, sizeof *d->labels));
        d->labels_cap = cap;
      }
      d->labels[d->count] = v;
    }
    if (d->kind == IN_TXT)
      RE_TRY(scan_text(d, shard, v));
    d->count++;
    d->shards[s].count++;
  }
  stream_close(d);
  return RE_OK;
}

/* ---- reading ---------------------------------------------------------- */

static re_status decode_input(wds_ds *d, float *x) {
  const char *shard = d->shards[d->shard].name, *member = d->s.input_member;
  if (d->kind == IN_PNG) {
    re_png_info pi;
    re_status st = re_png_decode(d->buf, d->s.input_len, member, 0, &pi, x, d->sample_dim);
    if (st != RE_OK)
      return re_err_context(st, "%s: ", shard);
    if (pi.channels != d->channels || pi.height != d->height || pi.width != d->width)
      return re_err(RE_ESHAPE, "%s: member '%s': geometry mismatch: %d x %d x %d, the first sample is %d x %d x %d "
                    "(shard changed since open?)", shard, member, pi.channels, pi.height, pi.width, d->channels,
                    d->height, d->width);
    return RE_OK;
  }
  RE_TRY(check_geometry(d, 0));
  re_npy a;
  memset(&a, 0, sizeof a);
  RE_TRY(re_npy_parse_header(d->buf, d->s.input_len, member, &a.h));
  a.data = d->buf + a.h.data_offset;
  a.name = (char *)member;
  RE_TRY(re_npy_read_rows_f32(&a, 0, re_npy_rows(&a), x));
  if (a.h.dtype == RE_DTYPE_U8)
    for (int64_t k = 0; k < d->sample_dim; k++)
      x[k] /= 255.0f; /* uint8 are pixels, as for .npy datasets */
  if (a.h.dtype == RE_DTYPE_F16 || a.h.dtype == RE_DTYPE_F32 || a.h.dtype == RE_DTYPE_F64) {
    char where[1200];
    snprintf(where, sizeof where, "%s: member '%s'", shard, member);
    RE_TRY(re_ds_check_finite(x, 1, d->sample_dim, -1, where));
  }
  return RE_OK;
}

static int shard_of(const wds_ds *d, int64_t i) {
  int lo = 0, hi = d->nshards - 1; /* the last shard with first <= i */
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    if (d->shards[mid].first <= i)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo; /* later empty shards start after i, so this one holds i */
}

static re_status changed(const wds_ds *d) {
  return re_err(RE_EFORMAT, "%s: the shard ended after %lld samples, the scan at open found %lld (changed since open?)",
                d->shards[d->shard].name, (long long)(d->next - d->shards[d->shard].first),
                (long long)d->shards[d->shard].count);
}

/* Position the stream so that the next sample it yields is i. */
static re_status seek(wds_ds *d, int64_t i) {
  int s = shard_of(d, i);
  if (!d->ar || d->shard != s || d->next > i)
    RE_TRY(stream_open(d, s));
  int eof;
  while (d->next < i) {
    RE_TRY(next_sample(d, MODE_SKIP, &eof));
    if (eof)
      return changed(d);
    d->next++;
  }
  return RE_OK;
}

/* Read the next sample's input member into d->buf. */
static re_status read_next(wds_ds *d) {
  int eof;
  while (d->next == d->shards[d->shard].first + d->shards[d->shard].count)
    RE_TRY(stream_open(d, d->shard + 1));
  RE_TRY(next_sample(d, MODE_READ, &eof));
  if (eof)
    return changed(d);
  if (!d->s.have_input)
    return re_err(RE_EFORMAT, "%s: sample '%s' has no '.%s' member (changed since open?)", d->shards[d->shard].name,
                  d->key, d->input_ext);
  d->next++;
  return RE_OK;
}

static re_status read_range(wds_ds *d, int64_t i, int64_t j, float *x) {
  RE_TRY(seek(d, i));
  for (int64_t k = i; k < j; k++) {
    RE_TRY(read_next(d));
    RE_TRY(decode_input(d, x + (k - i) * d->sample_dim));
  }
  return RE_OK;
}

static re_status wds_read(void *impl, int64_t i, int64_t j, float *x, int32_t *labels) {
  wds_ds *d = (wds_ds *)impl;
  re_status st = read_range(d, i, j, x);
  if (st != RE_OK) {
    stream_close(d); /* the position is unknown now: the next read reopens */
    return st;
  }
  if (labels)
    memcpy(labels, d->labels + i, sizeof *labels * (size_t)(j - i));
  return RE_OK;
}

static void wds_close(void *impl) {
  wds_ds *d = (wds_ds *)impl;
  stream_close(d);
  sample_reset(&d->s);
  for (int s = 0; s < d->nshards; s++)
    free(d->shards[s].name);
  free(d->shards);
  free(d->input_ext);
  free(d->label_ext);
  free(d->labels);
  free(d->key);
  free(d->buf);
  free(d->doc_sample);
  free(d);
}

static const re_ds_ops wds_ops = {wds_read, wds_close, NULL};

/* "auto": the input member of the first sample, .png when it has one, else .npy. */
static re_status detect_input(wds_ds *d) {
  RE_TRY(stream_open(d, 0));
  int eof = 0;
  re_status st = next_sample(d, MODE_SKIP, &eof);
  const char *ext = "png";
  int png = 0, npy = 0;
  for (int k = 0; st == RE_OK && !eof && k < d->s.nexts; k++) {
    png |= !strcmp(d->s.exts[k], "png");
    npy |= !strcmp(d->s.exts[k], "npy");
  }
  if (st == RE_OK && !eof && !png && !npy)
    st = re_err(RE_EFORMAT, "%s: sample '%s' has neither a '.png' nor a '.npy' member", d->shards[0].name, d->key);
  if (!png && npy)
    ext = "npy";
  stream_close(d);
  free(d->input_ext);
  d->input_ext = NULL;
  if (st == RE_OK)
    st = re_strdup(ext, &d->input_ext);
  d->kind = !strcmp(ext, "png") ? IN_PNG : IN_NPY;
  return st;
}

/* The shards checked and scanned: *dp (on failure freed and NULL). seq: text shards. */
static re_status scan_all(const char *const *shards, int nshards, const void *mem, int64_t mem_len,
                          const char *input_ext, const char *label_ext, re_ds_seq *seq, wds_ds **dp) {
  re_status st = RE_OK;
  wds_ds *d = NULL;
  *dp = NULL;
  if (nshards < 1)
    return re_err(RE_EINVAL, "WebDataset: no shards given");
  int detect = 0;
  if (seq) {
    input_ext = "txt";
  } else {
    detect = !input_ext || !strcmp(input_ext, "auto");
    if (detect)
      input_ext = "png"; /* until the first sample says */
    if (strcmp(input_ext, "png") && strcmp(input_ext, "npy"))
      return re_err(RE_EINVAL, "WebDataset: input extension '%s' is not supported (png, npy or auto)", input_ext);
  }
  if (label_ext && (!*label_ext || !strcmp(label_ext, input_ext) || (!seq && !strcmp(label_ext, "png")) ||
                    (!seq && !strcmp(label_ext, "npy"))))
    return re_err(RE_EINVAL, "WebDataset: label extension '%s' must be non-empty and differ from the input's",
                  label_ext);
  RE_CHECK(re_calloc(1, sizeof *d, &d));
  d->shard = -1;
  d->kind = seq ? IN_TXT : !strcmp(input_ext, "png") ? IN_PNG : IN_NPY;
  d->seq = seq;
  RE_CHECK(re_strdup(input_ext, &d->input_ext));
  d->mem = mem, d->mem_len = mem_len;
  if (label_ext)
    RE_CHECK(re_strdup(label_ext, &d->label_ext));
  RE_CHECK(re_calloc(nshards, sizeof *d->shards, &d->shards));
  d->nshards = nshards;
  for (int s = 0; s < nshards; s++) {
    RE_CHECK(re_strdup(shards[s], &d->shards[s].name));
    struct stat sb;
    if (!mem && (stat(shards[s], &sb) != 0 || !S_ISREG(sb.st_mode))) {
      st = re_err(RE_EIO, "%s: cannot open: %s", shards[s], stat(shards[s], &sb) != 0 ? strerror(errno) : "not a regular file");
      goto done;
    }
  }
  if (detect)
    RE_CHECK(detect_input(d));
  for (int s = 0; s < nshards; s++)
    RE_CHECK(scan_shard(d, s));
  d->seq = NULL;
  *dp = d;
  return RE_OK;
done:
  if (d)
    wds_close(d);
  return st;
}

static re_status open_common(const char *const *shards, int nshards, const void *mem, int64_t mem_len,
                             const char *input_ext, const char *label_ext, re_dataset **out) {
  wds_ds *d = NULL;
  *out = NULL;
  RE_TRY(scan_all(shards, nshards, mem, mem_len, input_ext, label_ext, NULL, &d));
  re_dataset_info info = {0};
  info.count = d->count;
  if (d->count > 0) {
    info.sample_dim = d->sample_dim;
    info.channels = d->channels, info.height = d->height, info.width = d->width;
  } else {
    info.sample_dim = 1, info.channels = 1, info.height = 1, info.width = 1;
  }
  if (d->label_ext) {
    info.has_labels = 1;
    for (int64_t k = 0; k < d->count; k++)
      if (d->labels[k] + (int64_t)1 > info.num_classes)
        info.num_classes = d->labels[k] + (int64_t)1;
  }
  return re_ds_wrap(&wds_ops, d, &info, out);
}

re_status re_dataset_open_wds(const char *const *shards, int nshards, const char *input_ext, const char *label_ext,
                              re_dataset **out) {
  return open_common(shards, nshards, NULL, 0, input_ext, label_ext, out);
}

re_status re_dataset_open_wds_memory(const void *buf, int64_t len, const char *name, const char *input_ext,
                                     const char *label_ext, re_dataset **out) {
  *out = NULL;
  if (!buf || len < 0)
    return re_err(RE_EINVAL, "%s: WebDataset: invalid in-memory buffer", name);
  const char *names[1] = {name};
  return open_common(names, 1, buf, len, input_ext, label_ext, out);
}

/* ---- text shards ------------------------------------------------------ */

static re_status wds_doc_text(void *impl, int64_t k, const char **text, int64_t *len) {
  wds_ds *d = (wds_ds *)impl;
  re_status st = seek(d, d->doc_sample[k]);
  if (st == RE_OK)
    st = read_next(d);
  if (st != RE_OK) {
    stream_close(d);
    return st;
  }
  *text = d->buf ? (const char *)d->buf : "";
  *len = d->s.input_len;
  return RE_OK;
}

static void wds_doc_where(void *impl, int64_t k, char *buf, size_t cap) {
  const wds_ds *d = (const wds_ds *)impl;
  int64_t i = d->doc_sample[k];
  int s = shard_of(d, i);
  snprintf(buf, cap, "%s: sample %lld of the shard (.txt)", d->shards[s].name, (long long)(i - d->shards[s].first));
}

static void wds_doc_close(void *impl) { wds_close(impl); }

static const re_ds_docs_ops wds_docs = {wds_doc_text, wds_doc_where, wds_doc_close};

re_status re_dataset_open_wds_text(const char *const *shards, int nshards, const char *label_ext,
                                   const re_text_options *opt, re_dataset **out) {
  re_ds_seq *seq = NULL;
  wds_ds *d = NULL;
  *out = NULL;
  RE_TRY(re_ds_seq_new(opt, "WebDataset text", label_ext != NULL, &seq));
  re_status st = scan_all(shards, nshards, NULL, 0, "txt", label_ext, seq, &d);
  if (st != RE_OK) {
    re_ds_seq_free(&seq);
    return st;
  }
  return re_ds_seq_finish(&seq, &wds_docs, d, NULL, 0, out);
}
