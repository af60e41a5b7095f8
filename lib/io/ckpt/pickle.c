/* Restricted unpickler for torch.save's data.pkl; see pickle.h.
 * Opcode semantics follow CPython's Lib/pickle.py and Lib/pickletools.py
 * (protocols 2-5); only data-building opcodes are implemented. */
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct re_pickle {
  re_pk_obj **objs; /* every object, for freeing */
  int64_t nobjs, cap;
  re_pk_obj *root;
};

typedef struct up {
  const uint8_t *b;
  int64_t len, pos, op_pos;
  const char *label;
  re_pickle *pk;
  re_pk_obj **stack;
  int64_t sp, scap;
  int64_t *marks; /* stack heights at each MARK */
  int64_t nmarks, mcap;
  re_pk_obj **memo; /* NULL where unset */
  int64_t memo_cap, memo_count;
} up;

const char *re_pk_kind_name(re_pk_kind k) {
  static const char *names[] = {"None", "bool",   "int",   "float", "str",     "bytes",  "tuple",
                                "list", "dict",   "set",   "global", "storage", "tensor"};
  return (k >= 0 && k <= RE_PK_TENSOR) ? names[k] : "?";
}

/* Names of all pickle opcodes (pickletools), for messages about refused ones. */
static const char *op_name(uint8_t op) {
  switch (op) {
  case '(': return "MARK";
  case '.': return "STOP";
  case '0': return "POP";
  case '1': return "POP_MARK";
  case '2': return "DUP";
  case 'F': return "FLOAT";
  case 'I': return "INT";
  case 'J': return "BININT";
  case 'K': return "BININT1";
  case 'L': return "LONG";
  case 'M': return "BININT2";
  case 'N': return "NONE";
  case 'P': return "PERSID";
  case 'Q': return "BINPERSID";
  case 'R': return "REDUCE";
  case 'S': return "STRING";
  case 'T': return "BINSTRING";
  case 'U': return "SHORT_BINSTRING";
  case 'V': return "UNICODE";
  case 'X': return "BINUNICODE";
  case 'a': return "APPEND";
  case 'b': return "BUILD";
  case 'c': return "GLOBAL";
  case 'd': return "DICT";
  case '}': return "EMPTY_DICT";
  case 'e': return "APPENDS";
  case 'g': return "GET";
  case 'h': return "BINGET";
  case 'i': return "INST";
  case 'j': return "LONG_BINGET";
  case 'l': return "LIST";
  case ']': return "EMPTY_LIST";
  case 'o': return "OBJ";
  case 'p': return "PUT";
  case 'q': return "BINPUT";
  case 'r': return "LONG_BINPUT";
  case 's': return "SETITEM";
  case 't': return "TUPLE";
  case ')': return "EMPTY_TUPLE";
  case 'u': return "SETITEMS";
  case 'G': return "BINFLOAT";
  case 0x80: return "PROTO";
  case 0x81: return "NEWOBJ";
  case 0x82: return "EXT1";
  case 0x83: return "EXT2";
  case 0x84: return "EXT4";
  case 0x85: return "TUPLE1";
  case 0x86: return "TUPLE2";
  case 0x87: return "TUPLE3";
  case 0x88: return "NEWTRUE";
  case 0x89: return "NEWFALSE";
  case 0x8a: return "LONG1";
  case 0x8b: return "LONG4";
  case 'B': return "BINBYTES";
  case 'C': return "SHORT_BINBYTES";
  case 0x8c: return "SHORT_BINUNICODE";
  case 0x8d: return "BINUNICODE8";
  case 0x8e: return "BINBYTES8";
  case 0x8f: return "EMPTY_SET";
  case 0x90: return "ADDITEMS";
  case 0x91: return "FROZENSET";
  case 0x92: return "NEWOBJ_EX";
  case 0x93: return "STACK_GLOBAL";
  case 0x94: return "MEMOIZE";
  case 0x95: return "FRAME";
  case 0x96: return "BYTEARRAY8";
  case 0x97: return "NEXT_BUFFER";
  case 0x98: return "READONLY_BUFFER";
  }
  return NULL;
}

static re_status fail(const up *u, re_status st, const char *what) {
  return re_err(st, "%s: pickle byte %lld: %s", u->label, (long long)u->op_pos, what);
}

