/* repeval embed: run a checkpoint on inputs and write the outputs of the requested
 * modules (taps) as .npy files, one per tap, streamed batch by batch. Hugging Face
 * language models and encoders take token ids (N x T integers), an optional attention
 * mask and (BERT) optional token type ids; vision models of model folders take images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "repeval/atomic.h"
#include "repeval/dataset.h"
#include "repeval/nn.h"

#define MAX_LAYERS 256
#define MAX_TAP_NAME 1024

static void help(void) {
  printf("usage: repeval embed --model M --checkpoint C --input X.npy --layers a,b:mean,... --out DIR\n"
         "       repeval embed --model M --checkpoint C --data FORMAT:FILE[,FILE...] --layers ... --out DIR\n"
         "       repeval embed --model HF_DIR --input IDS.npy [--attention-mask MASK.npy] --layers ... --out DIR\n"
         "       repeval embed --model HF_DIR --input PIXELS.npy --layers ... --out DIR\n"
         "       repeval embed --model M --checkpoint C --input X.npy --list\n"
         "\n"
         "Run checkpoint C through model M (a preset: resnet18, resnet34, resnet50,\n"
         "resnet18-cifar, ..., vit, timm-vit, mlp; a model file; or a Hugging Face (or\n"
         "timm) model folder with config.json, whose weights are the checkpoint unless\n"
         "--checkpoint says otherwise) and write DIR/<layer>.npy (rows x d, float32) for\n"
         "every tapped module.\n"
         "\n"
         "Options:\n"
         "  --input X.npy        inputs, N x C x H x W (or N x H x W, or N x D), any dtype,\n"
         "                       used as float32 as they are (normalise beforehand); for\n"
         "                       a language model: token ids, N x T, an integer dtype\n"
         "  --attention-mask M   N x T, 1 for tokens and 0 for padding (right or left)\n"
         "  --token-type-ids S   N x T segment ids of a BERT-style model (default all 0)\n"
         "  --positions P        arange (default: 0..T-1, as transformers without\n"
         "                       position_ids) or mask (counting tokens only, as generate())\n"
         "  --data SPEC          a dataset instead, FORMAT:FILE[,FILE...]: idx:IMAGES[,LABELS]\n"
         "                       (plain or .gz), cifar:BATCH[,...], cifar100:BATCH[,...],\n"
         "                       npy:INPUTS[,LABELS], webdataset:SHARD[,...] (PNG, .npy or\n"
         "                       .txt + .cls), tokens:IDS.npy, token-stream:FILE[,...],\n"
         "                       jsonl:FILE[,...], text:FILE[,...]; uint8 pixels are scaled\n"
         "                       to [0, 1]; labels go to DIR/labels.npy (int32)\n"
         "  --data-opt K=V       an option of the --data format, as in a job file (repeat):\n"
         "                       tokenizer=DIR, seq_len=128, mode=pack, field=text,\n"
         "                       label_field=label, separator=%%, labels=L.npy, ...\n"
         "  --normalize M:S      per-channel (x - mean) / std for --data, e.g. 0.286:0.353\n"
         "                       or 0.49,0.48,0.45:0.25,0.24,0.26\n"
         "  --layers LIST        modules to tap, each name[:mode] with mode flatten (default),\n"
         "                       mean (spatial / token average), cls (first token),\n"
         "                       spatial (H*W rows of C features per image, T rows per\n"
         "                       sequence), tokens (a row per non-padding token, with\n"
         "                       DIR/<layer>.tokens.npy giving sample and position per\n"
         "                       row) or last (last non-padding token); model folders\n"
         "                       also name hidden_states.K, last_hidden_state and\n"
         "                       pooler_output\n"
         "  --out DIR            output folder (created)\n"
         "  --batch B            samples per forward pass (default 64)\n"
         "  --limit N            only the first N samples\n"
         "  --state-dict-key K   select a nested state_dict in a PyTorch checkpoint\n"
         "  --list               print the model's taps and output shapes, then exit\n"
         "  --profile            print the forward time per module (and GFLOP/s) to stderr\n");
}

#define MAX_DATA_OPTS 32

typedef struct opts {
  const char *model, *ckpt, *input, *data, *normalize, *layers, *out, *key, *mask, *positions, *types;
  const char *data_opts[MAX_DATA_OPTS];
  int ndata_opts;
  int64_t batch, limit;
  int list, profile;
} opts;

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 64;
  o->limit = -1;
  for (int i = 1; i < argc; i++) {
    int missing = 0;
    const char *v;
    char *end;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      help();
      return -1;
    } else if ((v = re_cli_opt(argc, argv, &i, "--model", &missing))) {
      o->model = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--checkpoint", &missing))) {
      o->ckpt = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--input", &missing))) {
      o->input = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--data", &missing))) {
      o->data = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--data-opt", &missing))) {
      if (o->ndata_opts == MAX_DATA_OPTS)
        return re_cli_usage_error("embed", "more than %d --data-opt", MAX_DATA_OPTS);
      if (!strchr(v, '=') || v[0] == '=')
        return re_cli_usage_error("embed", "--data-opt takes KEY=VALUE, got '%s'", v);
      o->data_opts[o->ndata_opts++] = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--normalize", &missing))) {
      o->normalize = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--layers", &missing))) {
      o->layers = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--out", &missing))) {
      o->out = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--state-dict-key", &missing))) {
      o->key = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--attention-mask", &missing))) {
      o->mask = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--token-type-ids", &missing))) {
      o->types = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--positions", &missing))) {
      if (strcmp(v, "arange") && strcmp(v, "mask"))
        return re_cli_usage_error("embed", "--positions must be arange or mask, got '%s'", v);
      o->positions = v;
    } else if ((v = re_cli_opt(argc, argv, &i, "--batch", &missing))) {
      o->batch = strtoll(v, &end, 10);
      if (*end || o->batch < 1)
        return re_cli_usage_error("embed", "--batch must be a positive integer, got '%s'", v);
    } else if ((v = re_cli_opt(argc, argv, &i, "--limit", &missing))) {
      o->limit = strtoll(v, &end, 10);
      if (*end || o->limit < 1)
        return re_cli_usage_error("embed", "--limit must be a positive integer, got '%s'", v);
    } else if (missing) {
      return re_cli_usage_error("embed", "option %s needs a value", argv[i]);
    } else if (!strcmp(argv[i], "--list")) {
      o->list = 1;
    } else if (!strcmp(argv[i], "--profile")) {
      o->profile = 1;
    } else {
      return re_cli_usage_error("embed", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!o->model || (!o->input == !o->data))
    return re_cli_usage_error("embed", "--model and one of --input or --data are required");
  if ((o->mask || o->positions || o->types) && !o->input)
    return re_cli_usage_error("embed", "--attention-mask, --token-type-ids and --positions go with --input token ids");
  if ((o->normalize || o->ndata_opts) && !o->data)
    return re_cli_usage_error("embed", "--normalize and --data-opt apply to --data");
  if (!o->list && (!o->layers || !o->out))
    return re_cli_usage_error("embed", "--layers and --out are required (or --list)");
  return 0;
}

/* "format:file[,file...]" and the --data-opt KEY=VALUE options -> an open dataset.
 * idx and npy also take their labels file as a second file. */
