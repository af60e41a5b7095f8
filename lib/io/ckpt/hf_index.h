/* Private: the index of a sharded Hugging Face checkpoint
 * (model.safetensors.index.json, pytorch_model.bin.index.json):
 *   {"metadata": {"total_size": N, ...}, "weight_map": {"<tensor>": "<shard file>", ...}}
 * parsed from memory, and the cross-check that joins the opened shards into one
 * checkpoint. Both work without files, so the fuzz target drives them directly. */
#ifndef REPEVAL_HF_INDEX_H
#define REPEVAL_HF_INDEX_H

#include "ckpt_internal.h"
#include "../jsonparse.h"

#define RE_HF_INDEX_MAX_BYTES 100000000 /* the safetensors header limit; real indexes are < 10 MB */
#define RE_HF_INDEX_MAX_SHARDS 100000

typedef struct re_hf_name {
  const char *name;
  int64_t entry;
} re_hf_name;

typedef struct re_hf_index {
  const char *path;     /* the index file, for messages (not owned) */
  re_json json;         /* owns every string below */
  int64_t count;        /* weight_map entries, in file order */
  const char **names;   /* count: tensor names */
  int64_t *shard;       /* count: index into shards */
  re_hf_name *by_name;  /* count: the entries sorted by name */
  int64_t nshards;
  const char **shards;  /* nshards: distinct shard file names, sorted */
  int64_t *first;       /* nshards: the first entry naming each shard */
  int64_t metadata;     /* node index of the "metadata" object, or -1 */
} re_hf_index;

/* Parse and validate an index held in buf[0, len) (path labels the messages):
 * a JSON object with a non-empty "weight_map" object of tensor name -> shard file
 * name; names unique and without NUL; shard names plain file names (no '/', no
 * ".."); an optional "metadata" object. Other top-level keys are ignored. */
re_status re_hf_index_parse(const char *path, const uint8_t *buf, int64_t len, re_hf_index *out);
/* Release (the struct itself is the caller's). */
void re_hf_index_free(re_hf_index *x);
/* With c->parts[k] the opened shards[k] (c->nparts == x->nshards), check that the
 * index and the shards agree exactly (every entry in the shard it names, no tensor
 * in two shards, no shard tensor missing from the index) and add the tensors to c
 * in weight_map order, with c->shard set; then the metadata (the index's scalars,
 * then the shards' keys not yet present). Errors name the index file and the key. */
re_status re_hf_index_assemble(re_ckpt *c, const re_hf_index *x);

#endif
