/* repeval embed: run a checkpoint on inputs and write the outputs of the requested
 * modules (taps) as .npy files, one per tap, streamed batch by batch. Hugging Face
 * language models and encoders take token ids (N x T integers), an optional attention
 * mask and (BERT) optional token type ids; vision models of model folders take images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "out/path.h"
#include "repeval/atomic.h"
#include "repeval/dataset.h"
#include "repeval/nn.h"

#define MAX_LAYERS 256
#define MAX_TAP_NAME 1024

#define MAX_DATA_OPTS 32

enum { POSITIONS_ARANGE, POSITIONS_MASK };

typedef struct opts {
  const char *model, *ckpt, *input, *data, *normalize, *layers, *out, *key, *mask, *types;
  const char *data_opts[MAX_DATA_OPTS];
  int ndata_opts;
  int positions; /* -1 (not given), POSITIONS_ARANGE or POSITIONS_MASK */
  int64_t batch, limit;
  int list, profile;
} opts;

static const re_opts_cmd CMD = {
    "embed",
    "--model M --checkpoint C --input X.npy --layers a,b:mean,... --out DIR\n"
    "--model M --checkpoint C --data FORMAT:FILE[,FILE...] --layers ... --out DIR\n"
    "--model HF_DIR --input IDS.npy [--attention-mask MASK.npy] --layers ... --out DIR\n"
    "--model HF_DIR --input PIXELS.npy --layers ... --out DIR\n"
    "--model M --checkpoint C --input X.npy --list",
    "Run checkpoint C through model M (a preset: resnet18, resnet34, resnet50,\n"
    "resnet18-cifar, ..., vit, timm-vit, mlp; a model file; or a Hugging Face (or\n"
    "timm) model folder with config.json, whose weights are the checkpoint unless\n"
    "--checkpoint says otherwise) and write DIR/<layer>.npy (rows x d, float32) for\n"
    "every tapped module.\n",
    NULL};

