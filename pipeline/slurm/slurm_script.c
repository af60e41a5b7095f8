/* Slurm options and batch-script rendering for `repeval submit` (see slurm_script.h).
 * The accepted forms of --time, --mem and --array follow the sbatch manual. */
#include "slurm/slurm_script.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string ------------------------------------------------------ */

typedef struct sbuf {
  char *p;
  int64_t len, cap;
} sbuf;

static re_status sb_add(sbuf *b, const char *s, int64_t n) {
  int64_t need;
  RE_TRY(re_add_i64(b->len, n, &need));
  RE_TRY(re_add_i64(need, 1, &need));
  if (need > b->cap) {
    int64_t cap = b->cap ? b->cap : 256;
    while (cap < need)
      RE_TRY(re_mul_i64(cap, 2, &cap));
    RE_TRY(re_realloc(&b->p, cap, 1));
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, (size_t)n);
  b->len += n;
  b->p[b->len] = '\0';
  return RE_OK;
}

static re_status sb_str(sbuf *b, const char *s) { return sb_add(b, s, (int64_t)strlen(s)); }

static re_status sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static re_status sb_fmt(sbuf *b, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= (int)sizeof line)
    return re_err(RE_EINVAL, "internal: formatted text longer than %d bytes", (int)sizeof line - 1);
  return sb_add(b, line, n);
}

/* ---- options ----------------------------------------------------------------- */

void slurm_opts_clear(slurm_opts *o) {
  free(o->time);
  free(o->partition);
  free(o->account);
  free(o->qos);
  free(o->mem);
  free(o->array);
  for (int k = 0; k < o->nextra; k++)
    free(o->extra[k]);
  free(o->extra);
  memset(o, 0, sizeof *o);
}

/* digits only, at most 9 of them; value in *v */
static int parse_count(const char *s, size_t n, int64_t *v) {
  if (n == 0 || n > 9)
    return 0;
  int64_t x = 0;
  for (size_t k = 0; k < n; k++) {
    if (s[k] < '0' || s[k] > '9')
      return 0;
    x = x * 10 + (s[k] - '0');
  }
  *v = x;
  return 1;
}

static int has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

re_status slurm_check_time(const char *s, int64_t *seconds) {
  static const char *forms = "expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED";
  if (seconds)
    *seconds = -1;
  if (!strcmp(s, "UNLIMITED") || !strcmp(s, "INFINITE") || !strcmp(s, "unlimited") || !strcmp(s, "infinite"))
    return RE_OK;
  const char *p = s;
  int64_t days = -1, f[3];
  const char *dash = strchr(s, '-');
  if (dash) {
    if (!parse_count(s, (size_t)(dash - s), &days))
      return re_err(RE_EINVAL, "time limit '%s': bad day count before '-' (%s)", s, forms);
    p = dash + 1;
  }
  int nf = 0;
  for (;;) {
    const char *c = strchr(p, ':');
    size_t n = c ? (size_t)(c - p) : strlen(p);
    if (nf == 3 || !parse_count(p, n, &f[nf]))
      return re_err(RE_EINVAL, "time limit '%s': %s", s, forms);
    nf++;
    if (!c)
      break;
    p = c + 1;
  }
  /* the leading field may be any size (90 minutes, 36 hours); the later ones are
   * minutes or seconds, and hours after a day count are < 24 */
  for (int k = 1; k < nf; k++)
    if (f[k] > 59)
      return re_err(RE_EINVAL, "time limit '%s': field %d is %lld, more than 59 (%s)", s, k + 1, (long long)f[k],
                    forms);
  if (days >= 0 && f[0] > 23)
    return re_err(RE_EINVAL, "time limit '%s': %lld hours after a day count, more than 23", s, (long long)f[0]);
  if (seconds) {
    /* minutes | MM:SS | HH:MM:SS; with days: HH | HH:MM | HH:MM:SS */
    int64_t t;
    if (days >= 0)
      t = days * 86400 + f[0] * 3600 + (nf > 1 ? f[1] * 60 : 0) + (nf > 2 ? f[2] : 0);
    else if (nf == 1)
      t = f[0] * 60;
    else if (nf == 2)
      t = f[0] * 60 + f[1];
    else
      t = f[0] * 3600 + f[1] * 60 + f[2];
    *seconds = t;
  }
  return RE_OK;
}