static re_status open_data(const opts *o, re_dataset **out) {
  char *copy = NULL, *kv[MAX_DATA_OPTS] = {0};
  const char *files[64];
  int n = 0;
  RE_TRY(re_strdup(o->data, &copy));
  char *colon = strchr(copy, ':');
  re_status st = RE_OK;
  re_dataset_source src = {0};
  if (!colon) {
    st = re_err(RE_EINVAL, "--data '%s': expected FORMAT:FILE[,FILE...] (%s)", o->data, re_dataset_format_names());
  } else {
    *colon = '\0';
    for (char *tok = strtok(colon + 1, ","); tok && n < 64; tok = strtok(NULL, ","))
      files[n++] = tok;
    src.format = copy;
    const re_dataset_format *f = re_dataset_format_find(copy);
    if (!f)
      st = re_err(RE_EINVAL, "--data '%s': unknown format '%s' (%s)", o->data, copy, re_dataset_format_names());
    else if (n == 0)
      st = re_err(RE_EINVAL, "--data '%s': no file", o->data);
    else if ((!strcmp(copy, "idx") || !strcmp(copy, "npy")) && n == 2)
      src.labels = files[--n];
  }
  for (int k = 0; k < o->ndata_opts && st == RE_OK; k++) {
    st = re_strdup(o->data_opts[k], &kv[k]);
    if (st != RE_OK)
      break;
    char *eq = strchr(kv[k], '=');
    *eq = '\0';
    st = re_dataset_source_set(&src, kv[k], eq + 1);
    if (st != RE_OK)
      re_err_context(st, "--data-opt %s: ", o->data_opts[k]);
  }
  src.files = files;
  src.nfiles = n;
  if (st == RE_OK)
    st = re_dataset_open_source(&src, out);
  for (int k = 0; k < MAX_DATA_OPTS; k++)
    free(kv[k]);
  free(copy);
  return st;
}

