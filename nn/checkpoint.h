// Checkpoints: a module's state dict, its optimizer's state and a description, in one safetensors file.
//
// File layout (a plain safetensors file; any safetensors reader opens it):
//   tensors   "model.<name>"  the module's state dict under PyTorch's names ("model.encoder.layer1.0.conv1.weight")
//             "optim.<key>"   Optimizer::state_dict() ("optim.0.step", "optim.0.exp_avg", ...; nn/optim.h)
//   metadata  "format"    "filmgrad-checkpoint/1"
//             "model"     the caller's name for the architecture ("dynamic_unet"); checked on load
//             "config"    a JSON string the caller gives (the options that rebuild the model), stored verbatim
//             "step", "epoch"  decimal integers
//             "optimizer" the optimizer's name ("Adam", "AdamW", "SGD") or "none"
//             anything else: the caller's extra metadata (CheckpointInfo::extra)
//
// PyTorch reads the weights of a checkpoint with two lines:
//   from safetensors.torch import load_file
//   sd = {k[6:]: v for k, v in load_file(path).items() if k.startswith("model.")}
// and `model.load_state_dict(sd)` then loads them into the same architecture built in PyTorch.
//
// Promises:
// - Saving is atomic (a temporary file beside the target, fsync, rename: tensor/safetensors.h): an error (an
//   unwritable folder, a full disk) leaves any earlier file at the path untouched. Saving is deterministic, so
//   save -> load -> save writes byte-identical files.
// - load_checkpoint() changes nothing unless everything fits: it checks the file (truncation, corruption), the
//   format tag, the model name (when one is expected), the optimizer's name, and every tensor's name, shape and
//   dtype against the module and the optimizer, and throws one fg::Error naming the file and what is wrong.
//   With optimizer == nullptr only the weights are loaded (the file's optimizer state is ignored).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "nn/module.h"
#include "nn/optim.h"

namespace fg::nn {

inline constexpr const char* kCheckpointFormat = "filmgrad-checkpoint/1";

struct CheckpointInfo {
  std::string model;   // the architecture's name; must not be empty
  std::string config;  // a JSON string (may be empty), stored as given
  int64_t step = 0;
  int64_t epoch = 0;
  std::map<std::string, std::string> extra;  // caller metadata; keys must not be the reserved ones above
  std::string optimizer;                     // filled in by save (the optimizer's name or "none"); read on load
};

// Writes `model`'s state dict, `optimizer`'s state (when not null) and `info` to `path`.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointInfo& info);

// Loads a checkpoint written by save_checkpoint into `model` (strictly: every name, shape and dtype must match)
// and, when not null, `optimizer` (which must be of the same kind, built over the same parameters in the same
// order). When expected_model is not empty the file's "model" must equal it. Returns the file's description.
CheckpointInfo load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer,
                               const std::string& expected_model = "");

// Reads only the description (for `filmgrad inspect`); the file is still fully validated.
CheckpointInfo read_checkpoint_info(const std::string& path);

// Loads weights into `model` from either a filmgrad checkpoint (its "model." tensors) or a plain safetensors state
// dict under PyTorch's names (for example a torchvision state dict converted to safetensors; its metadata, such as
// safetensors.torch's {"format": "pt"}, is ignored unless it is a filmgrad checkpoint's tag). strict as in
// Module::load_state_dict. Nothing changes unless the weights fit.
LoadResult load_weights(const std::string& path, Module& model, bool strict = true);

}  // namespace fg::nn