re_status slurm_check_mem(const char *s) {
  size_t n = strlen(s), d = 0;
  while (d < n && s[d] >= '0' && s[d] <= '9')
    d++;
  int unit_ok = d + 1 == n && strchr("KMGTkmgt", s[d]) != NULL;
  if (d == 0 || d > 12 || !(d == n || unit_ok))
    return re_err(RE_EINVAL, "memory '%s': expected a size in megabytes or with a unit K, M, G or T (16G, 4000M)", s);
  return RE_OK;
}

re_status slurm_check_name(const char *what, const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 256)
    return re_err(RE_EINVAL, "%s: expected 1 to 256 characters, got %zu", what, n);
  for (size_t k = 0; k < n; k++) {
    char c = s[k];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._,+:-", c);
    if (!ok)
      return re_err(RE_EINVAL, "%s '%s': character %zu ('%c') is not a letter, digit or one of . _ , + : -", what, s,
                    k + 1, c >= 0x20 && c < 0x7f ? c : '?');
  }
  return RE_OK;
}

re_status slurm_check_directive(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || s[0] != '-')
    return re_err(RE_EINVAL, "sbatch argument '%s': expected an option starting with '-' (e.g. --gres=gpu:1)", s);
  if (has_control(s))
    return re_err(RE_EINVAL, "sbatch argument '%s' contains a control character (newline, tab)", s);
  if (s[n - 1] == ' ')
    return re_err(RE_EINVAL, "sbatch argument '%s' ends with a space", s);
  return RE_OK;
}

re_status slurm_array_indices(const char *spec, int64_t max, int64_t **idx, int64_t *n) {
  static const char *forms = "expected indices and ranges like 0-15, 1,3,5, 0-30:3, optionally %N (at most N at once)";
  *idx = NULL;
  *n = 0;
  char *s = NULL;
  RE_TRY(re_strdup(spec, &s));
  re_status st = RE_OK;
  int64_t count = 0, cap = 0, *out = NULL;
  char *pct = strchr(s, '%');
  if (pct) {
    int64_t lim;
    if (!parse_count(pct + 1, strlen(pct + 1), &lim) || lim < 1) {
      st = re_err(RE_EINVAL, "array '%s': after %% comes the number of tasks running at once, got '%s'", spec, pct + 1);
      goto done;
    }
    *pct = '\0';
  }
  if (!*s) {
    st = re_err(RE_EINVAL, "array '%s': %s", spec, forms);
    goto done;
  }
  for (char *item = s; item;) {
    char *comma = strchr(item, ',');
    if (comma)
      *comma = '\0';
    int64_t a, b, step = 1;
    char *dash = strchr(item, '-'), *colon = strchr(item, ':');
    if (colon && !dash) {
      st = re_err(RE_EINVAL, "array '%s': a step (':%s') needs a range a-b before it", spec, colon + 1);
      goto done;
    }
    if (colon && !parse_count(colon + 1, strlen(colon + 1), &step)) {
      st = re_err(RE_EINVAL, "array '%s': bad step '%s' (%s)", spec, colon + 1, forms);
      goto done;
    }
    size_t alen = dash ? (size_t)(dash - item) : strlen(item);
    size_t blen = dash ? (colon ? (size_t)(colon - dash - 1) : strlen(dash + 1)) : 0;
    if (!parse_count(item, alen, &a) || (dash && !parse_count(dash + 1, blen, &b))) {
      st = re_err(RE_EINVAL, "array '%s': bad item '%s' (%s)", spec, item, forms);
      goto done;
    }
    if (!dash)
      b = a;
    if (b < a || step < 1) {
      st = re_err(RE_EINVAL, "array '%s': range %lld-%lld%s is empty", spec, (long long)a, (long long)b,
                  step < 1 ? " or its step is 0" : "");
      goto done;
    }
    for (int64_t v = a; v <= b; v += step) {
      if (count == max) {
        st = re_err(RE_EINVAL, "array '%s' has more than %lld tasks", spec, (long long)max);
        goto done;
      }
      if (count == cap) {
        int64_t nc = cap ? cap * 2 : 16;
        RE_CHECK(re_realloc(&out, nc, sizeof *out));
        cap = nc;
      }
      out[count++] = v;
    }
    item = comma ? comma + 1 : NULL;
  }
  *idx = out;
  *n = count;
  out = NULL;
done:
  free(out);
  free(s);
  return st;
}