/* --data-opt KEY=VALUE (repeatable) */
static re_status add_data_opt(const re_opt *opt, const char *v) {
  opts *o = opt->dst;
  if (o->ndata_opts == MAX_DATA_OPTS)
    return re_err(RE_EINVAL, "more than %d --data-opt", MAX_DATA_OPTS);
  if (!strchr(v, '=') || v[0] == '=')
    return re_err(RE_EINVAL, "--data-opt takes KEY=VALUE, got '%s'", v);
  o->data_opts[o->ndata_opts++] = v;
  return RE_OK;
}

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->batch = 64;
  o->limit = -1;
  o->positions = -1;
  const re_opt table[] = {
      RE_OPT_STRING("model", &o->model, "M", "a preset, a model file or a model folder (see above)"),
      RE_OPT_STRING("checkpoint", &o->ckpt, "C", "the weights (default: a model folder's own)"),
      RE_OPT_STRING("input", &o->input, "X.npy",
                    "inputs, N x C x H x W (or N x H x W, or N x D), any dtype, used as float32 as they are "
                    "(normalise beforehand); for a language model: token ids, N x T, an integer dtype"),
      RE_OPT_STRING("attention-mask", &o->mask, "M", "N x T, 1 for tokens and 0 for padding (right or left)"),
      RE_OPT_STRING("token-type-ids", &o->types, "S", "N x T segment ids of a BERT-style model (default all 0)"),
      RE_OPT_ENUM("positions", &o->positions, "arange|mask", "P",
                  "arange (default: 0..T-1, as transformers without position_ids) or mask (counting tokens only, "
                  "as generate())"),
      RE_OPT_STRING("data", &o->data, "SPEC",
                    "a dataset instead, FORMAT:FILE[,FILE...]: idx:IMAGES[,LABELS] (plain or .gz), "
                    "cifar:BATCH[,...], cifar100:BATCH[,...], npy:INPUTS[,LABELS], webdataset:SHARD[,...] (PNG, "
                    ".npy or .txt + .cls), tokens:IDS.npy, token-stream:FILE[,...], jsonl:FILE[,...], "
                    "text:FILE[,...]; uint8 pixels are scaled to [0, 1]; labels go to DIR/labels.npy (int32)"),
      RE_OPT_CALL("data-opt", add_data_opt, o, "K=V",
                  "an option of the --data format, as in a job file (repeat): tokenizer=DIR, seq_len=128, "
                  "mode=pack, field=text, label_field=label, separator=%, labels=L.npy, ..."),
      RE_OPT_STRING("normalize", &o->normalize, "M:S",
                    "per-channel (x - mean) / std for --data, e.g. 0.286:0.353 or 0.49,0.48,0.45:0.25,0.24,0.26"),
      RE_OPT_STRING("layers", &o->layers, "LIST",
                    "modules to tap, each name[:mode] with mode flatten (default), mean (spatial / token average), "
                    "cls (first token), spatial (H*W rows of C features per image, T rows per sequence), tokens (a "
                    "row per non-padding token, with DIR/<layer>.tokens.npy giving sample and position per row) or "
                    "last (last non-padding token); model folders also name hidden_states.K, last_hidden_state "
                    "and pooler_output"),
      RE_OPT_STRING("out", &o->out, "DIR", "output folder (created)"),
      RE_OPT_INT("batch", &o->batch, 1, INT64_MAX, "B", "samples per forward pass (default 64)"),
      RE_OPT_INT("limit", &o->limit, 1, INT64_MAX, "N", "only the first N samples"),
      RE_OPT_STRING("state-dict-key", &o->key, "K", "select a nested state_dict in a PyTorch checkpoint"),
      RE_OPT_FLAG("list", &o->list, "print the model's taps and output shapes, then exit"),
      RE_OPT_FLAG("profile", &o->profile, "print the forward time per module (and GFLOP/s) to stderr"),
      RE_OPT_END};
  int rc = re_opts_parse(&CMD, table, argc, argv, NULL);
  if (rc != RE_OPTS_RUN)
    return rc;
  if (!o->model || (!o->input == !o->data))
    return re_cli_usage_error("embed", "--model and one of --input or --data are required");
  if ((o->mask || o->positions >= 0 || o->types) && !o->input)
    return re_cli_usage_error("embed", "--attention-mask, --token-type-ids and --positions go with --input token ids");
  if ((o->normalize || o->ndata_opts) && !o->data)
    return re_cli_usage_error("embed", "--normalize and --data-opt apply to --data");
  if (!o->list && (!o->layers || !o->out))
    return re_cli_usage_error("embed", "--layers and --out are required (or --list)");
  return RE_OPTS_RUN;
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

