// Checkpoints as safetensors files: see nn/checkpoint.h for the layout and the promises.
#include "nn/checkpoint.h"

#include <cctype>
#include <set>
#include <utility>

#include "tensor/error.h"
#include "tensor/safetensors.h"

namespace fg::nn {

namespace {

const char* const kFormatFamily = "filmgrad-checkpoint/";
const char* const kModelPrefix = "model.";
const char* const kOptimPrefix = "optim.";
#ifdef FG_MINIMAL
// nn/optim.cpp is left out of an inference-only build; weights load and save without it.
const char* const kNoOptimizers =
    "this filmgrad is an inference-only build (FG_MINIMAL): it has no optimizers, so checkpoints are read and "
    "written without optimizer state; pass no optimizer, or use a full build to train";
#endif
const std::set<std::string> kReservedKeys = {"format", "model", "config", "step", "epoch", "optimizer"};

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

int64_t parse_integer(const std::map<std::string, std::string>& metadata, const std::string& key,
                      const std::string& path) {
  auto it = metadata.find(key);
  FG_CHECK(it != metadata.end(), path << ": the checkpoint's metadata has no \"" << key
                                      << "\" entry; the file is damaged or was not written by filmgrad");
  const std::string& text = it->second;
  bool ok = !text.empty() && text.size() <= 18;
  for (size_t i = 0; ok && i < text.size(); ++i)
    ok = std::isdigit(static_cast<unsigned char>(text[i])) || (i == 0 && text[i] == '-' && text.size() > 1);
  FG_CHECK(ok, path << ": the checkpoint's \"" << key << "\" is '" << text << "', not an integer; the file is damaged");
  return std::stoll(text);
}

std::string required_string(const std::map<std::string, std::string>& metadata, const std::string& key,
                            const std::string& path) {
  auto it = metadata.find(key);
  FG_CHECK(it != metadata.end(), path << ": the checkpoint's metadata has no \"" << key
                                      << "\" entry; the file is damaged or was not written by filmgrad");
  return it->second;
}

// Checks the format tag and reads the description.
CheckpointInfo info_from(const SafeTensors& st, const std::string& path) {
  auto format = st.metadata.find("format");
  FG_CHECK(format != st.metadata.end(),
           path << ": not a filmgrad checkpoint (its safetensors metadata has no \"format\" entry); if it holds "
                   "plain weights under PyTorch's names, load it with load_weights (the --weights option)");
  FG_CHECK(starts_with(format->second, kFormatFamily),
           path << ": not a filmgrad checkpoint (its metadata says format '" << format->second
                << "'); if it holds plain weights under PyTorch's names, load it with load_weights (the --weights "
                   "option)");
  FG_CHECK(format->second == kCheckpointFormat, path << ": checkpoint format '" << format->second
                                                     << "' is not one this filmgrad reads ('" << kCheckpointFormat
                                                     << "'); use the filmgrad version that wrote it");
  CheckpointInfo info;
  info.model = required_string(st.metadata, "model", path);
  info.config = required_string(st.metadata, "config", path);
  info.optimizer = required_string(st.metadata, "optimizer", path);
  info.step = parse_integer(st.metadata, "step", path);
  info.epoch = parse_integer(st.metadata, "epoch", path);
  for (const auto& [k, v] : st.metadata)
    if (!kReservedKeys.count(k)) info.extra[k] = v;
  return info;
}

// The checkpoint's tensors, split by owner. Any other name means the file is not what it claims to be.
void split_tensors(const SafeTensors& st, const std::string& path, std::map<std::string, Tensor>& model_state,
                   std::map<std::string, Tensor>& optim_state) {
  for (const auto& [name, t] : st.tensors) {
    if (starts_with(name, kModelPrefix)) {
      model_state.emplace(name.substr(std::char_traits<char>::length(kModelPrefix)), t);
    } else if (starts_with(name, kOptimPrefix)) {
      optim_state.emplace(name.substr(std::char_traits<char>::length(kOptimPrefix)), t);
    } else {
      throw Error(path + ": tensor '" + name +
                  "' is neither \"model.*\" nor \"optim.*\"; the checkpoint was edited or damaged");
    }
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointInfo& info) {
  FG_CHECK(!info.model.empty(), "save_checkpoint(" << path
                                                   << "): CheckpointInfo::model is empty; name the architecture "
                                                      "(for example \"dynamic_unet\") so a load can check it");
  FG_CHECK(info.step >= 0 && info.epoch >= 0, "save_checkpoint(" << path << "): step (" << info.step << ") and epoch ("
                                                                 << info.epoch << ") must not be negative");
  SafeTensors st;
  for (const auto& [k, v] : info.extra) {
    FG_CHECK(!kReservedKeys.count(k), "save_checkpoint(" << path << "): extra metadata key '" << k
                                                         << "' is reserved for the checkpoint itself; rename it");
    st.metadata[k] = v;
  }
  st.metadata["format"] = kCheckpointFormat;
  st.metadata["model"] = info.model;
  st.metadata["config"] = info.config;
  st.metadata["step"] = std::to_string(info.step);
  st.metadata["epoch"] = std::to_string(info.epoch);
  st.metadata["optimizer"] = optimizer ? optimizer->name() : "none";

  for (const auto& [name, t] : model.state_dict()) {
    // A parameter shared under two names is saved under both, as PyTorch's state_dict() does.
    FG_ASSERT(st.tensors.emplace(kModelPrefix + name, t).second, "duplicate state dict name " << name);
  }
  if (optimizer) {
#ifdef FG_MINIMAL
    throw Error(kNoOptimizers);
#else
    for (const auto& [key, t] : optimizer->state_dict()) st.tensors.emplace(kOptimPrefix + key, t);
#endif
  }
  save_safetensors(path, st);
}

CheckpointInfo load_checkpoint(const std::string& path, Module& model, Optimizer* optimizer,
                               const std::string& expected_model) {
  const SafeTensors st = load_safetensors(path);
  CheckpointInfo info = info_from(st, path);
  FG_CHECK(expected_model.empty() || info.model == expected_model,
           path << ": the checkpoint is of model '" << info.model << "' but '" << expected_model
                << "' was expected; pick a checkpoint of '" << expected_model << "' or build '" << info.model
                << "' instead");
  std::map<std::string, Tensor> model_state, optim_state;
  split_tensors(st, path, model_state, optim_state);

  // The optimizer first: its load checks everything before replacing its state, and its old state can be put
  // back if the model then refuses the weights. The model's load checks everything before copying, so after a
  // refusal neither has changed.
  std::map<std::string, Tensor> previous_optim_state;
#ifdef FG_MINIMAL
  FG_CHECK(optimizer == nullptr, kNoOptimizers);
#else
  if (optimizer) {
    FG_CHECK(info.optimizer != "none", path << ": the checkpoint holds no optimizer state (it was saved without "
                                               "an optimizer); load it without one to get the weights only");
    FG_CHECK(info.optimizer == optimizer->name(),
             path << ": the checkpoint holds " << info.optimizer << " state but the optimizer is " << optimizer->name()
                  << "; build a " << info.optimizer << " or load without an optimizer");
    // The live tensors: load_state_dict installs clones and leaves these as they are.
    previous_optim_state = optimizer->state_dict();
    try {
      optimizer->load_state_dict(optim_state);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }
#endif
  try {
    model.load_state_dict(model_state, true);
  } catch (const Error& e) {
#ifndef FG_MINIMAL
    if (optimizer) optimizer->load_state_dict(previous_optim_state);
#endif
    throw Error(path + ": " + e.what());
  }
  return info;
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  return info_from(load_safetensors(path), path);
}

LoadResult load_weights(const std::string& path, Module& model, bool strict) {
  const SafeTensors st = load_safetensors(path);
  std::map<std::string, Tensor> state;
  auto format = st.metadata.find("format");
  // Other writers put their own tags there (safetensors.torch users often write "pt"): those are plain files.
  if (format != st.metadata.end() && starts_with(format->second, kFormatFamily)) {
    info_from(st, path);  // checks the version
    std::map<std::string, Tensor> unused_optim_state;
    split_tensors(st, path, state, unused_optim_state);
  } else {
    state = st.tensors;
  }
  try {
    return model.load_state_dict(state, strict);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace fg::nn
