/* Output folder rules: resolve, refuse what is not ours, remove only what we wrote,
 * sweep dead partial folders, one run per output (see outdir.h). */
#define _GNU_SOURCE /* flock, renameat2 and RENAME_EXCHANGE (Linux, glibc >= 2.28) */
#include "out/outdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/io/jsonparse.h"
#include "out/output.h"
#include "out/path.h"
#include "repeval/atomic.h"

#define MANIFEST_MAX_BYTES (64 << 20)

/* ---- paths ------------------------------------------------------------------ */

static int is_dot_name(const char *s, size_t n) {
  return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

/* Append component c (n bytes) to the absolute path p (capacity PATH_MAX). */
static re_status path_append(char *p, const char *c, size_t n, const char *given) {
  size_t len = strlen(p);
  int slash = len > 0 && p[len - 1] != '/';
  if (len + (size_t)slash + n + 1 > PATH_MAX)
    return re_err(RE_EINVAL, "output folder '%s': path too long", given);
  if (slash)
    p[len++] = '/';
  memcpy(p + len, c, n);
  p[len + n] = '\0';
  return RE_OK;
}

re_status outdir_resolve(const char *given, char **real) {
  *real = NULL;
  if (!given || !*given)
    return re_err(RE_EINVAL, "the output folder is an empty name (an unset variable?): give a folder of its own, "
                             "e.g. --out results/NAME");
  size_t n = strlen(given);
  if (n >= PATH_MAX)
    return re_err(RE_EINVAL, "output folder '%.64s...': path too long", given);
  char p[PATH_MAX];
  memcpy(p, given, n + 1);
  while (n > 1 && p[n - 1] == '/') /* "out/" is "out" */
    p[--n] = '\0';
  const char *base = strrchr(p, '/');
  base = base ? base + 1 : p;
  if (!strcmp(p, "/") || is_dot_name(base, strlen(base)))
    return re_err(RE_EINVAL, "output folder '%s' names %s: results need a folder of their own, e.g. --out "
                             "results/NAME",
                  given, !strcmp(p, "/") ? "the root folder" : "the current or the parent folder");
  char out[PATH_MAX];
  struct stat sb;
  if (lstat(p, &sb) == 0) {
    if (!realpath(p, out)) {
      if (S_ISLNK(sb.st_mode)) {
        char to[PATH_MAX];
        ssize_t k = readlink(p, to, sizeof to - 1);
        to[k > 0 ? k : 0] = '\0';
        return re_err(RE_EINVAL, "output folder '%s' is a link to '%s', which does not exist", given, to);
      }
      return re_err(RE_EIO, "output folder '%s': %s", given, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
      re_log(RE_LOG_INFO, "output folder %s is a link to %s: the results go there", given, out);
  } else if (errno == ENOTDIR || errno == ENOENT) {
    /* not there yet: the deepest existing ancestor, resolved, then the rest */
    size_t cut = n;
    for (;;) {
      while (cut > 0 && p[cut - 1] != '/')
        cut--;
      if (cut == 0) { /* relative, nothing of it exists: from the current folder */
        if (!getcwd(out, sizeof out))
          return re_err(RE_EIO, "output folder '%s': cannot read the current folder: %s", given, strerror(errno));
        break;
      }
      char head[PATH_MAX];
      size_t alen = cut > 1 ? cut - 1 : 1; /* without the slash, but "/" stays "/" */
      memcpy(head, p, alen);
      head[alen] = '\0';
      if (stat(head, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
          return re_err(RE_EINVAL, "output folder '%s': %s is not a folder", given, head);
        if (!realpath(head, out))
          return re_err(RE_EIO, "output folder '%s': cannot resolve %s: %s", given, head, strerror(errno));
        break;
      }
      cut--;
    }
    for (const char *c = p + cut; *c;) { /* the components that do not exist yet */
      const char *e = strchr(c, '/');
      size_t len = e ? (size_t)(e - c) : strlen(c);
      if (is_dot_name(c, len))
        return re_err(RE_EINVAL, "output folder '%s': '%.*s' after a folder that does not exist", given, (int)len,
                      c);
      if (len)
        RE_TRY(path_append(out, c, len, given));
      c += len + (e ? 1 : 0);
    }
  } else {
    return re_err(RE_EIO, "output folder '%s': %s", given, strerror(errno));
  }
  if (!strcmp(out, "/"))
    return re_err(RE_EINVAL, "output folder '%s' is the root folder: results need a folder of their own", given);
  return re_strdup(out, real);
}

/* Is `inner` equal to `outer` or inside it? */
static int path_within(const char *inner, const char *outer) {
  size_t n = strlen(outer);
  return !strncmp(inner, outer, n) && (inner[n] == '\0' || inner[n] == '/');
}

re_status outdir_check_inputs(const char *real, const char *given, char *const *inputs, int n) {
  for (int k = 0; k < n; k++) {
    char rp[PATH_MAX];
    if (!inputs[k] || !realpath(inputs[k], rp))
      continue;
    const char *how = NULL;
    if (!strcmp(rp, real))
      how = "is";
    else if (path_within(rp, real))
      how = "contains";
    else if (path_within(real, rp))
      how = "lies inside";
    if (how)
      return re_err(RE_EINVAL, "output folder %s %s the input %s of this job: results replace their folder, so "
                               "they must go to a folder apart from every input (choose another --out)",
                    given, how, inputs[k]);
  }
  return RE_OK;
}

/* ---- the file list of a result ------------------------------------------------ */

typedef struct listing {
  char **v;
  int n;
} listing;

static void listing_free(listing *l) {
  for (int k = 0; k < l->n; k++)
    free(l->v[k]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static re_status listing_add(listing *l, const char *s) {
  RE_TRY(re_realloc(&l->v, l->n + 1, sizeof(char *)));
  RE_TRY(re_strdup(s, &l->v[l->n]));
  l->n++;
  return RE_OK;
}

static int listing_has(const listing *l, const char *s) {
  for (int k = 0; k < l->n; k++)
    if (!strcmp(l->v[k], s))
      return 1;
  return 0;
}

/* A name a manifest may list: relative, no "." or ".." component. */
static int safe_relative(const char *s) {
  if (!*s || s[0] == '/')
    return 0;
  for (const char *c = s; *c;) {
    const char *e = strchr(c, '/');
    size_t len = e ? (size_t)(e - c) : strlen(c);
    if (len == 0 || is_dot_name(c, len))
      return 0;
    c += len + (e ? 1 : 0);
  }
  return 1;
}

enum { MANIFEST_NONE = 0, MANIFEST_OTHER = 1, MANIFEST_OLD = 2, MANIFEST_OURS = 3 };

/* Read dir/manifest.json: which kind it is, and for ours the files it lists. */
static int read_manifest(const char *dir, listing *files) {
  char path[PATH_MAX + 32];
  FILE *f;
  if (re_path_join(path, sizeof path, "%s/manifest.json", dir) != RE_OK || re_fopen_regular(path, &f) != RE_OK) {
    re_err_clear();
    return MANIFEST_NONE;
  }
  char *buf = NULL;
  int kind = MANIFEST_OTHER;
  if (re_malloc(MANIFEST_MAX_BYTES + 1, 1, &buf) != RE_OK) {
    fclose(f);
    re_err_clear();
    return MANIFEST_OTHER;
  }
  size_t len = fread(buf, 1, MANIFEST_MAX_BYTES + 1, f);
  fclose(f);
  re_json j = {0};
  if (len <= MANIFEST_MAX_BYTES && re_json_parse(buf, (int64_t)len, 64, 1 << 22, path, 0, &j) == RE_OK &&
      j.nodes[0].type == RE_JSON_OBJECT) {
    const re_json_node *out = NULL;
    for (int64_t c = j.nodes[0].first; c >= 0; c = j.nodes[c].next) {
      if (!strcmp(j.nodes[c].key, "repeval_version"))
        kind = MANIFEST_OLD;
      if (!strcmp(j.nodes[c].key, "output") && j.nodes[c].type == RE_JSON_OBJECT)
        out = &j.nodes[c];
    }
    const re_json_node *marker = NULL, *list = NULL;
    for (int64_t c = out ? out->first : -1; c >= 0; c = j.nodes[c].next) {
      if (!strcmp(j.nodes[c].key, "marker") && j.nodes[c].type == RE_JSON_STRING)
        marker = &j.nodes[c];
      if (!strcmp(j.nodes[c].key, "files") && j.nodes[c].type == RE_JSON_ARRAY)
        list = &j.nodes[c];
    }
    if (marker && list && !strcmp(marker->str, OUTDIR_MARKER)) {
      kind = MANIFEST_OURS;
      for (int64_t c = list->first; c >= 0; c = j.nodes[c].next)
        if (j.nodes[c].type == RE_JSON_STRING && safe_relative(j.nodes[c].str) &&
            listing_add(files, j.nodes[c].str) != RE_OK)
          kind = MANIFEST_OTHER;
    }
  }
  re_json_free(&j);
  free(buf);
  re_err_clear();
  return kind;
}

/* Every entry below dir (relative paths), folders after their contents; *odd gets
 * the first entry that is neither a regular file nor a folder. */
static re_status list_tree(const char *dir, const char *rel, listing *files, listing *dirs, char *odd,
                           size_t oddcap) {
  char path[PATH_MAX + 8];
  RE_TRY(re_path_join(path, sizeof path, "%s%s%s", dir, rel[0] ? "/" : "", rel));
  DIR *d = opendir(path);
  if (!d)
    return re_err(RE_EIO, "%s: cannot list: %s", path, strerror(errno));
  re_status st = RE_OK;
  struct dirent *e;
  while (st == RE_OK && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char r[PATH_MAX], full[PATH_MAX * 2];
    st = re_path_join(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    if (st == RE_OK)
      st = re_path_join(full, sizeof full, "%s/%s", dir, r);
    struct stat sb;
    if (st != RE_OK || lstat(full, &sb) != 0)
      continue;
    if (S_ISDIR(sb.st_mode)) {
      st = list_tree(dir, r, files, dirs, odd, oddcap);
      if (st == RE_OK)
        st = listing_add(dirs, r);
    } else if (S_ISREG(sb.st_mode)) {
      st = listing_add(files, r);
    } else if (!odd[0]) {
      snprintf(odd, oddcap, "%s", r);
    }
  }
  closedir(d);
  return st;
}

/* A temporary name of a listed file: "<f>.tmp" or "<f>.tmp.XXXXXX" (re_atomic). */
static int is_temp_of(const listing *files, const char *name) {
  const char *t = strstr(name, ".tmp");
  while (t) {
    size_t base = (size_t)(t - name);
    const char *rest = t + 4;
    if ((!*rest || (rest[0] == '.' && strlen(rest) == 7)) && base > 0) {
      char stem[PATH_MAX];
      if (base < sizeof stem) {
        memcpy(stem, name, base);
        stem[base] = '\0';
        if (listing_has(files, stem))
          return 1;
      }
    }
    t = strstr(t + 1, ".tmp");
  }
  return 0;
}

static void add_later_files(listing *files) {
  char later[] = OUTDIR_LATER_FILES;
  for (char *s = NULL, *t = strtok_r(later, " ", &s); t; t = strtok_r(NULL, " ", &s))
    if (!listing_has(files, t) && listing_add(files, t) != RE_OK)
      re_err_clear();
}

re_status outdir_check_replaceable(const char *real, const char *given) {
  struct stat sb;
  if (lstat(real, &sb) != 0) {
    if (errno == ENOENT)
      return RE_OK;
    return re_err(RE_EIO, "output folder %s: %s", given, strerror(errno));
  }
  if (!S_ISDIR(sb.st_mode))
    return re_err(RE_EINVAL, "output folder %s exists and is not a folder", given);
  listing files = {0}, dirs = {0}, listed = {0};
  char odd[PATH_MAX] = "";
  re_status st = list_tree(real, "", &files, &dirs, odd, sizeof odd);
  if (st != RE_OK || (files.n == 0 && dirs.n == 0 && !odd[0]))
    goto done; /* an empty folder holds nothing to lose */
  int kind = read_manifest(real, &listed);
  if (kind == MANIFEST_OLD) {
    st = re_err(RE_EINVAL, "output folder %s holds results of an older repeval, whose manifest does not list its "
                           "files: repeval replaces only what it knows it wrote, so move or remove that folder "
                           "yourself, or choose another output folder",
                given);
    goto done;
  }
  if (kind != MANIFEST_OURS) {
    st = re_err(RE_EINVAL, "output folder %s exists and is not a repeval result (no manifest.json with repeval's "
                           "output marker): repeval replaces only results it wrote, so choose another output "
                           "folder (e.g. a new subfolder), or empty this one yourself",
                given);
    goto done;
  }
  add_later_files(&listed);
  const char *stranger = odd[0] ? odd : NULL;
  for (int k = 0; !stranger && k < files.n; k++)
    if (!listing_has(&listed, files.v[k]) && !is_temp_of(&listed, files.v[k]))
      stranger = files.v[k];
  if (stranger)
    st = re_err(RE_EINVAL, "output folder %s is a repeval result but also holds %s, which repeval did not write: "
                           "move it out of the folder first (repeval never deletes what it did not write)",
                given, stranger);
done:
  listing_free(&files);
  listing_free(&dirs);
  listing_free(&listed);
  return st;
}

re_status outdir_remove_result(const char *dir) {
  listing listed = {0}, files = {0}, dirs = {0};
  char odd[PATH_MAX] = "";
  int kind = read_manifest(dir, &listed);
  re_status st = list_tree(dir, "", &files, &dirs, odd, sizeof odd);
  if (st == RE_OK && kind == MANIFEST_OURS) {
    add_later_files(&listed);
    char path[PATH_MAX * 2]; /* list_tree composed dir/file in this size: these fit */
    for (int k = 0; k < files.n; k++)
      if ((listing_has(&listed, files.v[k]) || is_temp_of(&listed, files.v[k])) &&
          re_path_join(path, sizeof path, "%s/%s", dir, files.v[k]) == RE_OK)
        unlink(path);
    for (int k = 0; k < dirs.n; k++) /* deepest first: list_tree puts folders after their contents */
      if (re_path_join(path, sizeof path, "%s/%s", dir, dirs.v[k]) == RE_OK)
        rmdir(path);
  }
  if (st == RE_OK && rmdir(dir) != 0)
    st = re_err(RE_EIO, "kept the previous results' folder %s: it holds files repeval did not write (%s)", dir,
                strerror(errno));
  listing_free(&listed);
  listing_free(&files);
  listing_free(&dirs);
  return st;
}

/* ---- owners: partial folders and locks ------------------------------------------- */

/* Start time of process pid in clock ticks since boot (/proc/PID/stat field 22), 0 if gone. */
static unsigned long long proc_start(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p)
    return 0;
  for (int field = 2; field < 22 && p; field++)
    p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void boot_id(char *buf, size_t cap) {
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  buf[0] = '\0';
  if (f) {
    if (fgets(buf, (int)cap, f))
      buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
  }
  if (!buf[0])
    snprintf(buf, cap, "unknown");
}

void outdir_owner(char *buf, size_t cap) {
  char host[256] = "unknown", boot[64];
  if (gethostname(host, sizeof host) != 0)
    snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  boot_id(boot, sizeof boot);
  snprintf(buf, cap, "host=%s pid=%ld start=%llu boot=%s", host, (long)getpid(), proc_start((long)getpid()), boot);
}

/* Is the owner written in a marker gone? Unknown hosts are never declared gone. */
static int owner_gone(const char *marker) {
  char host[256], boot[64], myhost[256] = "", myboot[64];
  long pid = 0;
  unsigned long long start = 0;
  if (sscanf(marker, "host=%255s pid=%ld start=%llu boot=%63s", host, &pid, &start, boot) != 4 || pid <= 0)
    return 0;
  if (gethostname(myhost, sizeof myhost) != 0 || strcmp(host, myhost))
    return 0; /* another node of a shared file system: it may be running */
  boot_id(myboot, sizeof myboot);
  if (strcmp(boot, myboot))
    return 1; /* this host rebooted since */
  unsigned long long now = proc_start(pid);
  return now == 0 || now != start; /* dead, or the pid belongs to another process now */
}

re_status outdir_partial_create(const char *real, char *path, size_t cap) {
  if ((size_t)snprintf(path, cap, "%s.partial-%ld", real, (long)getpid()) >= cap)
    return re_err(RE_EINVAL, "%s: path too long", real);
  if (mkdir(path, 0755) != 0) {
    if (errno != EEXIST)
      return re_err(RE_EIO, "cannot create %s: %s", path, strerror(errno));
    /* left by a process of the same pid on another node: a name of our own */
    if ((size_t)snprintf(path, cap, "%s.partial-%ld-XXXXXX", real, (long)getpid()) >= cap)
      return re_err(RE_EINVAL, "%s: path too long", real);
    if (!mkdtemp(path))
      return re_err(RE_EIO, "cannot create %s: %s", path, strerror(errno));
    (void)chmod(path, 0755);
  }
  char marker[PATH_MAX + 32], owner[512];
  re_status jst = re_path_join(marker, sizeof marker, "%s/" OUTDIR_PARTIAL_MARKER, path);
  if (jst != RE_OK) {
    rmdir(path);
    return jst;
  }
  outdir_owner(owner, sizeof owner);
  FILE *f = fopen(marker, "w");
  int bad = !f || fprintf(f, "%s\n", owner) < 0;
  if (f && fclose(f) != 0)
    bad = 1;
  if (bad) {
    re_status st = re_err(RE_EIO, "%s: cannot write: %s", marker, strerror(errno));
    unlink(marker);
    rmdir(path);
    return st;
  }
  return RE_OK;
}

void outdir_partial_unmark(const char *path) {
  char marker[PATH_MAX + 32];
  if (re_path_join(marker, sizeof marker, "%s/" OUTDIR_PARTIAL_MARKER, path) == RE_OK)
    unlink(marker);
  else
    re_err_clear();
}

/* Does folder `dir` hold nothing, or nothing but an owner marker with no complete
 * owner line (the process died between making the folder and writing the marker)? */
static int only_marker(const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  int other = 0, marker = 0;
  struct dirent *e;
  while ((e = readdir(d)) && !other) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (!strcmp(e->d_name, OUTDIR_PARTIAL_MARKER))
      marker = 1;
    else
      other = 1;
  }
  closedir(d);
  if (other)
    return 0;
  if (!marker)
    return 1;
  char path[PATH_MAX + 32], text[600] = "";
  FILE *f;
  if (re_path_join(path, sizeof path, "%s/" OUTDIR_PARTIAL_MARKER, dir) != RE_OK ||
      re_fopen_regular(path, &f) != RE_OK) {
    re_err_clear();
    return 0;
  }
  int complete = fgets(text, sizeof text, f) && strchr(text, '\n');
  fclose(f);
  return !complete;
}

void outdir_sweep_partials(const char *real, const char *own) {
  char parent[PATH_MAX], prefix[PATH_MAX];
  char *slash = re_path_join(parent, sizeof parent, "%s", real) == RE_OK ? strrchr(parent, '/') : NULL;
  if (!slash || re_path_join(prefix, sizeof prefix, "%s.partial-", slash + 1) != RE_OK) {
    re_err_clear();
    return;
  }
  if (slash == parent)
    slash[1] = '\0';
  else
    *slash = '\0';
  DIR *d = opendir(parent);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, prefix, strlen(prefix)))
      continue;
    char full[PATH_MAX * 2], marker[PATH_MAX * 2 + 32], text[600] = "";
    struct stat sb;
    if (re_path_join(full, sizeof full, "%s/%s", !strcmp(parent, "/") ? "" : parent, e->d_name) != RE_OK ||
        re_path_join(marker, sizeof marker, "%s/" OUTDIR_PARTIAL_MARKER, full) != RE_OK) {
      re_err_clear();
      continue;
    }
    if (!strcmp(full, own) || lstat(full, &sb) != 0 || !S_ISDIR(sb.st_mode))
      continue;
    FILE *f;
    if (only_marker(full)) { /* a run killed while it made the folder: nothing but our marker, if that */
      unlink(marker);
      if (rmdir(full) == 0) {
        re_log(RE_LOG_INFO, "removed %s, an empty folder left by an interrupted run", full);
        continue;
      }
    }
    if (re_fopen_regular(marker, &f) != RE_OK) {
      re_err_clear();
      /* no owner marker: a complete result (its manifest lists its files) moved aside by a
       * replacement that was interrupted, or ready to be swapped in when it was; the caller
       * holds the output's lock, so no run is using it: only its listed files go */
      listing listed = {0};
      int kind = read_manifest(full, &listed);
      listing_free(&listed);
      if (kind == MANIFEST_OURS && outdir_remove_result(full) == RE_OK)
        re_log(RE_LOG_INFO, "removed %s, results left by an interrupted replacement", full);
      else
        re_log(RE_LOG_INFO, "left %s: it has no repeval marker", full);
      re_err_clear();
      continue;
    }
    if (!fgets(text, sizeof text, f))
      text[0] = '\0';
    fclose(f);
    if (!owner_gone(text)) {
      re_log(RE_LOG_INFO, "left %s: its run may still be going (%s)", full, text);
      continue;
    }
    re_log(RE_LOG_INFO, "removing %s left by an interrupted run", full);
    out_remove_tree(full);
  }
  closedir(d);
}

re_status outdir_lock_take(const char *state_dir, const char *out, outdir_lock *l) {
  l->fd = -1;
  if ((size_t)snprintf(l->path, sizeof l->path, "%s/lock", state_dir) >= sizeof l->path)
    return re_err(RE_EINVAL, "%s: path too long", state_dir);
  RE_TRY(re_mkdir_p(state_dir));
  int fd = -1, e = 0;
  for (int tries = 0;; tries++) {
    fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0)
      return re_err(RE_EIO, "%s: cannot open the lock: %s", l->path, strerror(errno));
    struct stat sb, now;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      close(fd);
      return re_err(RE_EIO, "%s is not a regular file", l->path);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      e = errno;
      break;
    }
    /* the holder may have removed the file between our open and our lock: the lock
     * counts only on the file that is still there */
    if (stat(l->path, &now) == 0 && now.st_ino == sb.st_ino && now.st_dev == sb.st_dev)
      break;
    close(fd);
    if (tries == 100)
      return re_err(RE_EIO, "%s: the lock file keeps being replaced", l->path);
  }
  if (e) {
    char holder[600] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    close(fd);
    if (e == EWOULDBLOCK)
      return re_err(RE_EINVAL, "%s is being written by another repeval run (%s; lock %s): wait for it to end, or "
                               "give another output folder",
                    out, holder[0] ? holder : "owner unknown", l->path);
    return re_err(RE_EIO, "%s: cannot lock: %s", l->path, strerror(e));
  }
  char owner[512];
  outdir_owner(owner, sizeof owner);
  size_t len = strlen(owner);
  owner[len++] = '\n';
  if (ftruncate(fd, 0) != 0 || pwrite(fd, owner, len, 0) != (ssize_t)len)
    re_log(RE_LOG_INFO, "%s: cannot write the lock's owner: %s", l->path, strerror(errno));
  l->fd = fd;
  return RE_OK;
}

void outdir_lock_release(outdir_lock *l) {
  if (l->fd < 0)
    return;
  unlink(l->path); /* while held; a run waiting on the old file sees it gone and retries */
  char *slash = strrchr(l->path, '/');
  if (slash) {
    *slash = '\0';
    rmdir(l->path); /* the state folder, when nothing else is left in it */
    *slash = '/';
  }
  close(l->fd);
  l->fd = -1;
}

/* ---- replacing the output -------------------------------------------------------- */

void out_remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char p[8192];
      struct stat sb;
      if (re_path_join(p, sizeof p, "%s/%s", dir, e->d_name) != RE_OK) { /* never remove a cut name */
        re_log(RE_LOG_WARN, "left %s/%s: %s", dir, e->d_name, re_errmsg());
        re_err_clear();
        continue;
      }
      if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
        out_remove_tree(p);
      else
        unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* fsync every regular file below dir (those written through stdio included, listed
 * by walk) and then each file's folder, dir last. */
static re_status sync_tree(const char *dir) {
  char **files = NULL;
  int n = 0;
  re_status st = out_list_files(dir, &files, &n);
  char path[8192];
  for (int k = 0; k < n && st == RE_OK; k++) {
    st = re_path_join(path, sizeof path, "%s/%s", dir, files[k]);
    if (st == RE_OK)
      st = re_fsync_path(path);
    if (st == RE_OK && strchr(files[k], '/'))
      st = re_fsync_parent(path);
  }
  for (int k = 0; k < n; k++)
    free(files[k]);
  free(files);
  return st == RE_OK ? re_fsync_path(dir) : st;
}

/* The previous results, moved out of the output's place: only what they list goes. */
static void remove_previous(const char *dir) {
  if (outdir_remove_result(dir) != RE_OK) {
    re_log(RE_LOG_WARN, "%s", re_errmsg());
    re_err_clear();
  }
}

re_status out_commit_dir(const char *partial, const char *final) {
  char old[4096];
  struct stat sb;
  int had_old = 0;
  /* everything in the new folder is on disk before it replaces the old one */
  RE_TRY(re_path_join(old, sizeof old, "%s.old-%ld", final, (long)getpid()));
  RE_TRY(sync_tree(partial));
  if (stat(final, &sb) == 0) {
    if (!S_ISDIR(sb.st_mode))
      return re_err(RE_EIO, "%s exists and is not a folder", final);
#ifdef RENAME_EXCHANGE
    /* one step: `final` names the old or the new complete folder at every moment,
     * even if the process is killed here; `partial` then holds the old results */
    if (renameat2(AT_FDCWD, partial, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
      re_status st = re_fsync_parent(final); /* the new folder survives a power loss */
      remove_previous(partial);
      return st;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      return re_err(RE_EIO, "cannot move the results into %s: %s", final, strerror(errno));
    /* a file system without exchange: two renames with a moment without `final` */
#endif
    if (rename(final, old) != 0)
      return re_err(RE_EIO, "cannot move the previous results %s aside: %s", final, strerror(errno));
    had_old = 1;
  }
  if (rename(partial, final) != 0) {
    int e = errno;
    if (had_old)
      rename(old, final);
    return re_err(RE_EIO, "cannot move the results into %s: %s", final, strerror(e));
  }
  re_status st = re_fsync_parent(final);
  if (had_old)
    remove_previous(old);
  return st;
}