/* Copy a name into a message, replacing non-printable bytes. */
static void printable(char *dst, size_t cap, const char *src, int64_t len) {
  size_t k = 0;
  for (int64_t i = 0; i < len && k + 1 < cap; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  dst[k] = '\0';
}

static re_status new_obj(up *u, re_pk_kind kind, re_pk_obj **out) {
  re_pickle *pk = u->pk;
  if (pk->nobjs >= RE_PK_MAX_OBJECTS)
    return fail(u, RE_EFORMAT, "more objects than the limit of 4194304");
  if (pk->nobjs == pk->cap) {
    int64_t ncap = pk->cap ? 2 * pk->cap : 256;
    RE_TRY(re_realloc(&pk->objs, ncap, sizeof *pk->objs));
    pk->cap = ncap;
  }
  re_pk_obj *o;
  RE_TRY(re_calloc(1, sizeof *o, &o));
  o->kind = kind;
  pk->objs[pk->nobjs++] = o;
  *out = o;
  return RE_OK;
}

static re_status push(up *u, re_pk_obj *o) {
  if (u->sp >= RE_PK_MAX_STACK)
    return fail(u, RE_EFORMAT, "stack deeper than the limit of 1048576");
  if (u->sp == u->scap) {
    int64_t ncap = u->scap ? 2 * u->scap : 256;
    RE_TRY(re_realloc(&u->stack, ncap, sizeof *u->stack));
    u->scap = ncap;
  }
  u->stack[u->sp++] = o;
  return RE_OK;
}

static int64_t floor_of(const up *u) { return u->nmarks ? u->marks[u->nmarks - 1] : 0; }

static re_status pop(up *u, re_pk_obj **o) {
  if (u->sp <= floor_of(u))
    return fail(u, RE_EFORMAT, "stack underflow");
  *o = u->stack[--u->sp];
  return RE_OK;
}

static re_status top(up *u, re_pk_obj **o) {
  if (u->sp <= floor_of(u))
    return fail(u, RE_EFORMAT, "stack underflow");
  *o = u->stack[u->sp - 1];
  return RE_OK;
}

/* Items pushed since the last MARK: stack[*from, u->sp). Removes the mark. */
static re_status pop_mark(up *u, int64_t *from) {
  if (!u->nmarks)
    return fail(u, RE_EFORMAT, "no MARK on the stack");
  *from = u->marks[--u->nmarks];
  return RE_OK;
}

static re_status append_item(re_pk_obj *c, re_pk_obj *item) {
  if (c->n == c->cap) {
    int64_t ncap = c->cap ? 2 * c->cap : 4;
    RE_TRY(re_realloc(&c->items, ncap, sizeof *c->items));
    c->cap = ncap;
  }
  c->items[c->n++] = item;
  return RE_OK;
}

/* A container holding stack[from, to) (for dicts: key/value pairs, n = pairs). */
static re_status make_seq(up *u, re_pk_kind kind, int64_t from, int64_t to, re_pk_obj **out) {
  re_pk_obj *o;
  RE_TRY(new_obj(u, kind, &o));
  for (int64_t k = from; k < to; k++)
    RE_TRY(append_item(o, u->stack[k]));
  if (kind == RE_PK_DICT) {
    if ((to - from) % 2)
      return fail(u, RE_EFORMAT, "odd number of items for a dict");
    o->n /= 2;
  }
  *out = o;
  return RE_OK;
}

static re_status dict_add_items(up *u, re_pk_obj *d, int64_t from, int64_t to) {
  if (d->kind != RE_PK_DICT)
    return fail(u, RE_EFORMAT, "SETITEM(S) on something that is not a dict");
  if ((to - from) % 2)
    return fail(u, RE_EFORMAT, "SETITEMS with an odd number of items");
  int64_t n = 2 * d->n; /* items[] holds 2n entries; append_item counts them singly */
  d->n = n;
  for (int64_t k = from; k < to; k++)
    RE_TRY(append_item(d, u->stack[k]));
  d->n /= 2;
  return RE_OK;
}

/* ---- reading the input ------------------------------------------------- */

static re_status need(up *u, int64_t n) {
  if (n < 0 || u->len - u->pos < n)
    return fail(u, RE_EFORMAT, "truncated: argument runs past the end of the pickle");
  return RE_OK;
}

static uint64_t rd_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int k = n - 1; k >= 0; k--)
    v = (v << 8) | p[k];
  return v;
}

/* Valid UTF-8, allowing encoded surrogates as CPython's 'surrogatepass' does. */
static int utf8_ok(const uint8_t *s, int64_t n) {
  int64_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    int len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0)
        lo = 0xA0;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0)
        lo = 0x90;
      if (c == 0xF4)
        hi = 0x8F;
    } else {
      return 0;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
      return 0;
    for (int k = 2; k < len; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF)
        return 0;
    i += len;
  }
  return 1;
}

static re_status push_string(up *u, re_pk_kind kind, uint64_t n) {
  if (n > (uint64_t)(u->len - u->pos))
    return fail(u, RE_EFORMAT, "string length runs past the end of the pickle");
  const uint8_t *s = u->b + u->pos;
  if (kind == RE_PK_STR && !utf8_ok(s, (int64_t)n))
    return fail(u, RE_EFORMAT, "string is not valid UTF-8");
  re_pk_obj *o;
  RE_TRY(new_obj(u, kind, &o));
  RE_TRY(re_malloc((int64_t)n + 1, 1, &o->s));
  memcpy(o->s, s, (size_t)n);
  o->s[n] = '\0';
  o->len = (int64_t)n;
  u->pos += (int64_t)n;
  return push(u, o);
}

