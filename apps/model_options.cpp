// The shared model options of model_options.h.
#include "apps/model_options.h"

#include <cstdio>
#include <cstdlib>

namespace fg::apps {

std::vector<OptionSpec> model_option_specs() {
  return {{"--model"}, {"--width"}, {"--seed"}, {"--weights"}};
}

std::string model_options_help() {
  std::string s = "  --model NAME     the network (required), one of:\n";
  for (const models::ModelSpec& m : models::list_models()) {
    char line[256];
    std::snprintf(line, sizeof line, "    %-22s %s\n", m.name.c_str(), m.description.c_str());
    s += line;
  }
  s += "  --width W        channel-width multiplier (default 1: the published network; e.g. 0.125 for a\n"
       "                   small version that runs quickly on a CPU)\n"
       "  --weights FILE   load weights: a safetensors state dict under PyTorch's names (a torchvision or\n"
       "                   PyTorch state dict converted to safetensors) or a filmgrad checkpoint; without it\n"
       "                   the weights are a random initialisation\n"
       "  --seed S         seed of that random initialisation (default 0)\n";
  return s;
}

ModelOptions read_model_options(const ArgParser& args) {
  ModelOptions o;
  const std::string name = args.required("--model");
  o.spec = models::find_model(name);
  if (o.spec == nullptr)
    throw UsageError("unknown model '" + name + "'; the models are: " + models::known_model_names());
  o.width = args.positive_number("--width", 1.0);
  o.seed = args.seed("--seed", 0);
  if (args.has("--weights")) {
    o.weights = args.required("--weights");
    require_readable_file(o.weights, "the weights file");
  }
  return o;
}

std::shared_ptr<nn::Module> build_model(const ModelOptions& o) {
  Generator gen(o.seed);
  std::shared_ptr<nn::Module> model = models::create_model(o.spec->name, gen, o.width);
  if (!o.weights.empty()) {
    try {
      models::load_model_weights(*model, o.weights);
    } catch (const fg::Error& e) {
      throw fg::Error("the weights in '" + o.weights + "' do not fit " + o.spec->name + " at --width " +
                      format_number(o.width) + ": " + e.what());
    }
  }
  return model;
}

std::string describe_weights(const ModelOptions& o) {
  if (!o.weights.empty()) return o.weights;
  return "random initialisation (seed " + std::to_string(o.seed) + ")";
}

std::string format_number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  // prefer the shortest form that reads back as the same double
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, x);
    if (std::strtod(shorter, nullptr) == x) return shorter;
  }
  return buf;
}

}  // namespace fg::apps
