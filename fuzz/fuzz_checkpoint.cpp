// Fuzz target: checkpoint loading (nn/checkpoint.h) and what --resume reads from one (apps/train.h
// read_run_options: the "train_options" JSON in its metadata). The input is written to RUN/last.safetensors in a
// private temporary folder (the loaders read files), then read as a description, loaded strictly into a small
// network with its AdamW optimizer, loaded as plain weights, and read as a run's options. checkpoint.h promises
// that a refused load changes nothing: the network's state and the optimizer's are compared with what they were.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "apps/train.h"
#include "fuzz/checkpoint_net.h"
#include "fuzz/fuzz_util.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tensor/safetensors.h"

namespace {

namespace fs = std::filesystem;
using fg::fuzz::finding;

std::string g_run_dir;

void remove_run_dir() {
  std::error_code ec;
  fs::remove_all(g_run_dir, ec);
}

const std::string& run_dir() {
  if (g_run_dir.empty()) {
    std::string pattern = (fs::temp_directory_path() / "fg_fuzz_checkpoint_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) finding("cannot make a temporary folder", pattern);
    g_run_dir = pattern;
    std::atexit(remove_run_dir);
  }
  return g_run_dir;
}

bool same(const fg::Tensor& a, const fg::Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().raw_data(), b.contiguous().raw_data(), a.nbytes()) == 0;
}

std::map<std::string, fg::Tensor> snapshot(const fg::nn::Module& net, const fg::nn::Optimizer& opt) {
  std::map<std::string, fg::Tensor> out;
  for (const auto& [k, t] : net.state_dict()) out["model." + k] = t.clone();
  for (const auto& [k, t] : opt.state_dict()) out["optim." + k] = t.clone();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = run_dir() + "/last.safetensors";
  {
    // Not write_file_atomic: its fsync would make every run a hundred times slower.
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
    if (!out) finding("cannot write the input to", path);
  }

  fg::fuzz::refusal_allowed([&] { fg::nn::read_checkpoint_info(path); });

  auto net = fg::fuzz::make_checkpoint_net();
  fg::nn::AdamW opt(net->parameters(), fg::nn::AdamWOptions());
  const auto before = snapshot(*net, opt);
  bool loaded = false;
  fg::fuzz::refusal_allowed([&] {
    fg::nn::load_checkpoint(path, *net, &opt, fg::fuzz::kCheckpointModel);
    loaded = true;
  });
  if (!loaded) {
    const auto after = snapshot(*net, opt);
    if (after.size() != before.size()) finding("a refused checkpoint changed the optimizer's state", "");
    for (const auto& [k, t] : before)
      if (!after.count(k) || !same(t, after.at(k))) finding("a refused checkpoint changed a tensor", k);
  }

  auto plain = fg::fuzz::make_checkpoint_net();
  fg::fuzz::refusal_allowed([&] { fg::nn::load_weights(path, *plain, /*strict=*/false); });

  fg::fuzz::refusal_allowed([&] { fg::apps::read_run_options(run_dir()).validate(); });
  return 0;
}