static re_status push_int(up *u, int64_t v) {
  re_pk_obj *o;
  RE_TRY(new_obj(u, RE_PK_INT, &o));
  o->i = v;
  return push(u, o);
}

/* LONG1/LONG4: little-endian two's complement of n bytes; we keep those that fit int64. */
static re_status push_long(up *u, uint64_t n) {
  if (n > (uint64_t)(u->len - u->pos))
    return fail(u, RE_EFORMAT, "LONG runs past the end of the pickle");
  if (n > 8)
    return fail(u, RE_EUNSUPPORTED, "integer wider than 64 bits");
  uint64_t v = 0;
  if (n) {
    v = rd_le(u->b + u->pos, (int)n);
    if (n < 8 && (u->b[u->pos + n - 1] & 0x80))
      v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
  }
  u->pos += (int64_t)n;
  int64_t s;
  memcpy(&s, &v, sizeof s);
  return push_int(u, s);
}

/* ---- globals --------------------------------------------------------- */

static int storage_dtype(const char *name, re_dtype *dt) {
  static const struct {
    const char *n;
    re_dtype dt;
  } t[] = {{"FloatStorage", RE_DTYPE_F32}, {"DoubleStorage", RE_DTYPE_F64}, {"HalfStorage", RE_DTYPE_F16},
           {"BFloat16Storage", RE_DTYPE_BF16}, {"LongStorage", RE_DTYPE_I64},  {"IntStorage", RE_DTYPE_I32},
           {"ShortStorage", RE_DTYPE_I16},   {"CharStorage", RE_DTYPE_I8},    {"ByteStorage", RE_DTYPE_U8},
           {"BoolStorage", RE_DTYPE_BOOL}};
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
    if (!strcmp(name, t[k].n)) {
      *dt = t[k].dt;
      return 1;
    }
  return 0;
}

static int torch_dtype(const char *name, re_dtype *dt) {
  static const struct {
    const char *n;
    re_dtype dt;
  } t[] = {{"float32", RE_DTYPE_F32}, {"float", RE_DTYPE_F32},    {"float64", RE_DTYPE_F64},
           {"double", RE_DTYPE_F64},  {"float16", RE_DTYPE_F16},  {"half", RE_DTYPE_F16},
           {"bfloat16", RE_DTYPE_BF16}, {"int64", RE_DTYPE_I64},  {"long", RE_DTYPE_I64},
           {"int32", RE_DTYPE_I32},   {"int", RE_DTYPE_I32},      {"int16", RE_DTYPE_I16},
           {"short", RE_DTYPE_I16},   {"int8", RE_DTYPE_I8},      {"uint8", RE_DTYPE_U8},
           {"uint16", RE_DTYPE_U16},  {"uint32", RE_DTYPE_U32},   {"uint64", RE_DTYPE_U64},
           {"bool", RE_DTYPE_BOOL}};
  for (size_t k = 0; k < sizeof t / sizeof t[0]; k++)
    if (!strcmp(name, t[k].n)) {
      *dt = t[k].dt;
      return 1;
    }
  return 0;
}

static re_status push_global(up *u, const char *mod, int64_t mlen, const char *name, int64_t nlen) {
  re_pk_global g;
  re_dtype dt = RE_DTYPE_U8;
  int ok = 1;
  int has_nul = (int64_t)strlen(mod) != mlen || (int64_t)strlen(name) != nlen;
  if (has_nul)
    ok = 0;
  else if (!strcmp(mod, "collections") && !strcmp(name, "OrderedDict"))
    g = RE_PKG_ORDERED_DICT;
  else if ((!strcmp(mod, "builtins") || !strcmp(mod, "__builtin__")) && !strcmp(name, "set"))
    g = RE_PKG_SET;
  else if (!strcmp(mod, "torch") && !strcmp(name, "Size"))
    g = RE_PKG_TORCH_SIZE;
  else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor"))
    g = RE_PKG_REBUILD_TENSOR;
  else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2"))
    g = RE_PKG_REBUILD_TENSOR_V2;
  else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_tensor_v3"))
    g = RE_PKG_REBUILD_TENSOR_V3;
  else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_parameter"))
    g = RE_PKG_REBUILD_PARAMETER;
  else if (!strcmp(mod, "torch._utils") && !strcmp(name, "_rebuild_parameter_with_state"))
    g = RE_PKG_REBUILD_PARAMETER_WITH_STATE;
  else if (!strcmp(mod, "torch") && storage_dtype(name, &dt))
    g = RE_PKG_STORAGE_TYPE;
  else if ((!strcmp(mod, "torch") || !strcmp(mod, "torch.storage")) && !strcmp(name, "UntypedStorage"))
    g = RE_PKG_UNTYPED_STORAGE;
  else if (!strcmp(mod, "torch") && torch_dtype(name, &dt))
    g = RE_PKG_DTYPE;
  else
    ok = 0;
  if (!ok) {
    char m[128], n[128], what[512];
    printable(m, sizeof m, mod, mlen);
    printable(n, sizeof n, name, nlen);
    snprintf(what, sizeof what,
             "refusing global '%s.%s' (only tensors, storages, dtypes, collections.OrderedDict, torch.Size and "
             "set can be loaded; save a state_dict of plain tensors instead)", m, n);
    return fail(u, RE_EUNSUPPORTED, what);
  }
  re_pk_obj *o;
  RE_TRY(new_obj(u, RE_PK_GLOBAL, &o));
  o->i = g;
  o->dtype = dt;
  RE_TRY(re_malloc(mlen + nlen + 2, 1, &o->s));
  memcpy(o->s, mod, (size_t)mlen);
  o->s[mlen] = '.';
  memcpy(o->s + mlen + 1, name, (size_t)nlen + 1);
  o->len = mlen + nlen + 1;
  return push(u, o);
}