/* "m1,m2,...:s1,s2,..." */
static re_status parse_normalize(const char *spec, float *mean, float *std, int *n) {
  const char *colon = strchr(spec, ':');
  *n = 0;
  if (!colon)
    return re_err(RE_EINVAL, "--normalize '%s': expected MEANS:STDS, e.g. 0.286:0.353", spec);
  int nm = 0, ns = 0;
  const char *p = spec;
  char *end;
  while (p < colon && nm < 16) {
    mean[nm++] = strtof(p, &end);
    if (end == p)
      return re_err(RE_EINVAL, "--normalize '%s': not a number at '%s'", spec, p);
    p = *end == ',' ? end + 1 : end;
  }
  p = colon + 1;
  while (*p && ns < 16) {
    std[ns++] = strtof(p, &end);
    if (end == p || !(std[ns - 1] > 0))
      return re_err(RE_EINVAL, "--normalize '%s': standard deviations must be positive numbers", spec);
    p = *end == ',' ? end + 1 : end;
  }
  if (nm != ns || nm == 0)
    return re_err(RE_EINVAL, "--normalize '%s': %d means but %d standard deviations", spec, nm, ns);
  *n = nm;
  return RE_OK;
}

/* The files embed wrote in a folder are listed in DIR/embed.json; another run may
 * replace those, and refuses to replace any other file (repeval never replaces what it
 * did not write). */
#define EMBED_LISTING "embed.json"
#define EMBED_MARKER "repeval-embed-1"

static int listed(const char *text, const char *file) {
  char q[700];
  return text && snprintf(q, sizeof q, "\"%s\"", file) < (int)sizeof q && strstr(text, q) != NULL;
}

/* dir/file into buf, refusing what does not fit. */
static re_status join(char *buf, size_t cap, const char *dir, const char *file) {
  if (snprintf(buf, cap, "%s/%s", dir, file) >= (int)cap)
    return re_err(RE_EINVAL, "%s/%s: path too long", dir, file);
  return RE_OK;
}

static re_status check_out_folder(const char *dir, char files[][600], int n, int labels) {
  char path[4400], *text = NULL;
  snprintf(path, sizeof path, "%s/" EMBED_LISTING, dir);
  FILE *f;
  if (re_fopen_regular(path, &f) == RE_OK) {
    re_status st = re_malloc(1 << 20, 1, &text);
    size_t len = st == RE_OK ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    RE_TRY(st);
    text[len] = '\0';
    if (!strstr(text, "\"marker\": \"" EMBED_MARKER "\"")) {
      free(text);
      text = NULL;
    }
  }
  re_err_clear();
  re_status st = RE_OK;
  for (int k = 0; k <= n && st == RE_OK; k++) {
    const char *file = k < n ? files[k] : labels ? "labels.npy" : NULL;
    struct stat sb;
    if (!file)
      continue;
    st = join(path, sizeof path, dir, file);
    if (st == RE_OK && lstat(path, &sb) == 0 && !listed(text, file))
      st = re_err(RE_EINVAL, "%s exists and was not written by repeval embed (not in %s/" EMBED_LISTING "): "
                             "repeval never replaces files it did not write; choose another --out",
                  path, dir);
  }
  free(text);
  return st;
}

static re_status write_listing(const char *dir, char files[][600], int n, int labels) {
  char path[4400];
  snprintf(path, sizeof path, "%s/" EMBED_LISTING, dir);
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  if (!m)
    return re_err(RE_ENOMEM, "embed listing");
  fprintf(m, "{\"marker\": \"" EMBED_MARKER "\", \"files\": [\"" EMBED_LISTING "\"%s", labels ? ", \"labels.npy\"" : "");
  for (int k = 0; k < n; k++) {
    fprintf(m, ", ");
    re_json_string(m, files[k]);
  }
  fprintf(m, "]}\n");
  fclose(m);
  re_atomic at;
  re_status st = re_atomic_open(path, &at);
  if (st == RE_OK)
    st = re_atomic_write(&at, buf, (int64_t)len);
  if (st == RE_OK)
    st = re_atomic_commit(&at);
  else
    re_atomic_abort(&at);
  free(buf);
  return st;
}

