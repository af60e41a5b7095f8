/* .npz: a zip archive (stored or deflated members) of .npy files, read with libarchive.
 * Member names are used only as keys, never as paths. */
#include "repeval/npy.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#define RE_NPZ_MAX_MEMBERS 100000

struct re_npz {
  char *path;
  int64_t count;
  char **names; /* without the ".npy" suffix */
};

static re_status open_archive(const char *path, struct archive **out) {
  RE_TRY(re_check_regular(path));
  struct archive *ar = archive_read_new();
  if (!ar)
    return re_err(RE_ENOMEM, "%s: cannot allocate a libarchive reader", path);
  archive_read_support_format_zip_seekable(ar);
  archive_read_support_filter_none(ar);
  if (archive_read_open_filename(ar, path, 1 << 16) != ARCHIVE_OK) {
    re_status st = re_err(RE_EFORMAT, "%s: not a readable .npz (zip) archive: %s", path, archive_error_string(ar));
    archive_read_free(ar);
    return st;
  }
  *out = ar;
  return RE_OK;
}

static int is_npy_member(const char *name) {
  size_t n = strlen(name);
  return n > 4 && !strcmp(name + n - 4, ".npy");
}

re_status re_npz_open(const char *path, re_npz **out) {
  re_status st = RE_OK;
  re_npz *z = NULL;
  struct archive *ar = NULL;
  struct archive_entry *e;
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *z, &z));
  RE_CHECK(re_strdup(path, &z->path));
  RE_CHECK(open_archive(path, &ar));
  for (;;) {
    int r = archive_read_next_header(ar, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      st = re_err(RE_EFORMAT, "%s: corrupt .npz archive after %lld members: %s", path, (long long)z->count,
                  archive_error_string(ar));
      goto done;
    }
    const char *name = archive_entry_pathname(e);
    if (!name || archive_entry_filetype(e) != AE_IFREG || !is_npy_member(name))
      continue;
    if (z->count >= RE_NPZ_MAX_MEMBERS) {
      st = re_err(RE_EFORMAT, "%s: more than %d arrays in one .npz", path, RE_NPZ_MAX_MEMBERS);
      goto done;
    }
    char *key;
    RE_CHECK(re_strdup(name, &key));
    key[strlen(key) - 4] = '\0';
    for (int64_t i = 0; i < z->count; i++) {
      if (!strcmp(z->names[i], key)) {
        st = re_err(RE_EFORMAT, "%s: array '%s' appears twice in the .npz", path, key);
        free(key);
        goto done;
      }
    }
    st = re_realloc(&z->names, z->count + 1, sizeof *z->names);
    if (st != RE_OK) {
      free(key);
      goto done;
    }
    z->names[z->count++] = key;
  }
  if (z->count == 0) { /* also what a torch.save zip without its pickle would look like */
    st = re_err(RE_EFORMAT, "%s: no .npy member in the archive (an .npz holds arrays as <name>.npy members)", path);
    goto done;
  }
  *out = z;
  z = NULL;
done:
  if (ar)
    archive_read_free(ar);
  re_npz_close(&z);
  return st;
}

int64_t re_npz_count(const re_npz *z) { return z->count; }

const char *re_npz_name(const re_npz *z, int64_t i) {
  return (i >= 0 && i < z->count) ? z->names[i] : NULL;
}

re_status re_npz_load(const re_npz *z, const char *name, re_npy **out) {
  re_status st = RE_OK;
  struct archive *ar = NULL;
  struct archive_entry *e;
  uint8_t *buf = NULL;
  int64_t len = 0, cap = 0;
  char label[1024];
  *out = NULL;
  snprintf(label, sizeof label, "%s[%s]", z->path, name);
  RE_CHECK(open_archive(z->path, &ar));
  for (;;) {
    int r = archive_read_next_header(ar, &e);
    if (r == ARCHIVE_EOF) {
      st = re_err(RE_EINVAL, "%s: no array named '%s' in the .npz", z->path, name);
      goto done;
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      st = re_err(RE_EFORMAT, "%s: corrupt .npz archive: %s", z->path, archive_error_string(ar));
      goto done;
    }
    const char *mn = archive_entry_pathname(e);
    size_t nl = strlen(name);
    if (mn && is_npy_member(mn) && strlen(mn) == nl + 4 && !strncmp(mn, name, nl))
      break;
  }
  for (;;) {
    if (len == cap) {
      int64_t ncap = cap ? cap * 2 : 1 << 16;
      RE_CHECK(re_realloc(&buf, ncap, 1));
      cap = ncap;
    }
    la_ssize_t got = archive_read_data(ar, buf + len, (size_t)(cap - len));
    if (got < 0) {
      st = re_err(RE_EFORMAT, "%s: cannot decompress: %s", label, archive_error_string(ar));
      goto done;
    }
    if (got == 0)
      break;
    len += got;
  }
  RE_CHECK(re_npy_from_memory(buf, len, label, out));
done:
  free(buf);
  if (ar)
    archive_read_free(ar);
  return st;
}

void re_npz_close(re_npz **pz) {
  re_npz *z = *pz;
  if (!z)
    return;
  for (int64_t i = 0; i < z->count; i++)
    free(z->names[i]);
  free(z->names);
  free(z->path);
  free(z);
  *pz = NULL;
}