/* GLOBAL's argument: "module\nname\n". */
static re_status op_global(up *u) {
  const uint8_t *s = u->b + u->pos;
  int64_t avail = u->len - u->pos;
  const uint8_t *nl1 = memchr(s, '\n', (size_t)(avail < 1024 ? avail : 1024));
  if (!nl1)
    return fail(u, RE_EFORMAT, "GLOBAL module name is not terminated by a newline");
  int64_t mlen = nl1 - s;
  const uint8_t *s2 = nl1 + 1;
  int64_t avail2 = avail - mlen - 1;
  const uint8_t *nl2 = memchr(s2, '\n', (size_t)(avail2 < 1024 ? avail2 : 1024));
  if (!nl2)
    return fail(u, RE_EFORMAT, "GLOBAL name is not terminated by a newline");
  int64_t nlen = nl2 - s2;
  char mod[1024], name[1024];
  memcpy(mod, s, (size_t)mlen);
  mod[mlen] = '\0';
  memcpy(name, s2, (size_t)nlen);
  name[nlen] = '\0';
  u->pos += mlen + nlen + 2;
  return push_global(u, mod, mlen, name, nlen);
}

/* ---- calls of whitelisted globals ------------------------------------ */

static re_status int_tuple(up *u, const re_pk_obj *t, const char *what, int64_t *out, int *n) {
  char msg[160];
  if (t->kind != RE_PK_TUPLE) {
    snprintf(msg, sizeof msg, "tensor %s must be a tuple, found %s", what, re_pk_kind_name(t->kind));
    return fail(u, RE_EFORMAT, msg);
  }
  if (t->n > RE_TENSOR_MAX_DIMS) {
    snprintf(msg, sizeof msg, "tensor with %lld dimensions (at most %d supported)", (long long)t->n,
             RE_TENSOR_MAX_DIMS);
    return fail(u, RE_EUNSUPPORTED, msg);
  }
  for (int64_t k = 0; k < t->n; k++) {
    if (t->items[k]->kind != RE_PK_INT || t->items[k]->i < 0) {
      snprintf(msg, sizeof msg, "tensor %s must hold non-negative integers", what);
      return fail(u, RE_EFORMAT, msg);
    }
    out[k] = t->items[k]->i;
  }
  *n = (int)t->n;
  return RE_OK;
}

static re_status rebuild_tensor(up *u, const re_pk_obj *args, int min_args, int max_args, int dtype_arg,
                                re_pk_obj **out) {
  if (args->n < min_args || args->n > max_args) {
    char msg[128];
    snprintf(msg, sizeof msg, "tensor rebuild with %lld arguments (expected %d..%d)", (long long)args->n,
             min_args, max_args);
    return fail(u, RE_EFORMAT, msg);
  }
  const re_pk_obj *storage = args->items[0], *off = args->items[1];
  if (storage->kind != RE_PK_STORAGE)
    return fail(u, RE_EFORMAT, "tensor rebuild: first argument is not a storage");
  if (off->kind != RE_PK_INT || off->i < 0)
    return fail(u, RE_EFORMAT, "tensor rebuild: storage offset must be a non-negative integer");
  re_pk_tensor t = {0};
  int nd_stride = 0;
  RE_TRY(int_tuple(u, args->items[2], "size", t.shape, &t.ndim));
  RE_TRY(int_tuple(u, args->items[3], "stride", t.strides, &nd_stride));
  if (nd_stride != t.ndim)
    return fail(u, RE_EFORMAT, "tensor rebuild: size and stride have different lengths");
  t.storage = storage;
  t.offset = off->i;
  t.dtype = storage->dtype;
  if (dtype_arg >= 0) {
    const re_pk_obj *d = args->items[dtype_arg];
    if (d->kind != RE_PK_GLOBAL || d->i != RE_PKG_DTYPE)
      return fail(u, RE_EFORMAT, "tensor rebuild: dtype argument is not a torch dtype");
    t.dtype = d->dtype;
  }
  re_pk_obj *o;
  RE_TRY(new_obj(u, RE_PK_TENSOR, &o));
  RE_TRY(re_malloc(1, sizeof *o->t, &o->t));
  *o->t = t;
  o->dtype = t.dtype;
  *out = o;
  return RE_OK;
}