static re_status set_str(char **dst, const char *v) {
  char *c;
  RE_TRY(re_strdup(v, &c));
  free(*dst);
  *dst = c;
  return RE_OK;
}

static re_status add_extra(slurm_opts *o, const char *v) {
  char *c;
  RE_TRY(re_strdup(v, &c));
  re_status st = re_realloc(&o->extra, o->nextra + 1, sizeof *o->extra);
  if (st != RE_OK) {
    free(c);
    return st;
  }
  o->extra[o->nextra++] = c;
  return RE_OK;
}

static re_status check_count(const char *v, int64_t *x) {
  if (!parse_count(v, strlen(v), x) || *x < 1)
    return re_err(RE_EINVAL, "expected a positive whole number, got '%s'", v);
  return RE_OK;
}

re_status slurm_opts_set(slurm_opts *o, const char *key, const char *v) {
  int64_t x;
  if (!strcmp(key, "nodes") || !strcmp(key, "ntasks_per_node") || !strcmp(key, "cpus_per_task")) {
    RE_TRY(check_count(v, &x));
    if (!strcmp(key, "nodes"))
      o->nodes = x;
    else if (!strcmp(key, "ntasks_per_node"))
      o->ntasks_per_node = x;
    else
      o->cpus_per_task = x;
    return RE_OK;
  }
  if (!strcmp(key, "time")) {
    RE_TRY(slurm_check_time(v, NULL));
    return set_str(&o->time, v);
  }
  if (!strcmp(key, "mem")) {
    RE_TRY(slurm_check_mem(v));
    return set_str(&o->mem, v);
  }
  if (!strcmp(key, "partition") || !strcmp(key, "account") || !strcmp(key, "qos")) {
    RE_TRY(slurm_check_name("name", v));
    return set_str(!strcmp(key, "partition") ? &o->partition : !strcmp(key, "account") ? &o->account : &o->qos, v);
  }
  if (!strcmp(key, "array")) {
    int64_t *idx = NULL, n = 0;
    RE_TRY(slurm_array_indices(v, 1 << 20, &idx, &n));
    free(idx);
    return set_str(&o->array, v);
  }
  if (!strcmp(key, "extra")) {
    RE_TRY(slurm_check_directive(v));
    return add_extra(o, v);
  }
  return re_err(RE_EINVAL, "unknown Slurm option '%s'", key);
}

re_status slurm_opts_add_extra_args(slurm_opts *o, int argc, char *const *argv) {
  for (int k = 0; k < argc; k++) {
    if (argv[k][0] == '-') {
      RE_TRY(slurm_opts_set(o, "extra", argv[k]));
      continue;
    }
    if (o->nextra == 0)
      return re_err(RE_EINVAL, "sbatch argument '%s' is not an option and follows none", argv[k]);
    if (has_control(argv[k]) || !argv[k][0])
      return re_err(RE_EINVAL, "sbatch argument '%s' is empty or contains a control character", argv[k]);
    char **last = &o->extra[o->nextra - 1];
    size_t a = strlen(*last), b = strlen(argv[k]);
    RE_TRY(re_realloc(last, (int64_t)(a + b + 2), 1));
    (*last)[a] = ' ';
    memcpy(*last + a + 1, argv[k], b + 1);
  }
  return RE_OK;
}

