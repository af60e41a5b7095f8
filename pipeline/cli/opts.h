/* Option tables of the repeval commands: each command describes its options once,
 * in a table; one parser reads argv with it and -h/--help prints a usage text made
 * from the same table. Usage errors are printed in the style of re_cli_usage_error
 * ("repeval cka: --batch must be a positive integer, got 'x'" and a hint to --help). */
#ifndef REPEVAL_CLI_OPTS_H
#define REPEVAL_CLI_OPTS_H

#include <stdint.h>
#include <stdio.h>

#include "repeval/core.h"

/* What an option's value is, and what its destination `dst` points to. */
typedef enum re_opt_kind {
  RE_OPT_KIND_FLAG,   /* no value; int *dst is set to 1 */
  RE_OPT_KIND_STRING, /* const char **dst gets the value (a pointer into argv) */
  RE_OPT_KIND_INT,    /* int64_t *dst: a decimal integer in [imin, imax] */
  RE_OPT_KIND_DOUBLE, /* double *dst: a finite number between dmin and dmax (see `open`) */
  RE_OPT_KIND_ENUM,   /* int *dst gets the index of the value in `choices` ("linear|rbf") */
  RE_OPT_KIND_LIST,   /* repeatable: each value is appended to re_opt_list *dst */
  RE_OPT_KIND_CALL    /* fn(opt, value) checks and stores the value (opt->dst is its context) */
} re_opt_kind;

enum { RE_OPT_OPEN_MIN = 1, RE_OPT_OPEN_MAX = 2 }; /* `open` bits: the bound itself is excluded */

/* The values of a repeatable option, in command-line order (pointers into argv). */
typedef struct re_opt_list {
  const char **v; /* room for cap values, the caller's */
  int cap, n;
} re_opt_list;

/* One option. A table is an array ending with RE_OPT_END. */
typedef struct re_opt {
  const char *name; /* long name without the dashes: "batch" for --batch */
  char letter;      /* short name ('o' for -o), 0 for none */
  re_opt_kind kind;
  void *dst;        /* where the value goes (see re_opt_kind) */
  const char *meta; /* placeholder of the value in the help ("N"); ENUM: NULL shows the choices */
  const char *help; /* what it does, plain text; the help wraps it */
  const char *choices; /* ENUM: the values, separated by '|' */
  int64_t imin, imax;  /* INT: bounds, both allowed */
  double dmin, dmax;   /* DOUBLE: bounds */
  int open;            /* DOUBLE: RE_OPT_OPEN_MIN and/or RE_OPT_OPEN_MAX */
  /* CALL: RE_OK, or an error whose message is the whole usage message */
  re_status (*fn)(const struct re_opt *opt, const char *value);
} re_opt;

/* Table entries, one macro per kind. */
#define RE_OPT_END {0}
#define RE_OPT_FLAG(n, d, h) {.name = (n), .kind = RE_OPT_KIND_FLAG, .dst = (d), .help = (h)}
#define RE_OPT_STRING(n, d, m, h) {.name = (n), .kind = RE_OPT_KIND_STRING, .dst = (d), .meta = (m), .help = (h)}
#define RE_OPT_INT(n, d, lo, hi, m, h) \
  {.name = (n), .kind = RE_OPT_KIND_INT, .dst = (d), .meta = (m), .help = (h), .imin = (lo), .imax = (hi)}
#define RE_OPT_DOUBLE(n, d, lo, hi, op, m, h)                                                                 \
  {.name = (n), .kind = RE_OPT_KIND_DOUBLE, .dst = (d), .meta = (m), .help = (h), .dmin = (lo), .dmax = (hi), \
   .open = (op)}
#define RE_OPT_ENUM(n, d, c, m, h) \
  {.name = (n), .kind = RE_OPT_KIND_ENUM, .dst = (d), .meta = (m), .help = (h), .choices = (c)}
#define RE_OPT_LIST(n, d, m, h) {.name = (n), .kind = RE_OPT_KIND_LIST, .dst = (d), .meta = (m), .help = (h)}
#define RE_OPT_CALL(n, f, ctx, m, h) \
  {.name = (n), .kind = RE_OPT_KIND_CALL, .dst = (ctx), .meta = (m), .help = (h), .fn = (f)}

/* The text of a command's help around its options, and its name for messages. */
typedef struct re_opts_cmd {
  const char *name;  /* "cka": messages say "repeval cka: ..." */
  const char *usage; /* what follows "usage: repeval cka " ("X Y [options]"); '\n' starts another usage line */
  const char *about; /* the description printed under the usage line, as written */
  const char *more;  /* printed after the options (output, exit codes), as written; may be NULL */
} re_opts_cmd;

/* The positional arguments a command takes, and where they go. */
typedef struct re_opts_pos {
  int min, max;        /* how many */
  char **v;            /* receives them (room for max) */
  int *n;              /* how many were given (may be NULL) */
  const char *too_few; /* the message when fewer than min ("give two matrices X and Y") */
  const char *too_many; /* said after "unexpected argument 'A'" in parentheses; may be NULL */
  /* Where the arguments after "--" go when they are not positional (submit's sbatch
   * options): *rest and *nrest get them (untouched without "--"); NULL: after "--"
   * every argument is positional. */
  char ***rest;
  int *nrest;
  const char *rest_what; /* what they are, for the hint of an unknown option ("sbatch options") */
} re_opts_pos;

/* re_opts_parse's answer when the command should go on (any other value is its exit code). */
#define RE_OPTS_RUN (-1)

/* Read argv[1..argc) with the table: --name value, --name=value, -x value, flags,
 * "--" and positional arguments (pos NULL: none). Returns RE_OPTS_RUN, RE_EXIT_OK after
 * printing the help for -h/--help, or RE_EXIT_USAGE after printing a usage error. */
int re_opts_parse(const re_opts_cmd *cmd, const re_opt *opts, int argc, char **argv, const re_opts_pos *pos);

/* Print the usage text made from cmd and the table to f. */
void re_opts_help(FILE *f, const re_opts_cmd *cmd, const re_opt *opts);

/* 1 if some argv[1..argc) is exactly `arg` (used before parsing, to decide on MPI). */
int re_opts_given(int argc, char **argv, const char *arg);

/* Print a usage error with a hint to --help; returns RE_EXIT_USAGE. */
int re_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