/* Model the call fn(*args) for the whitelisted callables. */
static re_status call(up *u, const re_pk_obj *fn, const re_pk_obj *args, re_pk_obj **out) {
  char msg[200];
  re_pk_obj *o = NULL;
  if (fn->kind != RE_PK_GLOBAL) {
    snprintf(msg, sizeof msg, "cannot call a %s", re_pk_kind_name(fn->kind));
    return fail(u, RE_EFORMAT, msg);
  }
  if (args->kind != RE_PK_TUPLE)
    return fail(u, RE_EFORMAT, "call arguments are not a tuple");
  switch ((re_pk_global)fn->i) {
  case RE_PKG_ORDERED_DICT:
  case RE_PKG_SET: {
    int is_dict = fn->i == RE_PKG_ORDERED_DICT;
    RE_TRY(new_obj(u, is_dict ? RE_PK_DICT : RE_PK_SET, &o));
    if (args->n > 1)
      return fail(u, RE_EFORMAT, is_dict ? "OrderedDict() with more than one argument" : "set() with more than one argument");
    if (args->n == 1) {
      const re_pk_obj *src = args->items[0];
      if (src->kind != RE_PK_LIST && src->kind != RE_PK_TUPLE && (is_dict || src->kind != RE_PK_SET))
        return fail(u, RE_EFORMAT, "OrderedDict()/set() argument must be a list or tuple");
      for (int64_t k = 0; k < src->n; k++) {
        const re_pk_obj *it = src->items[k];
        if (!is_dict) {
          RE_TRY(append_item(o, src->items[k]));
          continue;
        }
        if ((it->kind != RE_PK_TUPLE && it->kind != RE_PK_LIST) || it->n != 2)
          return fail(u, RE_EFORMAT, "OrderedDict() items must be (key, value) pairs");
        o->n *= 2;
        RE_TRY(append_item(o, it->items[0]));
        RE_TRY(append_item(o, it->items[1]));
        o->n /= 2;
      }
    }
    break;
  }
  case RE_PKG_TORCH_SIZE: {
    if (args->n != 1 || args->items[0]->kind != RE_PK_TUPLE)
      return fail(u, RE_EFORMAT, "torch.Size() expects one tuple");
    const re_pk_obj *src = args->items[0];
    RE_TRY(new_obj(u, RE_PK_TUPLE, &o));
    for (int64_t k = 0; k < src->n; k++)
      RE_TRY(append_item(o, src->items[k]));
    break;
  }
  case RE_PKG_REBUILD_TENSOR: RE_TRY(rebuild_tensor(u, args, 4, 4, -1, &o)); break;
  case RE_PKG_REBUILD_TENSOR_V2: RE_TRY(rebuild_tensor(u, args, 6, 7, -1, &o)); break;
  case RE_PKG_REBUILD_TENSOR_V3: RE_TRY(rebuild_tensor(u, args, 7, 8, 6, &o)); break;
  case RE_PKG_REBUILD_PARAMETER:
  case RE_PKG_REBUILD_PARAMETER_WITH_STATE: {
    int64_t want = fn->i == RE_PKG_REBUILD_PARAMETER ? 3 : 4;
    if (args->n != want || args->items[0]->kind != RE_PK_TENSOR)
      return fail(u, RE_EFORMAT, "parameter rebuild expects (tensor, requires_grad, hooks[, state])");
    o = args->items[0];
    break;
  }
  default: {
    char n[128];
    printable(n, sizeof n, fn->s, fn->len);
    snprintf(msg, sizeof msg, "'%s' cannot be called", n);
    return fail(u, RE_EUNSUPPORTED, msg);
  }
  }
  *out = o;
  return RE_OK;
}

/* BINPERSID: ('storage', storage_type, key, location, numel) as written by torch.save. */
static re_status persistent_load(up *u, const re_pk_obj *pid, re_pk_obj **out) {
  if (pid->kind != RE_PK_TUPLE || pid->n != 5 || pid->items[0]->kind != RE_PK_STR ||
      strcmp(pid->items[0]->s, "storage") != 0)
    return fail(u, RE_EUNSUPPORTED, "persistent id is not a ('storage', type, key, location, numel) tuple");
  const re_pk_obj *type = pid->items[1], *key = pid->items[2], *loc = pid->items[3], *numel = pid->items[4];
  if (type->kind != RE_PK_GLOBAL || (type->i != RE_PKG_STORAGE_TYPE && type->i != RE_PKG_UNTYPED_STORAGE))
    return fail(u, RE_EFORMAT, "persistent id: second item is not a storage type");
  if (key->kind != RE_PK_STR || key->len == 0 || (int64_t)strlen(key->s) != key->len || strchr(key->s, '/'))
    return fail(u, RE_EFORMAT, "persistent id: storage key must be a non-empty string without '/'");
  if (loc->kind != RE_PK_STR)
    return fail(u, RE_EFORMAT, "persistent id: location must be a string");
  if (numel->kind != RE_PK_INT || numel->i < 0)
    return fail(u, RE_EFORMAT, "persistent id: numel must be a non-negative integer");
  re_pk_obj *o;
  RE_TRY(new_obj(u, RE_PK_STORAGE, &o));
  o->dtype = type->i == RE_PKG_UNTYPED_STORAGE ? RE_DTYPE_U8 : type->dtype;
  o->i = numel->i;
  RE_TRY(re_strdup(key->s, &o->s));
  o->len = key->len;
  *out = o;
  return RE_OK;
}