static re_status check_out_folder(const char *dir, char files[][600], int n, int labels) {
  char path[4400], *text = NULL;
  RE_TRY(re_path_join(path, sizeof path, "%s/" EMBED_LISTING, dir));
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
    st = re_path_join(path, sizeof path, "%s/%s", dir, file);
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
  RE_TRY(re_path_join(path, sizeof path, "%s/" EMBED_LISTING, dir));
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

/* One line of --list: name, what it is (module type or alias target) and output shape. */
static void print_module(const char *name, const char *what, int rank, const int64_t *d) {
  printf("%-48s %-20s (", name, what);
  for (int r = 0; r < rank; r++)
    printf("%s%lld", r ? ", " : "", (long long)d[r]);
  printf(")\n");
}

/* --list: the model's aliases, then its modules. */
static void list_modules(const re_net *net) {
  const char *name, *what;
  int rank;
  int64_t d[3];
  for (int64_t k = 0; k < re_net_alias_count(net); k++) {
    re_net_alias(net, k, &name, &what, &rank, d);
    print_module(name, what, rank, d);
  }
  for (int64_t k = 0; k < re_net_module_count(net); k++) {
    re_net_module(net, k, &name, &what, &rank, d);
    print_module(name, what, rank, d);
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

/* Rows [r0, r0 + nr) of an integer array as int64 (tmp: nr x cols doubles). 64-bit
 * values are read as they are; the rest through doubles, which hold them exactly. */
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

/* The output files: tap files, then tokens index files (or empty), packed for the listing. */
static char files[2 * MAX_LAYERS + 1][600];

/* One embed run: the model and its inputs, the taps and their writers, the batch buffers. */
typedef struct embed_run {
  const opts *o;
  re_model *model;
  re_ckpt *ck;
  const char *ckpt; /* the weights: --checkpoint, or the model folder */
  int tokens;       /* the model takes token ids */
  re_npy *in, *mask, *types;
  re_dataset *ds;
  int64_t n, per, B, T, token_rows; /* samples, values per sample, batch, tokens per sample, tokens tap rows */
  int64_t in_dims[3];
  int in_rank;
  re_net *net;
  char *layers; /* a copy of --layers that names[] point into */
  char *names[MAX_LAYERS];
  re_tap_mode modes[MAX_LAYERS];
  int taps[MAX_LAYERS], ntaps, nfiles;
  re_npy_writer *w[MAX_LAYERS], *wi[MAX_LAYERS], *lw; /* taps, tokens index files, labels */
  int32_t *lab;
  float *x;
  double *tmp;
  int64_t *ids, *rowidx, *tys;
  uint8_t *mk;
} embed_run;

/* The model, the checkpoint holding its weights, and whether the options suit it. */
static re_status open_model(embed_run *e) {
  const opts *o = e->o;
  RE_TRY(re_model_load(o->model, &e->model));
  e->tokens = re_model_takes_tokens(e->model);
  e->ckpt = o->ckpt ? o->ckpt : re_model_has_weights(e->model) ? o->model : NULL; /* a folder holds its weights */
  if (!e->ckpt)
    return re_err(RE_EINVAL, "--checkpoint is required unless --model is a Hugging Face model folder");
  if (!e->tokens && (o->mask || o->positions >= 0 || o->types))
    return re_err(RE_EINVAL, "--attention-mask, --token-type-ids and --positions apply to models that take token ids "
                             "(Hugging Face language models and encoders)");
  re_ckpt_options copt = {o->key, 0};
  return re_ckpt_open(e->ckpt, &copt, &e->ck);
}

/* --data: the dataset (normalised with --normalize), its size and the shape of a sample. */
static re_status open_data_inputs(embed_run *e) {
  const opts *o = e->o;
  RE_TRY(open_data(o, &e->ds));
  const re_dataset_info *info = re_dataset_get_info(e->ds);
  if (info->tokens != e->tokens)
    return re_err(RE_EINVAL, "%s takes %s, but --data %s holds %s", o->model,
                  e->tokens ? "token ids" : "images or arrays", o->data,
                  info->tokens ? "token sequences" : "images or arrays");
  if (o->normalize) {
    float mean[16], sd[16];
    int nn;
    RE_TRY(parse_normalize(o->normalize, mean, sd, &nn));
    RE_TRY(re_dataset_set_normalize(e->ds, mean, sd, nn));
  }
  e->n = info->count;
  e->per = info->sample_dim;
  if (info->tokens) {
    e->in_rank = 1;
    e->in_dims[0] = info->seq_len;
  } else if (info->height > 1 || info->width > 1 || info->channels > 1) {
    e->in_rank = 3;
    e->in_dims[0] = info->channels, e->in_dims[1] = info->height, e->in_dims[2] = info->width;
  } else {
    e->in_rank = 1;
    e->in_dims[0] = info->sample_dim;
  }
  return RE_OK;
}

/* --input (and --attention-mask, --token-type-ids): the arrays, their size and the shape of a sample. */
static re_status open_array_inputs(embed_run *e) {
  const opts *o = e->o;
  RE_TRY(re_cli_open_matrix(o->input, &e->in));
  const re_npy *in = e->in;
  e->n = re_npy_rows(in);
  e->per = re_npy_cols(in);
  if (in->h.ndim == 4) {
    e->in_rank = 3;
    memcpy(e->in_dims, in->h.shape + 1, 3 * sizeof(int64_t));
  } else if (in->h.ndim == 3) {
    e->in_rank = 3;
    e->in_dims[0] = 1, e->in_dims[1] = in->h.shape[1], e->in_dims[2] = in->h.shape[2];
  } else if (in->h.ndim == 2) {
    e->in_rank = 1;
    e->in_dims[0] = in->h.shape[1];
  } else {
    return re_err(RE_ESHAPE, "%s: inputs must be N x C x H x W, N x H x W or N x D", o->input);
  }
  if (e->tokens && in->h.ndim != 2)
    return re_err(RE_ESHAPE, "%s: token ids must be N x T (got %d dimensions)", o->input, in->h.ndim);
  if (o->mask)
    RE_TRY(re_cli_open_matrix(o->mask, &e->mask));
  if (o->types)
    RE_TRY(re_cli_open_matrix(o->types, &e->types));
  return RE_OK;
}

/* The network for batches of B samples (--limit applied); the checkpoint is closed after. */
static re_status create_net(embed_run *e) {
  const opts *o = e->o;
  if (o->limit > 0 && o->limit < e->n)
    e->n = o->limit;
  e->B = o->batch < e->n ? o->batch : (e->n > 0 ? e->n : 1);
  re_status st = re_net_create(e->model, e->ck, e->in_rank, e->in_dims, e->B, &e->net);
  if (st != RE_OK)
    return re_err_context(st, "model %s, checkpoint %s: ", o->model, e->ckpt);
  re_ckpt_close(&e->ck); /* the net holds its own float32 weights: unmap the file */
  if (o->positions == POSITIONS_MASK)
    re_net_set_positions(e->net, RE_POSITIONS_FROM_MASK);
  return RE_OK;
}

/* --layers: a tap per name[:mode], each once and each a valid file name. */
static re_status add_taps(embed_run *e) {
  RE_TRY(re_strdup(e->o->layers, &e->layers));
  for (char *tok = strtok(e->layers, ","); tok; tok = strtok(NULL, ",")) {
    if (e->ntaps == MAX_LAYERS)
      return re_err(RE_EINVAL, "more than %d layers", MAX_LAYERS);
    re_tap_mode mode = RE_TAP_FLATTEN;
    char *colon = strchr(tok, ':');
    if (colon) {
      *colon = '\0';
      RE_TRY(re_tap_mode_parse(colon + 1, &mode));
    }
    for (int k = 0; k < e->ntaps; k++)
      if (!strcmp(e->names[k], tok) && e->modes[k] == mode)
        return re_err(RE_EINVAL, "--layers: %s:%s is listed twice", tok, re_tap_mode_name(mode));
    if (strlen(tok) > MAX_TAP_NAME || strchr(tok, '/') || !strcmp(tok, ".") || !strcmp(tok, ".."))
      return re_err(RE_EINVAL, "--layers: '%s' cannot name an output file", tok);
    e->names[e->ntaps] = tok;
    e->modes[e->ntaps] = mode;
    RE_TRY(re_net_add_tap(e->net, tok, mode, &e->taps[e->ntaps]));
    e->ntaps++;
  }
  return RE_OK;
}

/* The names of the output files: a module tapped once is <name>.npy; tapped in several
 * modes, <name>.<mode>.npy each; a tokens tap also writes <name>[.<mode>].tokens.npy
 * (sample, position per row). files[] gets them packed, e->nfiles counts them. */
static re_status name_files(embed_run *e) {
  int ntaps = e->ntaps;
  for (int t = 0; t < ntaps; t++) {
    int several = 0;
    for (int k = 0; k < ntaps; k++)
      several |= k != t && !strcmp(e->names[k], e->names[t]);
    char base[560];
    if ((size_t)snprintf(base, sizeof base, several ? "%s.%s" : "%s", e->names[t], re_tap_mode_name(e->modes[t])) >=
        sizeof base)
      return re_err(RE_EINVAL, "--layers: name too long: %s", e->names[t]);
    snprintf(files[t], sizeof files[t], "%s.npy", base);
    files[ntaps + t][0] = '\0';
    if (e->modes[t] == RE_TAP_TOKENS && e->tokens)
      snprintf(files[ntaps + t], sizeof files[ntaps + t], "%s.tokens.npy", base);
  }
  e->nfiles = 0;
  for (int t = 0; t < 2 * ntaps; t++) /* the names written, packed for the listing */
    if (files[t][0] && t != e->nfiles)
      memcpy(files[e->nfiles++], files[t], sizeof files[t]);
    else if (files[t][0])
      e->nfiles++;
  return RE_OK;
}

/* Whether the dataset has labels, written to DIR/labels.npy. */
static int has_labels(const embed_run *e) { return e->ds && re_dataset_get_info(e->ds)->has_labels; }

/* The output folder (checked, created) and a writer per output file. */
static re_status open_writers(embed_run *e) {
  const opts *o = e->o;
  RE_TRY(check_out_folder(o->out, files, e->nfiles, has_labels(e)));
  RE_TRY(re_mkdir_p(o->out));
  for (int t = 0; t < e->ntaps; t++) {
    int64_t dim, rps;
    re_net_tap_shape(e->net, e->taps[t], &dim, &rps);
    char path[4400];
    RE_TRY(re_path_join(path, sizeof path, "%s/%s", o->out, files[t]));
    int varying = e->modes[t] == RE_TAP_TOKENS && e->tokens;
    int64_t shape[2] = {varying ? e->token_rows : e->n * rps, dim};
    RE_TRY(re_npy_writer_open(path, RE_DTYPE_F32, 2, shape, &e->w[t]));
    if (varying) { /* which sample and position each row is */
      int64_t ishape[2] = {e->token_rows, 2};
      char iname[600];
      snprintf(iname, sizeof iname, "%.*s.tokens.npy", (int)(strlen(files[t]) - 4), files[t]);
      RE_TRY(re_path_join(path, sizeof path, "%s/%s", o->out, iname));
      RE_TRY(re_npy_writer_open(path, RE_DTYPE_I64, 2, ishape, &e->wi[t]));
    }
  }
  if (has_labels(e)) {
    char path[4096];
    int64_t shape[1] = {e->n};
    RE_TRY(re_path_join(path, sizeof path, "%s/labels.npy", o->out));
    RE_TRY(re_npy_writer_open(path, RE_DTYPE_I32, 1, shape, &e->lw));
    RE_TRY(re_malloc(e->B, sizeof(int32_t), &e->lab));
  }
  return RE_OK;
}

/* The buffers of one batch: token ids, mask, type ids and tokens tap rows, or input values. */
static re_status alloc_buffers(embed_run *e) {
  int64_t B = e->B, T = e->T;
  if (!e->tokens)
    return re_malloc(B, e->per * (int64_t)sizeof(float), &e->x);
  RE_TRY(re_malloc(B * T, sizeof(double), &e->tmp));
  RE_TRY(re_malloc(B * T, sizeof(int64_t), &e->ids));
  RE_TRY(re_malloc(B * T, 1, &e->mk));
  RE_TRY(re_malloc(2 * B * T, sizeof(int64_t), &e->rowidx));
  return re_malloc(B * T, sizeof(int64_t), &e->tys);
}

/* Read samples [s, s + b) into the batch buffers (their labels appended to labels.npy). */
static re_status read_batch(embed_run *e, int64_t s, int64_t b) {
  if (e->tokens && e->ds) {
    RE_TRY(re_dataset_read_tokens(e->ds, s, s + b, e->ids, e->mk, e->lab));
  } else if (e->tokens) {
    RE_TRY(read_ids(e->in, s, b, e->tmp, e->ids));
    if (e->mask)
      RE_TRY(read_mask(e->mask, s, b, e->tmp, e->mk));
    if (e->types)
      RE_TRY(read_ids(e->types, s, b, e->tmp, e->tys));
    return RE_OK;
  } else if (e->ds) {
    RE_TRY(re_dataset_read(e->ds, s, s + b, e->x, e->lab));
  } else {
    return re_npy_read_rows_f32(e->in, s, b, e->x);
  }
  return e->lw ? re_npy_writer_append(e->lw, e->lab, b * (int64_t)sizeof(int32_t)) : RE_OK;
}

/* The forward pass of the b samples read (a dataset's tokens come with their mask). */
static re_status forward_batch(embed_run *e, int64_t b) {
  if (!e->tokens)
    return re_net_forward(e->net, e->x, b);
  return re_net_forward_tokens_typed(e->net, e->ids, e->ds || e->mask ? e->mk : NULL, e->types ? e->tys : NULL, b,
                                     e->T);
}

/* Append every tap's rows of the batch starting at sample s (and their sample, position). */
static re_status append_taps(embed_run *e, int64_t s) {
  for (int t = 0; t < e->ntaps; t++) {
    int64_t dim, rps;
    const int64_t *smp, *pos;
    re_net_tap_shape(e->net, e->taps[t], &dim, &rps);
    int64_t rows = re_net_tap_rows(e->net, e->taps[t], &smp, &pos);
    RE_TRY(re_npy_writer_append(e->w[t], re_net_tap_data(e->net, e->taps[t]), rows * dim * (int64_t)sizeof(float)));
    if (e->wi[t]) {
      for (int64_t r = 0; r < rows; r++)
        e->rowidx[2 * r] = s + smp[r], e->rowidx[2 * r + 1] = pos[r];
      RE_TRY(re_npy_writer_append(e->wi[t], e->rowidx, 2 * rows * (int64_t)sizeof(int64_t)));
    }
  }
  return RE_OK;
}

/* Every batch through the network into the writers, then the files committed and listed. */
static re_status run_batches(embed_run *e) {
  for (int64_t s = 0; s < e->n; s += e->B) {
    int64_t b = e->n - s < e->B ? e->n - s : e->B;
    RE_TRY(read_batch(e, s, b));
    re_status st = forward_batch(e, b);
    if (st != RE_OK)
      return re_err_context(st, "samples %lld..%lld: ", (long long)s, (long long)(s + b));
    RE_TRY(append_taps(e, s));
  }
  for (int t = 0; t < e->ntaps; t++) {
    RE_TRY(re_npy_writer_commit(&e->w[t]));
    if (e->wi[t])
      RE_TRY(re_npy_writer_commit(&e->wi[t]));
  }
  int labels = e->lw != NULL || has_labels(e);
  if (e->lw)
    RE_TRY(re_npy_writer_commit(&e->lw));
  return write_listing(e->o->out, files, e->nfiles, labels);
}

/* Taps, output files and writers, then the batches (after the network is made). */
static re_status embed(embed_run *e) {
  const opts *o = e->o;
  RE_TRY(add_taps(e));
  if (o->profile)
    RE_TRY(re_net_set_profile(e->net, 1));
  e->T = re_net_tokens(e->net);
  if (e->tokens && e->ds)
    RE_TRY(count_dataset_tokens(e->ds, e->n, e->B, &e->token_rows));
  else if (e->tokens)
    RE_TRY(check_token_inputs(e->net, o, e->in, e->mask, e->types, e->n, e->B, &e->token_rows));
  RE_TRY(name_files(e));
  RE_TRY(open_writers(e));
  RE_TRY(alloc_buffers(e));
  RE_TRY(run_batches(e));
  if (o->profile)
    print_profile(e->net);
  return RE_OK;
}

/* Abort what was not committed and free everything. */
static void embed_free(embed_run *e) {
  re_npy_writer_abort(&e->lw);
  free(e->lab);
  re_dataset_close(&e->ds);
  for (int t = 0; t < e->ntaps; t++) {
    re_npy_writer_abort(&e->w[t]);
    re_npy_writer_abort(&e->wi[t]);
  }
  void *owned[] = {e->x, e->tmp, e->ids, e->mk, e->rowidx, e->tys, e->layers};
  for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++)
    free(owned[k]);
  re_net_destroy(&e->net);
  re_npy_close(&e->in);
  re_npy_close(&e->mask);
  re_npy_close(&e->types);
  re_ckpt_close(&e->ck);
  re_model_destroy(&e->model);
}

int re_cmd_embed(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc != RE_OPTS_RUN)
    return rc;
  embed_run e;
  memset(&e, 0, sizeof e);
  e.o = &o;
  re_status st = open_model(&e);
  if (st == RE_OK)
    st = o.data ? open_data_inputs(&e) : open_array_inputs(&e);
  if (st == RE_OK)
    st = create_net(&e);
  if (st == RE_OK && o.list)
    list_modules(e.net);
  else if (st == RE_OK)
    st = embed(&e);
  embed_free(&e);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
