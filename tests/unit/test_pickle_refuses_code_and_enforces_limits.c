/* The restricted unpickler builds the values torch writes (dicts, tensors from
 * persistent-id storages, ints of every width, floats, memo sharing, protocol-4
 * framing and STACK_GLOBAL), and refuses everything else with the specific
 * status and message: non-whitelisted globals, code-running opcodes, malformed
 * stacks, memo misuse, truncation, and its size limits. */
#include <stdlib.h>
#include <string.h>

#include "../../lib/io/ckpt/pickle.h"
#include "check.h"

typedef struct buf {
  uint8_t *b;
  int64_t n, cap;
} buf;

static void put(buf *p, const void *d, int64_t n) {
  if (p->n + n > p->cap) {
    p->cap = (p->n + n) * 2 + 64;
    p->b = realloc(p->b, (size_t)p->cap);
  }
  memcpy(p->b + p->n, d, (size_t)n);
  p->n += n;
}
static void op(buf *p, uint8_t o) { put(p, &o, 1); }
static void ops(buf *p, const char *s) { put(p, s, (int64_t)strlen(s)); }
#define OPS(p, lit) put(p, lit, (int64_t)sizeof(lit) - 1) /* literal bytes, NULs included */
static void str(buf *p, const char *s) { /* BINUNICODE */
  uint32_t n = (uint32_t)strlen(s);
  uint8_t h[5] = {'X', (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
  put(p, h, 5);
  put(p, s, n);
}
static void glob(buf *p, const char *mod, const char *name) {
  op(p, 'c');
  ops(p, mod);
  op(p, '\n');
  ops(p, name);
  op(p, '\n');
}
static void int1(buf *p, int v) {
  op(p, 'K');
  op(p, (uint8_t)v);
}

static re_pickle *pk;

static re_status load(const buf *p) {
  re_pickle_free(&pk);
  return re_pickle_load(p->b, p->n, "t.pkl", &pk);
}

static re_status load_str(const char *s, int64_t n) {
  re_pickle_free(&pk);
  return re_pickle_load((const uint8_t *)s, n, "t.pkl", &pk);
}
#define LOAD(lit) load_str(lit, (int64_t)sizeof(lit) - 1)

/* _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, size, stride, False, OrderedDict()) */
static void tensor(buf *p, const char *key, int numel, int offset, int ndim, const int *size, const int *stride) {
  glob(p, "torch._utils", "_rebuild_tensor_v2");
  op(p, '(');
  op(p, '(');
  str(p, "storage");
  glob(p, "torch", "FloatStorage");
  str(p, key);
  str(p, "cpu");
  int1(p, numel);
  op(p, 't');
  op(p, 'Q');
  int1(p, offset);
  op(p, '(');
  for (int d = 0; d < ndim; d++)
    int1(p, size[d]);
  op(p, 't');
  op(p, '(');
  for (int d = 0; d < ndim; d++)
    int1(p, stride[d]);
  op(p, 't');
  op(p, 0x89);
  glob(p, "collections", "OrderedDict");
  op(p, ')');
  op(p, 'R');
  op(p, 't');
  op(p, 'R');
}

static void test_state_dict(void) {
  buf p = {0};
  ops(&p, "\x80\x02");
  glob(&p, "collections", "OrderedDict");
  OPS(&p, ")Rq\x00(");
  str(&p, "w");
  int size[2] = {2, 3}, stride[2] = {1, 2};
  tensor(&p, "0", 6, 0, 2, size, stride);
  str(&p, "b");
  glob(&p, "torch._utils", "_rebuild_parameter");
  op(&p, '(');
  int s1 = 2, t1 = 1;
  tensor(&p, "1", 4, 1, 1, &s1, &t1);
  op(&p, 0x88);
  glob(&p, "collections", "OrderedDict");
  ops(&p, ")RtRu.");
  CHECK_OK(load(&p));
  const re_pk_obj *r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_DICT && r->n == 2);
  if (r && r->kind == RE_PK_DICT && r->n == 2) {
    const re_pk_obj *w = r->items[1], *b = r->items[3];
    CHECK(r->items[0]->kind == RE_PK_STR && !strcmp(r->items[0]->s, "w"));
    CHECK(w->kind == RE_PK_TENSOR && w->t->ndim == 2 && w->t->shape[0] == 2 && w->t->shape[1] == 3 &&
          w->t->strides[0] == 1 && w->t->strides[1] == 2 && w->t->offset == 0 && w->t->dtype == RE_DTYPE_F32);
    CHECK(w->t->storage->kind == RE_PK_STORAGE && !strcmp(w->t->storage->s, "0") && w->t->storage->i == 6);
    CHECK(b->kind == RE_PK_TENSOR && b->t->offset == 1 && b->t->shape[0] == 2 && !strcmp(b->t->storage->s, "1"));
  }
  free(p.b);
}

static void test_values(void) {
  /* BININT -5, BININT1 200, BININT2 60000, LONG1 (2 bytes) 32767, LONG1 0x80 = -128, LONG1 empty = 0,
   * LONG1 8 bytes = INT64_MIN, BINFLOAT 0.5, NONE, NEWTRUE, SHORT_BINUNICODE, BINBYTES */
  CHECK_OK(LOAD("\x80\x02(J\xfb\xff\xff\xffK\xc8M\x60\xea\x8a\x02\xff\x7f\x8a\x01\x80\x8a\x00"
                "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80G\x3f\xe0\x00\x00\x00\x00\x00\x00N\x88\x8c\x02hiC\x01\x00t."));
  const re_pk_obj *r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_TUPLE && r->n == 12);
  if (r && r->n == 12) {
    CHECK(r->items[0]->i == -5 && r->items[1]->i == 200 && r->items[2]->i == 60000);
    CHECK(r->items[3]->i == 32767 && r->items[4]->i == -128 && r->items[5]->i == 0);
    CHECK(r->items[6]->i == INT64_MIN);
    CHECK(r->items[7]->kind == RE_PK_FLOAT && r->items[7]->f == 0.5);
    CHECK(r->items[8]->kind == RE_PK_NONE && r->items[9]->kind == RE_PK_BOOL && r->items[9]->i == 1);
    CHECK(r->items[10]->kind == RE_PK_STR && !strcmp(r->items[10]->s, "hi"));
    CHECK(r->items[11]->kind == RE_PK_BYTES && r->items[11]->len == 1);
  }
  /* memo sharing: a list that contains itself (cycles are fine, nothing recurses) */
  CHECK_OK(LOAD("]q\x00h\x00" "a."));
  r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_LIST && r->n == 1 && r->items[0] == r);
  /* protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, then SETITEM and BINGET of memo 2 */
  CHECK_OK(LOAD("\x80\x04\x95\x2b\x00\x00\x00\x00\x00\x00\x00\x8c\x0b" "collections\x94\x8c\x0bOrderedDict\x94\x93"
                "\x94)R\x94\x8c\x01k\x94K\x07sh\x02."));
  r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_GLOBAL && r->i == RE_PKG_ORDERED_DICT);
  CHECK_OK(LOAD("\x80\x04\x8c\x0b" "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94\x8c\x01k\x94K\x07s."));
  r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_DICT && r->n == 1 && r->items[1]->i == 7);
  /* builtins set, torch.Size, dtype globals */
  CHECK_OK(LOAD("c__builtin__\nset\n(K\x01K\x02l\x85R."));
  r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_SET && r->n == 2);
  CHECK_OK(LOAD("ctorch\nSize\nK\x02K\x03\x86\x85R."));
  r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_TUPLE && r->n == 2 && r->items[1]->i == 3);
  CHECK_OK(LOAD("ctorch\nbfloat16\n."));
  r = pk ? re_pickle_root(pk) : NULL;
  CHECK(r && r->kind == RE_PK_GLOBAL && r->i == RE_PKG_DTYPE && r->dtype == RE_DTYPE_BF16);
  /* POP on an empty mark frame discards the mark, as CPython does */
  CHECK_OK(LOAD("N(0."));
  /* bytes after STOP are ignored */
  CHECK_OK(LOAD("N.garbage"));
}