static void list_modules(const re_net *net) {
  for (int64_t k = 0; k < re_net_alias_count(net); k++) {
    const char *name, *target;
    int rank;
    int64_t d[3];
    re_net_alias(net, k, &name, &target, &rank, d);
    printf("%-48s %-20s (", name, target);
    for (int r = 0; r < rank; r++)
      printf("%s%lld", r ? ", " : "", (long long)d[r]);
    printf(")\n");
  }
  for (int64_t k = 0; k < re_net_module_count(net); k++) {
    const char *name, *type;
    int rank;
    int64_t d[3];
    re_net_module(net, k, &name, &type, &rank, d);
    printf("%-48s %-20s (", name, type);
    for (int r = 0; r < rank; r++)
      printf("%s%lld", r ? ", " : "", (long long)d[r]);
    printf(")\n");
  }
}

/* --profile: the forward passes' time per module, the slowest first. */
static void print_profile(const re_net *net) {
  double total, cpu;
  int64_t samples, batches, nm = re_net_module_count(net), *order = NULL;
  re_net_profile_total(net, &total, &cpu, &samples, &batches);
  fprintf(stderr, "profile: forward %.3f s wall, %.3f s CPU for %lld samples in %lld batches (%.1f samples/s)\n",
          total, cpu, (long long)samples, (long long)batches, total > 0 ? (double)samples / total : 0.0);
  if (re_malloc(nm > 0 ? nm : 1, sizeof(int64_t), &order) != RE_OK)
    return;
  for (int64_t k = 0; k < nm; k++)
    order[k] = k;
  re_net_profile_entry a, b;
  for (int64_t k = 1; k < nm; k++) /* insertion sort by self time, descending */
    for (int64_t j = k; j > 0; j--) {
      re_net_profile_get(net, order[j - 1], &a);
      re_net_profile_get(net, order[j], &b);
      if (a.self_cpu_seconds >= b.self_cpu_seconds)
        break;
      int64_t t = order[j];
      order[j] = order[j - 1], order[j - 1] = t;
    }
  fprintf(stderr, "%-40s %-18s %-24s %9s %9s %6s %9s\n", "module", "type", "kernel", "wall ms", "CPU ms", "CPU %",
          "GFLOP/s");
  for (int64_t k = 0; k < nm; k++) {
    re_net_profile_get(net, order[k], &a);
    if (a.calls == 0 && a.kernel[0] == '\0')
      continue;
    fprintf(stderr, "%-40s %-18s %-24s %9.2f %9.2f %6.1f", a.name, a.type, a.kernel, a.self_seconds * 1e3,
            a.self_cpu_seconds * 1e3, cpu > 0 ? 100 * a.self_cpu_seconds / cpu : 0.0);
    if (a.gflop > 0 && a.cpu_seconds > 0) /* per CPU second: what one core gets */
      fprintf(stderr, " %9.1f", a.gflop / a.cpu_seconds);
    fprintf(stderr, "\n");
  }
  free(order);
}

static int is_integer_dtype(re_dtype dt) {
  return dt != RE_DTYPE_F16 && dt != RE_DTYPE_BF16 && dt != RE_DTYPE_F32 && dt != RE_DTYPE_F64;
}

/* Rows [r0, r0 + nr) of an integer array as int64 (tmp: nr x cols doubles). 64-bit
 * values are read as they are; the rest through doubles, which hold them exactly. */
/* Non-padding tokens of the first n samples of a token dataset (the rows of a tokens tap). */
static re_status count_dataset_tokens(re_dataset *ds, int64_t n, int64_t B, int64_t *total) {
  int64_t T = re_dataset_get_info(ds)->seq_len, *ids = NULL;
  uint8_t *mk = NULL;
  re_status st = re_malloc(B * T, sizeof(int64_t), &ids);
  if (st == RE_OK)
    st = re_malloc(B * T, 1, &mk);
  *total = 0;
  for (int64_t s = 0; s < n && st == RE_OK; s += B) {
    int64_t b = n - s < B ? n - s : B;
    st = re_dataset_read_tokens(ds, s, s + b, ids, mk, NULL);
    for (int64_t k = 0; k < b * T && st == RE_OK; k++)
      *total += mk[k];
  }
  re_free(&ids);
  re_free(&mk);
  return st;
}

