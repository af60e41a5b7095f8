/* Private: a restricted unpickler for the data.pkl of torch.save archives.
 *
 * It interprets the pickle opcodes (protocols 2-5) that torch emits and builds a
 * tree of plain values; it never imports or calls anything. GLOBAL names are
 * matched against a fixed whitelist (collections.OrderedDict, set, torch.Size,
 * torch._utils tensor/parameter rebuilders, torch.*Storage classes, torch dtypes)
 * and every "call" (REDUCE/NEWOBJ) of a whitelisted name is modelled here;
 * anything else is refused with RE_EUNSUPPORTED naming the global or the opcode.
 * Persistent ids ('storage', type, key, location, numel) become storage objects
 * that the caller resolves to the archive's data/<key> members.
 * Limits: stack depth, MARK depth, memo size and object count (below); strings
 * are bounded by the input. */
#ifndef REPEVAL_PICKLE_H
#define REPEVAL_PICKLE_H

#include "repeval/checkpoint.h"

#define RE_PK_MAX_STACK (1 << 20)
#define RE_PK_MAX_MARKS (1 << 16)
#define RE_PK_MAX_MEMO (1 << 22)
#define RE_PK_MAX_OBJECTS (1 << 22)

typedef enum re_pk_kind {
  RE_PK_NONE = 0,
  RE_PK_BOOL,
  RE_PK_INT,
  RE_PK_FLOAT,
  RE_PK_STR,
  RE_PK_BYTES,
  RE_PK_TUPLE,
  RE_PK_LIST,
  RE_PK_DICT,
  RE_PK_SET,
  RE_PK_GLOBAL,  /* a whitelisted name; see re_pk_global */
  RE_PK_STORAGE, /* from a persistent id */
  RE_PK_TENSOR
} re_pk_kind;

typedef enum re_pk_global {
  RE_PKG_ORDERED_DICT = 0,
  RE_PKG_SET,
  RE_PKG_TORCH_SIZE,
  RE_PKG_REBUILD_TENSOR,    /* torch._utils._rebuild_tensor(storage, offset, size, stride) */
  RE_PKG_REBUILD_TENSOR_V2, /* (storage, offset, size, stride, requires_grad, hooks[, metadata]) */
  RE_PKG_REBUILD_TENSOR_V3, /* (..., hooks, dtype[, metadata]) */
  RE_PKG_REBUILD_PARAMETER, /* (tensor, requires_grad, hooks) */
  RE_PKG_REBUILD_PARAMETER_WITH_STATE, /* (tensor, requires_grad, hooks, state) */
  RE_PKG_STORAGE_TYPE,      /* torch.FloatStorage etc.: `dtype` holds the element type */
  RE_PKG_UNTYPED_STORAGE,   /* torch.UntypedStorage: bytes */
  RE_PKG_DTYPE              /* torch.float32 etc.: `dtype` */
} re_pk_global;

struct re_pk_obj;

typedef struct re_pk_tensor {
  const struct re_pk_obj *storage; /* kind RE_PK_STORAGE */
  re_dtype dtype;
  int64_t offset; /* in elements of dtype */
  int ndim;
  int64_t shape[RE_TENSOR_MAX_DIMS];
  int64_t strides[RE_TENSOR_MAX_DIMS]; /* in elements, non-negative */
} re_pk_tensor;

typedef struct re_pk_obj {
  re_pk_kind kind;
  int64_t i;   /* BOOL, INT value; GLOBAL: re_pk_global; STORAGE: numel (elements of dtype) */
  double f;    /* FLOAT */
  char *s;     /* STR/BYTES contents (NUL-terminated); STORAGE key; GLOBAL "module.name" */
  int64_t len; /* bytes of s, without the NUL */
  re_dtype dtype;             /* GLOBAL storage types and dtypes; STORAGE */
  struct re_pk_obj **items;   /* TUPLE/LIST/SET: n items; DICT: key0, value0, key1, ... (2n) */
  int64_t n, cap;
  re_pk_tensor *t; /* TENSOR */
} re_pk_obj;

typedef struct re_pickle re_pickle;

/* Run the restricted unpickler on buf[0, len); `label` starts error messages
 * (e.g. "model.pt[model/data.pkl]"). Bytes after STOP are ignored, like pickle.load. */
re_status re_pickle_load(const uint8_t *buf, int64_t len, const char *label, re_pickle **out);
/* The value the pickle returned (at STOP). */
const re_pk_obj *re_pickle_root(const re_pickle *p);
/* Free every object (NULL allowed); sets *p to NULL. */
void re_pickle_free(re_pickle **p);

/* Short name of a kind ("dict", "tensor", ...), for messages. */
const char *re_pk_kind_name(re_pk_kind k);

#endif