static void test_refusals(void) {
  CHECK_FAILS(LOAD("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00lsR."), RE_EUNSUPPORTED, "refusing global 'os.system'");
  CHECK_FAILS(LOAD("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."), RE_EUNSUPPORTED,
              "refusing global 'builtins.eval'");
  CHECK_FAILS(LOAD("ctorch\nload\n."), RE_EUNSUPPORTED, "refusing global 'torch.load'");
  CHECK_FAILS(LOAD("ctorch._utils\n_rebuild_qtensor\n."), RE_EUNSUPPORTED, "refusing global");
  CHECK_FAILS(LOAD("ctorch\nQInt8Storage\n."), RE_EUNSUPPORTED, "refusing global 'torch.QInt8Storage'");
  CHECK_FAILS(LOAD("cno\nnewline"), RE_EFORMAT, "not terminated by a newline");
  CHECK_FAILS(LOAD("(X\x02\x00\x00\x00lsios\nsystem\n."), RE_EUNSUPPORTED, "unsupported pickle opcode INST");
  CHECK_FAILS(LOAD("(cos\nsystem\no."), RE_EUNSUPPORTED, "refusing global 'os.system'");
  CHECK_FAILS(LOAD("(o."), RE_EUNSUPPORTED, "unsupported pickle opcode OBJ");
  CHECK_FAILS(LOAD("\x82\x01."), RE_EUNSUPPORTED, "unsupported pickle opcode EXT1");
  CHECK_FAILS(LOAD("P0\n."), RE_EUNSUPPORTED, "unsupported pickle opcode PERSID");
  CHECK_FAILS(LOAD("I1\n."), RE_EUNSUPPORTED, "unsupported pickle opcode INT");
  CHECK_FAILS(LOAD("\xff."), RE_EFORMAT, "invalid pickle opcode 0xff");
  CHECK_FAILS(LOAD("\x80\x06N."), RE_EUNSUPPORTED, "protocol above 5");
  CHECK_FAILS(LOAD("ctorch\nfloat32\n)R."), RE_EUNSUPPORTED, "'torch.float32' cannot be called");
  CHECK_FAILS(LOAD("ctorch._utils\n_rebuild_tensor_v2\n)\x81."), RE_EUNSUPPORTED, "NEWOBJ of a class other than");
  CHECK_FAILS(LOAD("K\x01)R."), RE_EFORMAT, "cannot call a int");
}