static re_status read_ids(const re_npy *a, int64_t r0, int64_t nr, double *tmp, int64_t *out) {
  int64_t cols = re_npy_cols(a);
  const re_npy_header *h = &a->h;
  if ((h->dtype == RE_DTYPE_I64 || h->dtype == RE_DTYPE_U64) && !h->swap && !h->fortran_order) {
    for (int64_t k = 0; k < nr * cols; k++) {
      uint64_t u;
      memcpy(&u, a->data + (r0 * cols + k) * 8, 8);
      out[k] = h->dtype == RE_DTYPE_U64 && u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    }
    return RE_OK;
  }
  RE_TRY(re_npy_read_rows_f64(a, r0, nr, tmp));
  for (int64_t k = 0; k < nr * cols; k++)
    out[k] = tmp[k] >= -9.0e18 && tmp[k] <= 9.0e18 ? (int64_t)tmp[k] : INT64_MAX;
  return RE_OK;
}

/* Rows of the attention mask as 0 / 1 (any other value becomes 2, which the check refuses). */
static re_status read_mask(const re_npy *a, int64_t r0, int64_t nr, double *tmp, uint8_t *out) {
  RE_TRY(re_npy_read_rows_f64(a, r0, nr, tmp));
  for (int64_t k = 0; k < nr * re_npy_cols(a); k++)
    out[k] = tmp[k] == 0.0 ? 0 : tmp[k] == 1.0 ? 1 : 2;
  return RE_OK;
}

/* Token ids (and mask) of a language model: shapes, dtypes, every id and mask value
 * checked before anything is written; *rows gets the number of non-padding tokens. */
static re_status check_token_inputs(const re_net *net, const opts *o, const re_npy *ids, const re_npy *mask,
                                    const re_npy *types, int64_t n, int64_t B, int64_t *rows) {
  int64_t T = re_net_tokens(net);
  if (ids->h.ndim != 2 || !is_integer_dtype(ids->h.dtype))
    return re_err(RE_EINVAL, "%s: token ids must be an N x T array of integers (got %d dimensions of %s)", o->input,
                  ids->h.ndim, re_dtype_name(ids->h.dtype));
  if (mask && (mask->h.ndim != 2 || !is_integer_dtype(mask->h.dtype) || mask->h.shape[0] != ids->h.shape[0] ||
               mask->h.shape[1] != T))
    return re_err(RE_ESHAPE, "%s: the attention mask must be %lld x %lld integers or booleans, like the ids",
                  o->mask, (long long)ids->h.shape[0], (long long)T);
  if (types && re_net_token_types(net) < 1)
    return re_err(RE_EINVAL, "%s: this model has no token type embedding (type_vocab_size)", o->types);
  if (types && (types->h.ndim != 2 || !is_integer_dtype(types->h.dtype) || types->h.shape[0] != ids->h.shape[0] ||
                types->h.shape[1] != T))
    return re_err(RE_ESHAPE, "%s: token type ids must be %lld x %lld integers, like the ids", o->types,
                  (long long)ids->h.shape[0], (long long)T);
  re_status st = RE_OK;
  double *tmp = NULL;
  int64_t *id = NULL, *ty = NULL;
  uint8_t *mk = NULL;
  RE_CHECK(re_malloc(B * T, sizeof(double), &tmp));
  RE_CHECK(re_malloc(B * T, sizeof(int64_t), &id));
  RE_CHECK(re_malloc(B * T, 1, &mk));
  RE_CHECK(re_malloc(B * T, sizeof(int64_t), &ty));
  *rows = 0;
  for (int64_t s = 0; s < n; s += B) {
    int64_t b = n - s < B ? n - s : B;
    RE_CHECK(read_ids(ids, s, b, tmp, id));
    if (mask)
      RE_CHECK(read_mask(mask, s, b, tmp, mk));
    st = re_net_check_tokens(net, id, mask ? mk : NULL, b, T, s);
    if (st != RE_OK) {
      re_err_context(st, "%s: ", mask ? o->mask : o->input);
      goto done;
    }
    if (types) {
      RE_CHECK(read_ids(types, s, b, tmp, ty));
      st = re_net_check_token_types(net, ty, mask ? mk : NULL, b, T, s);
      if (st != RE_OK) {
        re_err_context(st, "%s: ", o->types);
        goto done;
      }
    }
    for (int64_t k = 0; k < b * T; k++)
      *rows += mask ? mk[k] : 1;
  }
done:
  free(tmp);
  free(id);
  free(mk);
  free(ty);
  return st;
}

