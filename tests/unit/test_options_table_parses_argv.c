/* The option-table parser of the repeval commands (pipeline/cli/opts.c): every kind of
 * option in both spellings, "--", positional counts, the usage errors (text and exit
 * code 2) and the help made from the table (exit 0). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli/cli.h"
#include "cli/opts.h"

#define ARGV(...) ((char *[]){"t", __VA_ARGS__, NULL})

static const re_opts_cmd CMD = {"t", "X Y [options]\n--list", "Compare X with Y.\n",
                                "Exit codes: 0 ok, 2 usage.\n"};

static char out[16384]; /* what the last parse printed, stdout and stderr together */

typedef struct vals {
  int json, kernel, called;
  const char *name;
  int64_t batch, seed;
  double sigma, frac;
  const char *items[2];
  re_opt_list list;
  char *pos[2];
  int npos;
  char **rest;
  int nrest;
} vals;

static re_status check_even(const re_opt *opt, const char *value) {
  vals *v = opt->dst;
  if (strlen(value) % 2)
    return re_err(RE_EINVAL, "--%s needs an even number of characters, got '%s'", opt->name, value);
  v->called++;
  return RE_OK;
}

/* Parse argv (NULL-terminated) with the test table, capturing what is printed into `out`. */
static int parse(vals *v, char **argv, int with_rest) {
  int argc = 0;
  while (argv[argc])
    argc++;
  memset(v, 0, sizeof *v);
  v->sigma = 1.0;
  v->batch = 4096;
  v->list = (re_opt_list){v->items, 2, 0};
  const re_opt opts[] = {
      RE_OPT_FLAG("json", &v->json, "print JSON"),
      RE_OPT_ENUM("kernel", &v->kernel, "linear|rbf|polynomial", NULL, "kernel (default linear)"),
      RE_OPT_DOUBLE("sigma", &v->sigma, 0, INFINITY, RE_OPT_OPEN_MIN, "T",
                    "RBF bandwidth factor: sigma^2 = T^2 * median squared pairwise distance, a sentence long "
                    "enough to be wrapped onto a second line (default 1.0)"),
      RE_OPT_DOUBLE("frac", &v->frac, 0, 1, RE_OPT_OPEN_MAX, "F", "a fraction"),
      RE_OPT_INT("batch", &v->batch, 1, INT64_MAX, "N", "rows per batch"),
      RE_OPT_INT("seed", &v->seed, 0, 1000, "S", "seed"),
      {.name = "name", .letter = 'n', .kind = RE_OPT_KIND_STRING, .dst = &v->name, .meta = "NAME", .help = "a name"},
      RE_OPT_LIST("item", &v->list, "I", "an item (repeatable)"),
      RE_OPT_CALL("even", check_even, v, "TEXT", "text of even length"),
      RE_OPT_STRING("a-very-long-option-name", &v->name, "WITH-VALUE", "help on the next line"),
      RE_OPT_END,
  };
  re_opts_pos pos = {2, 2, v->pos, &v->npos, "give X and Y", "give exactly two", NULL, NULL, NULL};
  if (with_rest) {
    pos.min = 1;
    pos.rest = &v->rest;
    pos.nrest = &v->nrest;
    pos.rest_what = "other options";
  }
  fflush(stdout);
  fflush(stderr);
  FILE *t = tmpfile();
  if (!t)
    return -100;
  int o1 = dup(1), o2 = dup(2);
  dup2(fileno(t), 1);
  dup2(fileno(t), 2);
  int rc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  fflush(stdout);
  fflush(stderr);
  dup2(o1, 1);
  dup2(o2, 2);
  close(o1);
  close(o2);
  rewind(t);
  size_t n = fread(out, 1, sizeof out - 1, t);
  out[n] = '\0';
  fclose(t);
  return rc;
}

/* The parse fails with exit code 2 and exactly this message plus the hint to --help. */
static int fails_with(vals *v, char **argv, const char *msg) {
  char want[1024];
  snprintf(want, sizeof want, "repeval t: %s\nTry 'repeval t --help'.\n", msg);
  int rc = parse(v, argv, 0);
  if (rc != RE_EXIT_USAGE || strcmp(out, want)) {
    fprintf(stderr, "got rc %d and\n%swant rc 2 and\n%s", rc, out, want);
    return 0;
  }
  return 1;
}

