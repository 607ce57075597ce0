// The options `filmgrad inspect` and `filmgrad forward` share: which model (--model), how wide (--width), which
// weights (--weights FILE, or a random initialisation from --seed).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apps/args.h"
#include "models/registry.h"
#include "nn/module.h"

namespace fg::apps {

struct ModelOptions {
  const models::ModelSpec* spec = nullptr;
  double width = 1.0;
  uint64_t seed = 0;
  std::string weights;  // empty: random initialisation from seed
};

// --model NAME, --width W, --seed S, --weights FILE
std::vector<OptionSpec> model_option_specs();
// Help lines for those options, including the list of models.
std::string model_options_help();
// Reads and checks them: an unknown model, a bad number or a missing weights file is a UsageError.
ModelOptions read_model_options(const ArgParser& args);

// Builds the model and loads the weights file when one is given (a safetensors state dict under PyTorch's names,
// or a filmgrad checkpoint); a mismatch is an fg::Error naming the file and every missing, unexpected or
// misshapen tensor.
std::shared_ptr<nn::Module> build_model(const ModelOptions& options);

// "random initialisation (seed 0)" or the weights file's path.
std::string describe_weights(const ModelOptions& options);

// "0.125", "1" (for messages and metadata; round-trips through strtod).
std::string format_number(double x);

}  // namespace fg::apps
