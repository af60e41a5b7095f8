/* One argv parser and one help printer for the option tables of the commands. */
#include "cli/opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exit_codes.h"

int re_cli_usage_error(const char *cmd, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "repeval %s: %s\nTry 'repeval %s --help'.\n", cmd, line, cmd);
  return RE_EXIT_USAGE;
}

#define HELP_WIDTH 79    /* help lines are at most this long */
#define HELP_MAX_LEFT 24 /* a longer "--name VALUE" does not widen the options' column */

static const re_opt *find_long(const re_opt *opts, const char *name, size_t len) {
  for (const re_opt *o = opts; o->name; o++)
    if (strlen(o->name) == len && !strncmp(o->name, name, len))
      return o;
  return NULL;
}

static const re_opt *find_short(const re_opt *opts, char letter) {
  for (const re_opt *o = opts; o->name; o++)
    if (o->letter && o->letter == letter)
      return o;
  return NULL;
}

/* What a number option takes, for its message: "a positive integer", "in (0, 1]". */
static void describe(const re_opt *o, char *buf, size_t cap) {
  if (o->kind == RE_OPT_KIND_INT) {
    if (o->imax == INT64_MAX && o->imin == 1)
      snprintf(buf, cap, "a positive integer");
    else if (o->imax == INT64_MAX && o->imin == 0)
      snprintf(buf, cap, "a non-negative integer");
    else if (o->imax == INT64_MAX)
      snprintf(buf, cap, "an integer >= %lld", (long long)o->imin);
    else
      snprintf(buf, cap, "an integer in [%lld, %lld]", (long long)o->imin, (long long)o->imax);
    return;
  }
  int lo_open = (o->open & RE_OPT_OPEN_MIN) != 0, hi_open = (o->open & RE_OPT_OPEN_MAX) != 0;
  if (isinf(o->dmin) && isinf(o->dmax))
    snprintf(buf, cap, "a finite number");
  else if (isinf(o->dmax) && lo_open && o->dmin == 0)
    snprintf(buf, cap, "a positive number");
  else if (isinf(o->dmax))
    snprintf(buf, cap, "a number %s %g", lo_open ? ">" : ">=", o->dmin);
  else if (isinf(o->dmin))
    snprintf(buf, cap, "a number %s %g", hi_open ? "<" : "<=", o->dmax);
  else
    snprintf(buf, cap, "in %c%g, %g%c", lo_open ? '(' : '[', o->dmin, o->dmax, hi_open ? ')' : ']');
}

/* "a, b or c" from "a|b|c" */
static void choices_text(const char *choices, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (const char *c = choices; *c && n + 5 < cap; c++) {
    if (*c != '|') {
      buf[n++] = *c;
      continue;
    }
    const char *sep = strchr(c + 1, '|') ? ", " : " or ";
    size_t k = strlen(sep);
    memcpy(buf + n, sep, k);
    n += k;
  }
  buf[n] = '\0';
}

/* Index of `v` among the '|'-separated choices, or -1. */
static int choice_index(const char *choices, const char *v) {
  size_t len = strlen(v);
  int k = 0;
  for (const char *c = choices;; k++) {
    size_t w = strcspn(c, "|");
    if (w == len && !strncmp(c, v, len))
      return k;
    if (!c[w])
      return -1;
    c += w + 1;
  }
}

/* Store the value of option o; returns RE_OPTS_RUN or the exit code of a usage error. */
static int take(const re_opts_cmd *cmd, const re_opt *o, const char *v) {
  char *end, what[128];
  switch (o->kind) {
  case RE_OPT_KIND_FLAG:
    *(int *)o->dst = 1;
    return RE_OPTS_RUN;
  case RE_OPT_KIND_STRING:
    *(const char **)o->dst = v;
    return RE_OPTS_RUN;
  case RE_OPT_KIND_INT: {
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno == ERANGE || x < o->imin || x > o->imax) {
      describe(o, what, sizeof what);
      return re_cli_usage_error(cmd->name, "--%s must be %s, got '%s'", o->name, what, v);
    }
    *(int64_t *)o->dst = x;
    return RE_OPTS_RUN;
  }
  case RE_OPT_KIND_DOUBLE: {
    double x = strtod(v, &end);
    int lo_open = (o->open & RE_OPT_OPEN_MIN) != 0, hi_open = (o->open & RE_OPT_OPEN_MAX) != 0;
    if (end == v || *end || !isfinite(x) || x < o->dmin || x > o->dmax || (lo_open && x == o->dmin) ||
        (hi_open && x == o->dmax)) {
      describe(o, what, sizeof what);
      return re_cli_usage_error(cmd->name, "--%s must be %s, got '%s'", o->name, what, v);
    }
    *(double *)o->dst = x;
    return RE_OPTS_RUN;
  }
  case RE_OPT_KIND_ENUM: {
    int k = choice_index(o->choices, v);
    if (k < 0) {
      choices_text(o->choices, what, sizeof what);
      return re_cli_usage_error(cmd->name, "--%s must be %s, got '%s'", o->name, what, v);
    }
    *(int *)o->dst = k;
    return RE_OPTS_RUN;
  }
  case RE_OPT_KIND_LIST: {
    re_opt_list *l = o->dst;
    if (l->n >= l->cap)
      return re_cli_usage_error(cmd->name, "--%s can be given at most %d times", o->name, l->cap);
    l->v[l->n++] = v;
    return RE_OPTS_RUN;
  }
  case RE_OPT_KIND_CALL:
    re_err_clear();
    if (o->fn(o, v) != RE_OK)
      return re_cli_usage_error(cmd->name, "%s", re_errmsg());
    return RE_OPTS_RUN;
  }
  return RE_OPTS_RUN;
}