int main(void) {
  vals v;

  /* every kind, both spellings, positional arguments between options */
  char **a = ARGV("x.npy", "--json", "--kernel", "rbf", "--sigma=0.5", "y.npy", "--batch", "7", "--seed=0", "-n",
                  "first", "--item", "a", "--item=b", "--even", "ab", "--frac", "0");
  CHECK(parse(&v, a, 0) == RE_OPTS_RUN);
  CHECK(out[0] == '\0');
  CHECK(v.json == 1 && v.kernel == 1 && v.sigma == 0.5 && v.batch == 7 && v.seed == 0 && v.frac == 0);
  CHECK(v.name && !strcmp(v.name, "first"));
  CHECK(v.list.n == 2 && !strcmp(v.items[0], "a") && !strcmp(v.items[1], "b"));
  CHECK(v.called == 1);
  CHECK(v.npos == 2 && !strcmp(v.pos[0], "x.npy") && !strcmp(v.pos[1], "y.npy"));

  /* defaults stay when an option is not given; a value may start with '-' */
  a = ARGV("x", "y", "--name", "--json");
  CHECK(parse(&v, a, 0) == RE_OPTS_RUN && v.sigma == 1.0 && v.batch == 4096 && v.kernel == 0 && !v.json &&
        !strcmp(v.name, "--json"));

  /* "--" ends the options: what follows is positional, "-" alone is positional too */
  a = ARGV("-", "--", "--json");
  CHECK(parse(&v, a, 0) == RE_OPTS_RUN && !v.json && v.npos == 2 && !strcmp(v.pos[0], "-") &&
        !strcmp(v.pos[1], "--json"));

  /* ... or, for a command that passes them on, goes to rest */
  a = ARGV("job.yaml", "--json", "--", "--gres", "gpu:1");
  CHECK(parse(&v, a, 1) == RE_OPTS_RUN && v.json && v.npos == 1 && v.nrest == 2 && !strcmp(v.rest[0], "--gres") &&
        !strcmp(v.rest[1], "gpu:1"));
  a = ARGV("job.yaml", "--gpus", "1");
  CHECK(parse(&v, a, 1) == RE_EXIT_USAGE && strstr(out, "unknown option '--gpus' (other options go after '--')"));

  /* usage errors: the message, the hint, exit code 2 */
  CHECK(fails_with(&v, ARGV("x", "y", "--frobnicate"), "unknown option '--frobnicate'"));
  CHECK(fails_with(&v, ARGV("x", "y", "-q"), "unknown option '-q'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--batch"), "option --batch needs a value"));
  CHECK(fails_with(&v, ARGV("x", "y", "-n"), "option -n needs a value"));
  CHECK(fails_with(&v, ARGV("x", "y", "--batch", "x"), "--batch must be a positive integer, got 'x'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--batch", "0"), "--batch must be a positive integer, got '0'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--batch="), "--batch must be a positive integer, got ''"));
  CHECK(fails_with(&v, ARGV("x", "y", "--batch", "3.5"), "--batch must be a positive integer, got '3.5'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--batch", "99999999999999999999"),
                   "--batch must be a positive integer, got '99999999999999999999'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--seed", "1001"), "--seed must be an integer in [0, 1000], got '1001'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--sigma", "-1"), "--sigma must be a positive number, got '-1'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--sigma", "0"), "--sigma must be a positive number, got '0'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--sigma", "inf"), "--sigma must be a positive number, got 'inf'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--sigma", "nan"), "--sigma must be a positive number, got 'nan'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--frac", "1"), "--frac must be in [0, 1), got '1'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--kernel", "cos"), "--kernel must be linear, rbf or polynomial, got 'cos'"));
  CHECK(fails_with(&v, ARGV("x", "y", "--json=1"), "option --json takes no value"));
  CHECK(fails_with(&v, ARGV("x", "y", "--item", "a", "--item", "b", "--item", "c"),
                   "--item can be given at most 2 times"));
  CHECK(fails_with(&v, ARGV("x", "y", "--even", "abc"), "--even needs an even number of characters, got 'abc'"));
  CHECK(fails_with(&v, ARGV("x", "y", "z"), "unexpected argument 'z' (give exactly two)"));
  CHECK(fails_with(&v, ARGV("x"), "give X and Y"));
  CHECK(fails_with(&v, ARGV("--json", "x"), "give X and Y"));
  /* the first error wins, in command-line order */
  CHECK(fails_with(&v, ARGV("--bogus", "--batch", "0", "x", "y"), "unknown option '--bogus'"));

  /* -h / --help anywhere prints the help on stdout and exits 0; an error before it wins */
  CHECK(parse(&v, ARGV("x", "--help"), 0) == RE_EXIT_OK);
  CHECK(!strncmp(out, "usage: repeval t X Y [options]\n       repeval t --list\n\nCompare X with Y.\n\nOptions:\n",
                 strlen("usage: repeval t X Y [options]\n       repeval t --list\n\nCompare X with Y.\n\nOptions:\n")));
  /* options aligned in one column, the help of a long one on the next line, a long
   * help wrapped in the column, -h listed, the text after the options last */
  CHECK(strstr(out, "\n  --json           print JSON\n"));
  CHECK(strstr(out, "\n  --kernel linear|rbf|polynomial\n                   kernel (default linear)\n"));
  CHECK(strstr(out, "\n  -n, --name NAME  a name\n"));
  CHECK(strstr(out, "\n  --sigma T        RBF bandwidth factor: sigma^2 = T^2 * median squared\n"
                    "                   pairwise distance, a sentence long enough to be wrapped onto\n"
                    "                   a second line (default 1.0)\n"));
  CHECK(strstr(out, "\n  --a-very-long-option-name WITH-VALUE\n                   help on the next line\n"));
  CHECK(strstr(out, "\n  -h, --help       print this help\n\nExit codes: 0 ok, 2 usage.\n"));
  for (const char *l = out; *l; l = strchr(l, '\n') + 1)
    CHECK(strcspn(l, "\n") <= 79);
  CHECK(parse(&v, ARGV("-h"), 0) == RE_EXIT_OK && !strncmp(out, "usage: repeval t", 16));
  CHECK(parse(&v, ARGV("--bogus", "-h"), 0) == RE_EXIT_USAGE && strstr(out, "unknown option '--bogus'"));
  CHECK(parse(&v, ARGV("x", "--", "--help"), 0) == RE_OPTS_RUN && !strcmp(v.pos[1], "--help")); /* a file */

  /* decided before parsing: is an argument there at all */
  CHECK(re_opts_given(3, ARGV("x", "--sharded"), "--sharded"));
  CHECK(!re_opts_given(3, ARGV("x", "--sharded=1"), "--sharded"));
  return check_report();
}
