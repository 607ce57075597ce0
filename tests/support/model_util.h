// Helpers for model tests: state dicts as maps and as "name (shape)" listings comparable with torchvision's.
#pragma once
#include <map>
#include <string>

#include "nn/module.h"

namespace fg::test {

// A copy of the state dict as a name -> tensor map (clones, so loading it back cannot alias).
std::map<std::string, Tensor> state_map(const nn::StateDict& sd);
// One "name (a, b, ...)" line per state-dict entry, in order, skipping names that start with skip_prefix.
std::string state_lines(const nn::Module& m, const std::string& skip_prefix = "");

}  // namespace fg::test
