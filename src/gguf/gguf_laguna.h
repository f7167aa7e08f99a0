/* Laguna in GGUF: llama.cpp's "laguna" architecture keys and tensor names,
 * translated to and from the engine's lg_config and Hugging Face tensor
 * names. docs/gguf-laguna.md lists every key and name with its source.
 *
 * Reading: lg_gguf_open_laguna(path) gives the config and a tensor source
 * whose tensors carry HF names and torch shapes ([out, in], row-major), so
 * the model loader treats a GGUF like a safetensors folder. Per-expert
 * weights are views into llama.cpp's merged 3-D expert tensors (no copy).
 * llama.cpp's Laguna converter does not permute q/k rows (Laguna uses NeoX
 * RoPE, the same rotate-half layout as transformers), so nothing is undone.
 *
 * Writing: lg_gguf_put_laguna_config puts the metadata of a config; the
 * lg_gguf_name_* functions give the GGUF name of an HF tensor. */
#ifndef LAGUNA_GGUF_LAGUNA_H
#define LAGUNA_GGUF_LAGUNA_H

#include <stddef.h>

#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "io/tensor_source.h"
#include "model/config.h"

/* Opens a Laguna GGUF: *cfg filled (free with lg_config_free) and *src
 * holding every tensor under its HF name (free with lg_tensor_source_free;
 * it owns the file mapping). `place` as for lg_map_file. */
laguna_status lg_gguf_open_laguna(const char *path, lg_placement place, lg_config *cfg,
                                  lg_tensor_source **src, laguna_error *err);

/* The two halves of lg_gguf_open_laguna, for an already open file. */
laguna_status lg_gguf_read_laguna_config(const lg_gguf_file *f, lg_config *cfg, laguna_error *err);
/* Takes over the file's mapping (lg_gguf_close the file afterwards). */
laguna_status lg_gguf_laguna_tensor_source(lg_gguf_file *f, const lg_config *cfg,
                                           lg_tensor_source **src, laguna_error *err);

/* Writes the "general.architecture" and "laguna.*" keys for cfg. Fails with
 * LAGUNA_ERR_UNSUPPORTED for layouts llama.cpp's keys cannot express (dense
 * layers after a sparse one, YaRN on sliding layers). */
laguna_status lg_gguf_put_laguna_config(lg_gguf_writer *w, const lg_config *cfg, laguna_error *err);

/* HF name -> GGUF name. For a routed expert's weight
 * ("model.layers.3.mlp.experts.7.down_proj.weight") the name is the merged
 * tensor's ("blk.3.ffn_down_exps.weight") and *expert = 7; otherwise
 * *expert = -1. Also accepts the alternative spellings the model loader
 * accepts (mlp.gate.e_score_correction_bias, mlp.shared_experts.*, the fused
 * 3-D mlp.experts.down_proj); the fused mlp.experts.gate_up_proj, which
 * becomes two GGUF tensors, is handled by the quantizer. Returns 0, or -1 for
 * a name with no GGUF counterpart. */
int lg_gguf_name_from_hf(const char *hf_name, char *out, size_t cap, int *expert);

/* GGUF name -> HF name. Returns 0 for an ordinary tensor, 1 for a merged
 * expert tensor (out is then the name of expert `expert`'s slice), -1 for a
 * name this mapping does not know. */
int lg_gguf_name_to_hf(const char *gguf_name, int expert, char *out, size_t cap);

#endif