static re_status memo_put(up *u, uint64_t idx) {
  re_pk_obj *o = NULL;
  RE_TRY(top(u, &o));
  if (idx >= RE_PK_MAX_MEMO)
    return fail(u, RE_EFORMAT, "memo index above the limit of 4194304");
  /* picklers number memo entries 0, 1, 2, ...; a far-off index would only make us
   * allocate (and zero) a huge table for nothing */
  if (idx > 2 * (uint64_t)u->memo_count + 1024)
    return fail(u, RE_EUNSUPPORTED, "sparse memo index (memo entries are numbered in order by picklers)");
  if ((int64_t)idx >= u->memo_cap) {
    int64_t ncap = u->memo_cap ? u->memo_cap : 64;
    while (ncap <= (int64_t)idx)
      ncap *= 2;
    RE_TRY(re_realloc(&u->memo, ncap, sizeof *u->memo));
    memset(u->memo + u->memo_cap, 0, (size_t)(ncap - u->memo_cap) * sizeof *u->memo);
    u->memo_cap = ncap;
  }
  if (!u->memo[idx])
    u->memo_count++;
  u->memo[idx] = o;
  return RE_OK;
}

static re_status memo_get(up *u, uint64_t idx) {
  if ((int64_t)idx >= u->memo_cap || !u->memo[idx])
    return fail(u, RE_EFORMAT, "memo lookup of an index that was never stored");
  return push(u, u->memo[idx]);
}

/* ---- the interpreter ------------------------------------------------- */