int re_cmd_embed(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc != 0)
    return rc < 0 ? RE_EXIT_OK : rc;
  re_status st = RE_OK;
  re_model *model = NULL;
  re_ckpt *ck = NULL;
  re_npy *in = NULL, *mask = NULL, *types = NULL;
  re_dataset *ds = NULL;
  re_npy_writer *lw = NULL;
  int32_t *lab = NULL;
  re_net *net = NULL;
  float *x = NULL;
  double *tmp = NULL;
  int64_t *ids = NULL, *rowidx = NULL, *tys = NULL;
  uint8_t *mk = NULL;
  char *layers = NULL;
  char *names[MAX_LAYERS];
  static char files[2 * MAX_LAYERS + 1][600]; /* tap files, then tokens index files (or empty) */
  re_tap_mode modes[MAX_LAYERS];
  int taps[MAX_LAYERS], ntaps = 0;
  re_npy_writer *w[MAX_LAYERS] = {0}, *wi[MAX_LAYERS] = {0};
  re_ckpt_options copt = {o.key, 0};
  RE_CHECK(re_model_load(o.model, &model));
  int tokens = re_model_takes_tokens(model);
  const char *ckpt = o.ckpt ? o.ckpt : re_model_has_weights(model) ? o.model : NULL; /* a folder holds its weights */
  if (!ckpt) {
    st = re_err(RE_EINVAL, "--checkpoint is required unless --model is a Hugging Face model folder");
    goto done;
  }
  if (!tokens && (o.mask || o.positions || o.types)) {
    st = re_err(RE_EINVAL, "--attention-mask, --token-type-ids and --positions apply to models that take token ids "
                           "(Hugging Face language models and encoders)");
    goto done;
  }
  RE_CHECK(re_ckpt_open(ckpt, &copt, &ck));
  int64_t n, in_dims[3], per;
  int in_rank;
  if (o.data) {
    RE_CHECK(open_data(&o, &ds));
    const re_dataset_info *info = re_dataset_get_info(ds);
    if (info->tokens != tokens) {
      st = re_err(RE_EINVAL, "%s takes %s, but --data %s holds %s", o.model, tokens ? "token ids" : "images or arrays",
                  o.data, info->tokens ? "token sequences" : "images or arrays");
      goto done;
    }
    if (o.normalize) {
      float mean[16], sd[16];
      int nn;
      RE_CHECK(parse_normalize(o.normalize, mean, sd, &nn));
      RE_CHECK(re_dataset_set_normalize(ds, mean, sd, nn));
    }
    n = info->count;
    per = info->sample_dim;
    if (info->tokens) {
      in_rank = 1;
      in_dims[0] = info->seq_len;
    } else if (info->height > 1 || info->width > 1 || info->channels > 1) {
      in_rank = 3;
      in_dims[0] = info->channels, in_dims[1] = info->height, in_dims[2] = info->width;
    } else {
      in_rank = 1;
      in_dims[0] = info->sample_dim;
    }
    goto shaped;
  }
  RE_CHECK(re_cli_open_matrix(o.input, &in));
  n = re_npy_rows(in);
  per = re_npy_cols(in);
  if (in->h.ndim == 4) {
    in_rank = 3;
    memcpy(in_dims, in->h.shape + 1, 3 * sizeof(int64_t));
  } else if (in->h.ndim == 3) {
    in_rank = 3;
    in_dims[0] = 1, in_dims[1] = in->h.shape[1], in_dims[2] = in->h.shape[2];
  } else if (in->h.ndim == 2) {
    in_rank = 1;
    in_dims[0] = in->h.shape[1];
  } else {
    st = re_err(RE_ESHAPE, "%s: inputs must be N x C x H x W, N x H x W or N x D", o.input);
    goto done;
  }
  if (tokens && in->h.ndim != 2) {
    st = re_err(RE_ESHAPE, "%s: token ids must be N x T (got %d dimensions)", o.input, in->h.ndim);
    goto done;
  }
  if (o.mask)
    RE_CHECK(re_cli_open_matrix(o.mask, &mask));
  if (o.types)
    RE_CHECK(re_cli_open_matrix(o.types, &types));