static void test_malformed(void) {
  CHECK_FAILS(LOAD("."), RE_EFORMAT, "stack underflow");
  CHECK_FAILS(LOAD("t."), RE_EFORMAT, "no MARK");
  CHECK_FAILS(LOAD("N\x86."), RE_EFORMAT, "stack underflow");
  CHECK_FAILS(LOAD("](a."), RE_EFORMAT, "stack underflow"); /* APPEND cannot reach below its MARK */
  CHECK_FAILS(LOAD("}K\x01" "a."), RE_EFORMAT, "APPEND to something that is not a list");
  CHECK_FAILS(LOAD("](K\x01K\x02u."), RE_EFORMAT, "not a dict");
  CHECK_FAILS(LOAD("}(K\x01u."), RE_EFORMAT, "odd number");
  CHECK_FAILS(LOAD("h\x05."), RE_EFORMAT, "never stored");
  CHECK_FAILS(LOAD("Nr\xff\xff\xff\x7f."), RE_EFORMAT, "memo index above the limit");
  CHECK_FAILS(LOAD("Nr\x00\x00\x01\x00."), RE_EUNSUPPORTED, "sparse memo index");
  CHECK_OK(LOAD("Nr\x00\x04\x00\x00j\x00\x04\x00\x00."));  /* index 1024 with an empty memo is still accepted */
  CHECK_FAILS(LOAD("q\x00."), RE_EFORMAT, "stack underflow");
  CHECK_FAILS(LOAD("X\x10\x00\x00\x00" "ab"), RE_EFORMAT, "string length runs past the end");
  CHECK_FAILS(LOAD("\x8d\xff\xff\xff\xff\xff\xff\xff\xff" "ab"), RE_EFORMAT, "string length runs past the end");
  CHECK_FAILS(LOAD("X\x02\x00\x00\x00\xc3("), RE_EFORMAT, "not valid UTF-8");
  CHECK_FAILS(LOAD("J\x01\x00"), RE_EFORMAT, "truncated");
  CHECK_FAILS(LOAD("N"), RE_EFORMAT, "without STOP");
  CHECK_FAILS(LOAD("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."), RE_EUNSUPPORTED, "wider than 64 bits");
  CHECK_FAILS(LOAD("\x95\xff\x00\x00\x00\x00\x00\x00\x00N."), RE_EFORMAT, "FRAME longer than the rest");
  CHECK_FAILS(LOAD("\x8b\xff\xff\xff\xff."), RE_EFORMAT, "negative length");
  /* persistent ids must be torch's storage tuples */
  CHECK_FAILS(LOAD("X\x01\x00\x00\x00xQ."), RE_EUNSUPPORTED, "persistent id is not a");
  CHECK_FAILS(LOAD("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x03\x00\x00\x00" "a/bX\x03\x00\x00\x00" "cpuK\x01tQ."),
              RE_EFORMAT, "without '/'");
  CHECK_FAILS(LOAD("(X\x07\x00\x00\x00storageccollections\nOrderedDict\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
                   "cpuK\x01tQ."), RE_EFORMAT, "not a storage type");
  /* tensor rebuild arguments */
  buf p = {0};
  int size = 2, neg = 255;
  tensor(&p, "0", 2, 0, 1, &size, &size);
  op(&p, '.');
  CHECK_OK(load(&p));
  p.n = 0;
  glob(&p, "torch._utils", "_rebuild_tensor_v2");
  ops(&p, "(K\x01K\x02tR.");
  CHECK_FAILS(load(&p), RE_EFORMAT, "tensor rebuild with 2 arguments");
  p.n = 0;
  glob(&p, "torch._utils", "_rebuild_tensor");
  OPS(&p, "(K\x01K\x00))tR.");
  CHECK_FAILS(load(&p), RE_EFORMAT, "first argument is not a storage");
  p.n = 0; /* a stride of -1 (BININT) */
  tensor(&p, "0", 2, 0, 1, &size, &neg);
  for (int64_t k = 0; k + 1 < p.n; k++) /* the stride is the last 'K\xff' before 't\x89' */
    if (p.b[k] == 'K' && p.b[k + 1] == 0xff) {
      uint8_t rest[4096];
      int64_t tail = p.n - (k + 2);
      memcpy(rest, p.b + k + 2, (size_t)tail);
      p.n = k;
      ops(&p, "J\xff\xff\xff\xff");
      put(&p, rest, tail);
      break;
    }
  op(&p, '.');
  CHECK_FAILS(load(&p), RE_EFORMAT, "tensor stride must hold non-negative integers");
  p.n = 0;
  int big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  tensor(&p, "0", 2, 0, 9, big, big);
  op(&p, '.');
  CHECK_FAILS(load(&p), RE_EUNSUPPORTED, "tensor with 9 dimensions");
  free(p.b);
}

static void test_limits(void) {
  buf p = {0};
  for (int k = 0; k <= RE_PK_MAX_MARKS; k++)
    op(&p, '(');
  CHECK_FAILS(load(&p), RE_EFORMAT, "MARK nesting deeper than the limit");
  p.n = 0;
  for (int k = 0; k <= RE_PK_MAX_STACK; k++)
    op(&p, ')');
  CHECK_FAILS(load(&p), RE_EFORMAT, "stack deeper than the limit");
  free(p.b);
}

int main(void) {
  test_state_dict();
  test_values();
  test_refusals();
  test_malformed();
  test_limits();
  re_pickle_free(&pk);
  return check_report();
}