static re_status run(up *u) {
  for (;;) {
    if (u->pos >= u->len)
      return re_err(RE_EFORMAT, "%s: pickle ends at byte %lld without STOP", u->label, (long long)u->len);
    u->op_pos = u->pos;
    uint8_t op = u->b[u->pos++];
    re_pk_obj *a = NULL, *b = NULL, *o = NULL;
    int64_t from = 0;
    switch (op) {
    case 0x80: /* PROTO */
      RE_TRY(need(u, 1));
      if (u->b[u->pos] > 5)
        return fail(u, RE_EUNSUPPORTED, "pickle protocol above 5");
      u->pos++;
      break;
    case 0x95: /* FRAME: a length hint; the framed opcodes follow inline */
      RE_TRY(need(u, 8));
      if (rd_le(u->b + u->pos, 8) > (uint64_t)(u->len - u->pos - 8))
        return fail(u, RE_EFORMAT, "FRAME longer than the rest of the pickle");
      u->pos += 8;
      break;
    case '.': /* STOP */
      RE_TRY(pop(u, &u->pk->root));
      return RE_OK;
    case '(': /* MARK */
      if (u->nmarks >= RE_PK_MAX_MARKS)
        return fail(u, RE_EFORMAT, "MARK nesting deeper than the limit of 65536");
      if (u->nmarks == u->mcap) {
        int64_t ncap = u->mcap ? 2 * u->mcap : 64;
        RE_TRY(re_realloc(&u->marks, ncap, sizeof *u->marks));
        u->mcap = ncap;
      }
      u->marks[u->nmarks++] = u->sp;
      break;
    case '0': /* POP: the top item, or the whole mark frame when it is empty (CPython) */
      if (u->sp > floor_of(u)) {
        u->sp--;
      } else {
        RE_TRY(pop_mark(u, &from));
        u->sp = from;
      }
      break;
    case '1': /* POP_MARK */
      RE_TRY(pop_mark(u, &from));
      u->sp = from;
      break;
    case '2': /* DUP */
      RE_TRY(top(u, &a));
      RE_TRY(push(u, a));
      break;
    case 'N': RE_TRY(new_obj(u, RE_PK_NONE, &o)); RE_TRY(push(u, o)); break;
    case 0x88:
    case 0x89:
      RE_TRY(new_obj(u, RE_PK_BOOL, &o));
      o->i = op == 0x88;
      RE_TRY(push(u, o));
      break;
    case 'J': { /* BININT: signed 32-bit */
      RE_TRY(need(u, 4));
      uint32_t v = (uint32_t)rd_le(u->b + u->pos, 4);
      int32_t s;
      memcpy(&s, &v, 4);
      u->pos += 4;
      RE_TRY(push_int(u, s));
      break;
    }
    case 'K': RE_TRY(need(u, 1)); RE_TRY(push_int(u, u->b[u->pos])); u->pos += 1; break;
    case 'M': RE_TRY(need(u, 2)); RE_TRY(push_int(u, (int64_t)rd_le(u->b + u->pos, 2))); u->pos += 2; break;
    case 0x8a: RE_TRY(need(u, 1)); u->pos++; RE_TRY(push_long(u, u->b[u->pos - 1])); break;
    case 0x8b: { /* LONG4 */
      RE_TRY(need(u, 4));
      uint32_t v = (uint32_t)rd_le(u->b + u->pos, 4);
      u->pos += 4;
      if (v & 0x80000000u)
        return fail(u, RE_EFORMAT, "LONG4 with a negative length");
      RE_TRY(push_long(u, v));
      break;
    }
    case 'G': { /* BINFLOAT: big-endian IEEE double */
      RE_TRY(need(u, 8));
      uint64_t v = 0;
      for (int k = 0; k < 8; k++)
        v = (v << 8) | u->b[u->pos + k];
      u->pos += 8;
      RE_TRY(new_obj(u, RE_PK_FLOAT, &o));
      memcpy(&o->f, &v, 8);
      RE_TRY(push(u, o));
      break;
    }
    case 'X': RE_TRY(need(u, 4)); u->pos += 4; RE_TRY(push_string(u, RE_PK_STR, rd_le(u->b + u->pos - 4, 4))); break;
    case 0x8c: RE_TRY(need(u, 1)); u->pos += 1; RE_TRY(push_string(u, RE_PK_STR, u->b[u->pos - 1])); break;
    case 0x8d: RE_TRY(need(u, 8)); u->pos += 8; RE_TRY(push_string(u, RE_PK_STR, rd_le(u->b + u->pos - 8, 8))); break;
    case 'B': RE_TRY(need(u, 4)); u->pos += 4; RE_TRY(push_string(u, RE_PK_BYTES, rd_le(u->b + u->pos - 4, 4))); break;
    case 'C':
    case 'U': RE_TRY(need(u, 1)); u->pos += 1; RE_TRY(push_string(u, RE_PK_BYTES, u->b[u->pos - 1])); break;
    case 0x8e: RE_TRY(need(u, 8)); u->pos += 8; RE_TRY(push_string(u, RE_PK_BYTES, rd_le(u->b + u->pos - 8, 8))); break;
    case 'T': { /* BINSTRING: signed 32-bit length */
      RE_TRY(need(u, 4));
      uint32_t v = (uint32_t)rd_le(u->b + u->pos, 4);
      u->pos += 4;
      if (v & 0x80000000u)
        return fail(u, RE_EFORMAT, "BINSTRING with a negative length");
      RE_TRY(push_string(u, RE_PK_BYTES, v));
      break;
    }
    case '}': RE_TRY(new_obj(u, RE_PK_DICT, &o)); RE_TRY(push(u, o)); break;
    case ']': RE_TRY(new_obj(u, RE_PK_LIST, &o)); RE_TRY(push(u, o)); break;
    case ')': RE_TRY(new_obj(u, RE_PK_TUPLE, &o)); RE_TRY(push(u, o)); break;
    case 0x8f: RE_TRY(new_obj(u, RE_PK_SET, &o)); RE_TRY(push(u, o)); break;
    case 't':
    case 'l':
    case 'd':
    case 0x91: /* TUPLE, LIST, DICT, FROZENSET from the items since MARK */
      RE_TRY(pop_mark(u, &from));
      RE_TRY(make_seq(u, op == 't' ? RE_PK_TUPLE : op == 'l' ? RE_PK_LIST : op == 'd' ? RE_PK_DICT : RE_PK_SET,
                      from, u->sp, &o));
      u->sp = from;
      RE_TRY(push(u, o));
      break;
    case 0x85:
    case 0x86:
    case 0x87: { /* TUPLE1..3 */
      int64_t n = op - 0x84;
      if (u->sp - floor_of(u) < n)
        return fail(u, RE_EFORMAT, "stack underflow");
      RE_TRY(make_seq(u, RE_PK_TUPLE, u->sp - n, u->sp, &o));
      u->sp -= n;
      RE_TRY(push(u, o));
      break;
    }
    case 'q': RE_TRY(need(u, 1)); u->pos += 1; RE_TRY(memo_put(u, u->b[u->pos - 1])); break;
    case 'r': RE_TRY(need(u, 4)); u->pos += 4; RE_TRY(memo_put(u, rd_le(u->b + u->pos - 4, 4))); break;
    case 0x94: RE_TRY(memo_put(u, (uint64_t)u->memo_count)); break;
    case 'h': RE_TRY(need(u, 1)); u->pos += 1; RE_TRY(memo_get(u, u->b[u->pos - 1])); break;
    case 'j': RE_TRY(need(u, 4)); u->pos += 4; RE_TRY(memo_get(u, rd_le(u->b + u->pos - 4, 4))); break;
    case 's': /* SETITEM */
      if (u->sp - floor_of(u) < 3)
        return fail(u, RE_EFORMAT, "stack underflow");
      RE_TRY(dict_add_items(u, u->stack[u->sp - 3], u->sp - 2, u->sp));
      u->sp -= 2;
      break;
    case 'u': /* SETITEMS */
      RE_TRY(pop_mark(u, &from));
      if (from <= floor_of(u))
        return fail(u, RE_EFORMAT, "SETITEMS without a dict below its MARK");
      RE_TRY(dict_add_items(u, u->stack[from - 1], from, u->sp));
      u->sp = from;
      break;
    case 'a': /* APPEND */
      RE_TRY(pop(u, &b));
      RE_TRY(top(u, &a));
      if (a->kind != RE_PK_LIST)
        return fail(u, RE_EFORMAT, "APPEND to something that is not a list");
      RE_TRY(append_item(a, b));
      break;
    case 'e':
    case 0x90: /* APPENDS (list), ADDITEMS (set) */
      RE_TRY(pop_mark(u, &from));
      if (from <= floor_of(u))
        return fail(u, RE_EFORMAT, "APPENDS/ADDITEMS without a container below its MARK");
      a = u->stack[from - 1];
      if (a->kind != (op == 'e' ? RE_PK_LIST : RE_PK_SET))
        return fail(u, RE_EFORMAT, op == 'e' ? "APPENDS to something that is not a list"
                                             : "ADDITEMS to something that is not a set");
      for (int64_t k = from; k < u->sp; k++)
        RE_TRY(append_item(a, u->stack[k]));
      u->sp = from;
      break;
    case 'c': RE_TRY(op_global(u)); break;
    case 0x93: /* STACK_GLOBAL */
      RE_TRY(pop(u, &b));
      RE_TRY(pop(u, &a));
      if (a->kind != RE_PK_STR || b->kind != RE_PK_STR)
        return fail(u, RE_EFORMAT, "STACK_GLOBAL needs two strings");
      RE_TRY(push_global(u, a->s, a->len, b->s, b->len));
      break;
    case 'R': /* REDUCE */
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args), the same for our containers */
      RE_TRY(pop(u, &b));
      RE_TRY(pop(u, &a));
      if (op == 0x81 && (a->kind != RE_PK_GLOBAL || (a->i != RE_PKG_ORDERED_DICT && a->i != RE_PKG_SET)))
        return fail(u, RE_EUNSUPPORTED, "NEWOBJ of a class other than OrderedDict or set");
      RE_TRY(call(u, a, b, &o));
      RE_TRY(push(u, o));
      break;
    case 0x92: { /* NEWOBJ_EX(cls, args, kwargs) */
      re_pk_obj *kw = NULL;
      RE_TRY(pop(u, &kw));
      RE_TRY(pop(u, &b));
      RE_TRY(pop(u, &a));
      if (a->kind != RE_PK_GLOBAL || (a->i != RE_PKG_ORDERED_DICT && a->i != RE_PKG_SET) ||
          kw->kind != RE_PK_DICT || kw->n)
        return fail(u, RE_EUNSUPPORTED, "NEWOBJ_EX of a class other than OrderedDict or set");
      RE_TRY(call(u, a, b, &o));
      RE_TRY(push(u, o));
      break;
    }
    case 'b': /* BUILD: object state (e.g. a state_dict's _metadata) is not needed */
      RE_TRY(pop(u, &b));
      RE_TRY(top(u, &a));
      break;
    case 'Q': /* BINPERSID */
      RE_TRY(pop(u, &a));
      RE_TRY(persistent_load(u, a, &o));
      RE_TRY(push(u, o));
      break;
    default: {
      char what[128];
      const char *n = op_name(op);
      if (n)
        snprintf(what, sizeof what, "unsupported pickle opcode %s (0x%02x)", n, op);
      else
        snprintf(what, sizeof what, "invalid pickle opcode 0x%02x", op);
      return fail(u, n ? RE_EUNSUPPORTED : RE_EFORMAT, what);
    }
    }
  }
}

re_status re_pickle_load(const uint8_t *buf, int64_t len, const char *label, re_pickle **out) {
  *out = NULL;
  re_pickle *pk;
  RE_TRY(re_calloc(1, sizeof *pk, &pk));
  up u = {0};
  u.b = buf;
  u.len = len;
  u.label = label;
  u.pk = pk;
  re_status st = run(&u);
  free(u.stack);
  free(u.marks);
  free(u.memo);
  if (st != RE_OK) {
    re_pickle_free(&pk);
    return st;
  }
  *out = pk;
  return RE_OK;
}

const re_pk_obj *re_pickle_root(const re_pickle *p) { return p->root; }

void re_pickle_free(re_pickle **pp) {
  re_pickle *p = *pp;
  if (!p)
    return;
  for (int64_t k = 0; k < p->nobjs; k++) {
    free(p->objs[k]->s);
    free(p->objs[k]->items);
    free(p->objs[k]->t);
    free(p->objs[k]);
  }
  free(p->objs);
  free(p);
  *pp = NULL;
}