re_status slurm_opts_from_cfg(const re_cfg *slurm, slurm_opts *o) {
  static const char *const keys[] = {"nodes", "ntasks_per_node", "cpus_per_task", "time", "partition", "account",
                                     "qos", "mem", "array", "extra", NULL};
  if (!slurm || re_cfg_is_null(slurm))
    return RE_OK;
  RE_TRY(re_cfg_expect_map(slurm, "slurm", keys));
  for (int64_t k = 0; k < slurm->n; k++) {
    const char *key = slurm->keys[k];
    const re_cfg *v = slurm->items[k];
    if (!strcmp(key, "extra")) {
      int64_t n = v->kind == RE_CFG_SEQ ? v->n : 1;
      for (int64_t i = 0; i < n; i++) {
        const re_cfg *item = v->kind == RE_CFG_SEQ ? v->items[i] : v;
        const char *s;
        RE_TRY(re_cfg_string(item, &s));
        if (slurm_opts_set(o, "extra", s) != RE_OK) {
          char msg[1024];
          snprintf(msg, sizeof msg, "%s", re_errmsg());
          return re_cfg_error(item, RE_EINVAL, "slurm.extra: %s", msg);
        }
      }
      continue;
    }
    const char *s;
    RE_TRY(re_cfg_string(v, &s));
    if (slurm_opts_set(o, key, s) != RE_OK) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", re_errmsg());
      return re_cfg_error(v, RE_EINVAL, "slurm.%s: %s", key, msg);
    }
  }
  return RE_OK;
}

/* ---- rendering ------------------------------------------------------------------ */

re_status slurm_shell_quote(const char *s, char **out) {
  sbuf b = {0};
  re_status st = sb_str(&b, "'");
  for (const char *p = s; *p && st == RE_OK; p++)
    st = *p == '\'' ? sb_str(&b, "'\\''") : sb_add(&b, p, 1);
  if (st == RE_OK)
    st = sb_str(&b, "'");
  if (st != RE_OK) {
    free(b.p);
    return st;
  }
  *out = b.p;
  return RE_OK;
}

static re_status sbatch_options(const slurm_opts *o, sbuf *b) {
  if (o->time)
    RE_TRY(sb_fmt(b, "#SBATCH --time=%s\n", o->time));
  if (o->mem)
    RE_TRY(sb_fmt(b, "#SBATCH --mem=%s\n", o->mem));
  if (o->partition)
    RE_TRY(sb_fmt(b, "#SBATCH --partition=%s\n", o->partition));
  if (o->account)
    RE_TRY(sb_fmt(b, "#SBATCH --account=%s\n", o->account));
  if (o->qos)
    RE_TRY(sb_fmt(b, "#SBATCH --qos=%s\n", o->qos));
  if (o->array)
    RE_TRY(sb_fmt(b, "#SBATCH --array=%s\n", o->array));
  for (int k = 0; k < o->nextra; k++) {
    RE_TRY(sb_str(b, "#SBATCH "));
    RE_TRY(sb_str(b, o->extra[k]));
    RE_TRY(sb_str(b, "\n"));
  }
  if (b->len > 0) /* the placeholder's own line supplies the last newline */
    b->p[--b->len] = '\0';
  return RE_OK;
}

typedef struct var {
  const char *name;
  char *value; /* owned */
} var;