shaped:
  if (o.limit > 0 && o.limit < n)
    n = o.limit;
  int64_t B = o.batch < n ? o.batch : (n > 0 ? n : 1);
  st = re_net_create(model, ck, in_rank, in_dims, B, &net);
  if (st != RE_OK) {
    re_err_context(st, "model %s, checkpoint %s: ", o.model, ckpt);
    goto done;
  }
  re_ckpt_close(&ck); /* the net holds its own float32 weights: unmap the file */
  if (o.positions && !strcmp(o.positions, "mask"))
    re_net_set_positions(net, RE_POSITIONS_FROM_MASK);
  if (o.list) {
    list_modules(net);
    goto done;
  }
  RE_CHECK(re_strdup(o.layers, &layers));
  for (char *tok = strtok(layers, ","); tok; tok = strtok(NULL, ",")) {
    if (ntaps == MAX_LAYERS) {
      st = re_err(RE_EINVAL, "more than %d layers", MAX_LAYERS);
      goto done;
    }
    re_tap_mode mode = RE_TAP_FLATTEN;
    char *colon = strchr(tok, ':');
    if (colon) {
      *colon = '\0';
      RE_CHECK(re_tap_mode_parse(colon + 1, &mode));
    }
    for (int k = 0; k < ntaps; k++)
      if (!strcmp(names[k], tok) && modes[k] == mode) {
        st = re_err(RE_EINVAL, "--layers: %s:%s is listed twice", tok, re_tap_mode_name(mode));
        goto done;
      }
    if (strlen(tok) > MAX_TAP_NAME || strchr(tok, '/') || !strcmp(tok, ".") || !strcmp(tok, "..")) {
      st = re_err(RE_EINVAL, "--layers: '%s' cannot name an output file", tok);
      goto done;
    }
    names[ntaps] = tok;
    modes[ntaps] = mode;
    RE_CHECK(re_net_add_tap(net, tok, mode, &taps[ntaps]));
    ntaps++;
  }
  if (o.profile)
    RE_CHECK(re_net_set_profile(net, 1));
  int64_t token_rows = 0, T = re_net_tokens(net);
  if (tokens && ds)
    RE_CHECK(count_dataset_tokens(ds, n, B, &token_rows));
  else if (tokens)
    RE_CHECK(check_token_inputs(net, &o, in, mask, types, n, B, &token_rows));
  /* a module tapped once is <name>.npy; tapped in several modes, <name>.<mode>.npy each;
   * a tokens tap also writes <name>[.<mode>].tokens.npy (sample, position per row) */
  int nfiles = 0;
  for (int t = 0; t < ntaps; t++) {
    int several = 0;
    for (int k = 0; k < ntaps; k++)
      several |= k != t && !strcmp(names[k], names[t]);
    char base[560];
    if ((size_t)snprintf(base, sizeof base, several ? "%s.%s" : "%s", names[t], re_tap_mode_name(modes[t])) >=
        sizeof base) {
      st = re_err(RE_EINVAL, "--layers: name too long: %s", names[t]);
      goto done;
    }
    snprintf(files[t], sizeof files[t], "%s.npy", base);
    files[ntaps + t][0] = '\0';
    if (modes[t] == RE_TAP_TOKENS && tokens)
      snprintf(files[ntaps + t], sizeof files[ntaps + t], "%s.tokens.npy", base);
  }
  for (int t = 0; t < 2 * ntaps; t++) /* the names written, packed for the listing */
    if (files[t][0] && t != nfiles)
      memcpy(files[nfiles++], files[t], sizeof files[t]);
    else if (files[t][0])
      nfiles++;
  RE_CHECK(check_out_folder(o.out, files, nfiles, ds && re_dataset_get_info(ds)->has_labels));
  RE_CHECK(re_mkdir_p(o.out));
  for (int t = 0; t < ntaps; t++) {
    int64_t dim, rps;
    re_net_tap_shape(net, taps[t], &dim, &rps);
    char path[4400];
    RE_CHECK(join(path, sizeof path, o.out, files[t]));
    int varying = modes[t] == RE_TAP_TOKENS && tokens;
    int64_t shape[2] = {varying ? token_rows : n * rps, dim};
    RE_CHECK(re_npy_writer_open(path, RE_DTYPE_F32, 2, shape, &w[t]));
    if (varying) { /* which sample and position each row is */
      int64_t ishape[2] = {token_rows, 2};
      char iname[600];
      snprintf(iname, sizeof iname, "%.*s.tokens.npy", (int)(strlen(files[t]) - 4), files[t]);
      RE_CHECK(join(path, sizeof path, o.out, iname));
      RE_CHECK(re_npy_writer_open(path, RE_DTYPE_I64, 2, ishape, &wi[t]));
    }
  }
  if (ds && re_dataset_get_info(ds)->has_labels) {
    char path[4096];
    int64_t shape[1] = {n};
    snprintf(path, sizeof path, "%s/labels.npy", o.out);
    RE_CHECK(re_npy_writer_open(path, RE_DTYPE_I32, 1, shape, &lw));
    RE_CHECK(re_malloc(B, sizeof(int32_t), &lab));
  }
  if (tokens) {
    RE_CHECK(re_malloc(B * T, sizeof(double), &tmp));
    RE_CHECK(re_malloc(B * T, sizeof(int64_t), &ids));
    RE_CHECK(re_malloc(B * T, 1, &mk));
    RE_CHECK(re_malloc(2 * B * T, sizeof(int64_t), &rowidx));
    RE_CHECK(re_malloc(B * T, sizeof(int64_t), &tys));
  } else {
    RE_CHECK(re_malloc(B, per * (int64_t)sizeof(float), &x));
  }
  for (int64_t s = 0; s < n; s += B) {
    int64_t b = n - s < B ? n - s : B;
    if (tokens && ds) {
      RE_CHECK(re_dataset_read_tokens(ds, s, s + b, ids, mk, lab));
      if (lw)
        RE_CHECK(re_npy_writer_append(lw, lab, b * (int64_t)sizeof(int32_t)));
      st = re_net_forward_tokens_typed(net, ids, mk, NULL, b, T);
    } else if (tokens) {
      RE_CHECK(read_ids(in, s, b, tmp, ids));
      if (mask)
        RE_CHECK(read_mask(mask, s, b, tmp, mk));
      if (types)
        RE_CHECK(read_ids(types, s, b, tmp, tys));
      st = re_net_forward_tokens_typed(net, ids, mask ? mk : NULL, types ? tys : NULL, b, T);
    } else {
      if (ds) {
        RE_CHECK(re_dataset_read(ds, s, s + b, x, lab));
        if (lw)
          RE_CHECK(re_npy_writer_append(lw, lab, b * (int64_t)sizeof(int32_t)));
      } else {
        RE_CHECK(re_npy_read_rows_f32(in, s, b, x));
      }
      st = re_net_forward(net, x, b);
    }
    if (st != RE_OK) {
      re_err_context(st, "samples %lld..%lld: ", (long long)s, (long long)(s + b));
      goto done;
    }
    for (int t = 0; t < ntaps; t++) {
      int64_t dim, rps;
      const int64_t *smp, *pos;
      re_net_tap_shape(net, taps[t], &dim, &rps);
      int64_t rows = re_net_tap_rows(net, taps[t], &smp, &pos);
      RE_CHECK(re_npy_writer_append(w[t], re_net_tap_data(net, taps[t]), rows * dim * (int64_t)sizeof(float)));
      if (wi[t]) {
        for (int64_t r = 0; r < rows; r++)
          rowidx[2 * r] = s + smp[r], rowidx[2 * r + 1] = pos[r];
        RE_CHECK(re_npy_writer_append(wi[t], rowidx, 2 * rows * (int64_t)sizeof(int64_t)));
      }
    }
  }
  for (int t = 0; t < ntaps; t++) {
    RE_CHECK(re_npy_writer_commit(&w[t]));
    if (wi[t])
      RE_CHECK(re_npy_writer_commit(&wi[t]));
  }
  if (lw)
    RE_CHECK(re_npy_writer_commit(&lw));
  RE_CHECK(write_listing(o.out, files, nfiles, lw != NULL || (ds && re_dataset_get_info(ds)->has_labels)));
  if (o.profile)
    print_profile(net);
done:
  re_npy_writer_abort(&lw);
  free(lab);
  re_dataset_close(&ds);
  for (int t = 0; t < ntaps; t++) {
    re_npy_writer_abort(&w[t]);
    re_npy_writer_abort(&wi[t]);
  }
  free(x);
  free(tmp);
  free(ids);
  free(mk);
  free(rowidx);
  free(tys);
  free(layers);
  re_net_destroy(&net);
  re_npy_close(&in);
  re_npy_close(&mask);
  re_npy_close(&types);
  re_ckpt_close(&ck);
  re_model_destroy(&model);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