/* One argument that starts with '-': an option (and its value, which may be the next
 * argument: *i advances past it). */
static int option(const re_opts_cmd *cmd, const re_opt *opts, const re_opts_pos *pos, int argc, char **argv,
                  int *i) {
  const char *a = argv[*i], *eq = NULL;
  const re_opt *o;
  if (a[1] == '-') {
    eq = strchr(a, '=');
    o = find_long(opts, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
  } else {
    o = a[2] ? NULL : find_short(opts, a[1]);
  }
  if (!o) {
    if (pos && pos->rest_what)
      return re_cli_usage_error(cmd->name, "unknown option '%s' (%s go after '--')", a, pos->rest_what);
    return re_cli_usage_error(cmd->name, "unknown option '%s'", a);
  }
  if (o->kind == RE_OPT_KIND_FLAG) {
    if (eq)
      return re_cli_usage_error(cmd->name, "option --%s takes no value", o->name);
    return take(cmd, o, NULL);
  }
  if (eq)
    return take(cmd, o, eq + 1);
  if (*i + 1 >= argc)
    return re_cli_usage_error(cmd->name, "option %s needs a value", a);
  return take(cmd, o, argv[++*i]);
}

int re_opts_parse(const re_opts_cmd *cmd, const re_opt *opts, int argc, char **argv, const re_opts_pos *pos) {
  static const re_opts_pos none = {0};
  if (!pos)
    pos = &none;
  int npos = 0, only_positional = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_positional && !strcmp(a, "--")) {
      if (pos->rest) {
        *pos->rest = argv + i + 1;
        *pos->nrest = argc - i - 1;
        break;
      }
      only_positional = 1;
    } else if (!only_positional && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
      re_opts_help(stdout, cmd, opts);
      return RE_EXIT_OK;
    } else if (!only_positional && a[0] == '-' && a[1]) {
      int rc = option(cmd, opts, pos, argc, argv, &i);
      if (rc != RE_OPTS_RUN)
        return rc;
    } else if (npos < pos->max) {
      pos->v[npos++] = argv[i];
    } else if (pos->too_many) {
      return re_cli_usage_error(cmd->name, "unexpected argument '%s' (%s)", a, pos->too_many);
    } else {
      return re_cli_usage_error(cmd->name, "unexpected argument '%s'", a);
    }
  }
  if (pos->n)
    *pos->n = npos;
  if (npos < pos->min)
    return re_cli_usage_error(cmd->name, "%s", pos->too_few ? pos->too_few : "too few arguments");
  return RE_OPTS_RUN;
}

/* Print `text` with the cursor at column `at`, breaking lines at blanks before
 * HELP_WIDTH; continuation lines start at column `indent`. */
static void wrap(FILE *f, const char *text, int at, int indent) {
  int col = at, first = 1;
  for (const char *p = text; *p;) {
    p += strspn(p, " \n");
    if (!*p)
      break;
    int w = (int)strcspn(p, " \n");
    if (!first && col + 1 + w > HELP_WIDTH) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
      first = 1;
    }
    if (!first) {
      fputc(' ', f);
      col++;
    }
    fwrite(p, 1, (size_t)w, f);
    col += w;
    p += w;
    first = 0;
  }
  fputc('\n', f);
}

/* "-o, --name VALUE" of an option into buf; returns its length. */
static int left_text(const re_opt *o, char *buf, size_t cap) {
  const char *meta = o->kind == RE_OPT_KIND_FLAG ? NULL : o->meta ? o->meta : o->choices ? o->choices : "VALUE";
  char shortname[8] = "";
  if (o->letter)
    snprintf(shortname, sizeof shortname, "-%c, ", o->letter);
  int n = snprintf(buf, cap, "%s--%s%s%s", shortname, o->name, meta ? " " : "", meta ? meta : "");
  return n < (int)cap ? n : (int)cap - 1;
}

void re_opts_help(FILE *f, const re_opts_cmd *cmd, const re_opt *opts) {
  const char *u = cmd->usage ? cmd->usage : "[options]";
  for (int line = 0; *u; line++) {
    int w = (int)strcspn(u, "\n");
    fprintf(f, "%s repeval %s %.*s\n", line ? "      " : "usage:", cmd->name, w, u);
    u += w + (u[w] == '\n');
  }
  if (cmd->about)
    fprintf(f, "\n%s", cmd->about);
  static const re_opt help = {.name = "help", .letter = 'h', .kind = RE_OPT_KIND_FLAG, .help = "print this help"};
  char left[256];
  int widest = left_text(&help, left, sizeof left);
  for (const re_opt *o = opts; o->name; o++) {
    int n = left_text(o, left, sizeof left);
    if (n > widest && n <= HELP_MAX_LEFT)
      widest = n;
  }
  int col = 2 + widest + 2;
  fprintf(f, "\nOptions:\n");
  for (const re_opt *o = opts;; o++) {
    const re_opt *e = o->name ? o : &help;
    int n = left_text(e, left, sizeof left);
    fprintf(f, "  %s", left);
    if (2 + n + 2 <= col)
      fprintf(f, "%*s", col - 2 - n, "");
    else /* a long name: its help starts on the next line, in the column */
      fprintf(f, "\n%*s", col, "");
    wrap(f, e->help ? e->help : "", col, col);
    if (!o->name)
      break;
  }
  if (cmd->more)
    fprintf(f, "\n%s", cmd->more);
}

int re_opts_given(int argc, char **argv, const char *arg) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], arg))
      return 1;
  return 0;
}