static re_status make_vars(const slurm_opts *o, const slurm_script_vars *v, var *vars, int *nvars) {
  int n = 0;
  sbuf b;
#define RAW(NAME, TEXT) \
  do { \
    vars[n].name = NAME; \
    RE_TRY(re_strdup(TEXT, &vars[n].value)); \
    n++, *nvars = n; \
  } while (0)
#define QUOTED(NAME, TEXT) \
  do { \
    vars[n].name = NAME; \
    RE_TRY(slurm_shell_quote(TEXT, &vars[n].value)); \
    n++, *nvars = n; \
  } while (0)
  char num[32];
  RAW("SCRIPT", v->script);
  RAW("JOB_NAME", v->job_name);
  snprintf(num, sizeof num, "%lld", (long long)(o->nodes ? o->nodes : 1));
  RAW("NODES", num);
  snprintf(num, sizeof num, "%lld", (long long)(o->ntasks_per_node ? o->ntasks_per_node : 1));
  RAW("NTASKS_PER_NODE", num);
  snprintf(num, sizeof num, "%lld", (long long)(o->cpus_per_task ? o->cpus_per_task : 1));
  RAW("CPUS_PER_TASK", num);
  snprintf(num, sizeof num, "%d", v->max_requeues);
  RAW("MAX_REQUEUES", num);
  RAW("LOG", v->log);
  /* one rank per core and its BLAS threads on the cores next to it; with one CPU
   * per task the site's default binding is already right */
  RAW("SRUN_OPTIONS", o->cpus_per_task > 1 ? "--cpu-bind=cores" : "");
  QUOTED("REPEVAL", v->repeval);
  QUOTED("JOB_FILE", v->job_file);
  QUOTED("WORKDIR", v->workdir);
  RAW("COMMAND", v->command ? v->command : "run");
  RAW("RUN_ARGS", v->run_args ? v->run_args : "");
  if (!v->output_dir) {
    RAW("OUTPUT_DIR", "''");
  } else {
    char *q;
    RE_TRY(slurm_shell_quote(v->output_dir, &q));
    memset(&b, 0, sizeof b);
    re_status st = sb_str(&b, q);
    free(q);
    if (st == RE_OK && v->array_subdirs)
      st = sb_str(&b, "\"/task-${SLURM_ARRAY_TASK_ID}\"");
    if (st != RE_OK) {
      free(b.p);
      return st;
    }
    vars[n].name = "OUTPUT_DIR";
    vars[n].value = b.p;
    n++, *nvars = n;
  }
  memset(&b, 0, sizeof b);
  re_status st = sbatch_options(o, &b);
  if (st == RE_OK && !b.p)
    st = re_strdup("", &b.p);
  if (st != RE_OK) {
    free(b.p);
    return st;
  }
  vars[n].name = "SBATCH_OPTIONS";
  vars[n].value = b.p;
  n++, *nvars = n;
#undef RAW
#undef QUOTED
  return RE_OK;
}

/* length of a placeholder name at s (after '@', up to the closing '@'), or 0 */
static size_t placeholder_len(const char *s) {
  size_t k = 0;
  if (!(s[0] >= 'A' && s[0] <= 'Z'))
    return 0;
  while ((s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') || s[k] == '_')
    k++;
  return s[k] == '@' ? k : 0;
}

re_status slurm_script_render(const char *tmpl, const char *tmpl_name, const slurm_opts *o,
                              const slurm_script_vars *v, char **out) {
  var vars[24];
  int nvars = 0;
  sbuf b = {0};
  *out = NULL;
  re_status st = make_vars(o, v, vars, &nvars);
  int line = 1;
  for (const char *p = tmpl; *p && st == RE_OK; line++) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    /* a line that is only a placeholder vanishes when the value is empty */
    size_t k = p[0] == '@' ? placeholder_len(p + 1) : 0;
    int drop = 0;
    if (k && k + 2 == len)
      for (int i = 0; i < nvars; i++)
        if (strlen(vars[i].name) == k && !strncmp(vars[i].name, p + 1, k) && !vars[i].value[0])
          drop = 1;
    for (size_t c = 0; c < len && st == RE_OK && !drop;) {
      size_t pl = p[c] == '@' ? placeholder_len(p + c + 1) : 0;
      if (!pl) {
        st = sb_add(&b, p + c, 1);
        c++;
        continue;
      }
      const char *val = NULL;
      for (int i = 0; i < nvars; i++)
        if (strlen(vars[i].name) == pl && !strncmp(vars[i].name, p + c + 1, pl))
          val = vars[i].value;
      if (!val) {
        st = re_err(RE_EFORMAT,
                    "%s:%d: unknown placeholder @%.*s@ (known: SCRIPT JOB_NAME NODES NTASKS_PER_NODE CPUS_PER_TASK "
                    "LOG SBATCH_OPTIONS SRUN_OPTIONS REPEVAL JOB_FILE OUTPUT_DIR WORKDIR MAX_REQUEUES COMMAND RUN_ARGS)",
                    tmpl_name, line, (int)pl, p + c + 1);
        break;
      }
      st = sb_str(&b, val);
      c += pl + 2;
    }
    if (st == RE_OK && eol && !drop)
      st = sb_str(&b, "\n");
    p += len + (eol ? 1 : 0);
  }
  for (int i = 0; i < nvars; i++)
    free(vars[i].value);
  if (st == RE_OK && !b.p)
    st = re_err(RE_EFORMAT, "%s: the template is empty", tmpl_name);
  if (st != RE_OK) {
    free(b.p);
    return st;
  }
  *out = b.p;
  return RE_OK;
}
