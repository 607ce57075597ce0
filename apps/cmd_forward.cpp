// `filmgrad forward`: one eval-mode forward, without gradients, of a registry model on an image or a tensor file;
// writes the outputs (and with --activations every recorded module's output) to one safetensors file. This is
// how filmgrad is checked against another framework: docs/cli.md shows the PyTorch side.
//
// Promises: every check that can fail before the forward (options, input and weights files, the output folder)
// runs first; the output file is written atomically and only after the forward succeeded, so a failure leaves
// nothing behind.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/input_file.h"
#include "apps/model_options.h"
#include "nn/recorder.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace {

std::string help_text() {
  return "usage: filmgrad forward --model NAME --input FILE --output FILE.safetensors [--weights FILE]\n"
         "                        [--width W] [--seed S] [--activations] [--save-weights FILE.safetensors]\n"
         "\n"
         "Runs the model once in eval mode (BatchNorm uses its running statistics, dropout is off) and writes\n"
         "a safetensors file with the tensors \"output\" (cross_channel also writes the sub-networks' outputs\n"
         "\"mask_logits\" and \"b_cross\", cross_channel_no_mask \"b_cross\") and \"input\" (exactly what the network\n"
         "saw, after conversion and normalisation), and metadata: model, width, input_shape, input, weights,\n"
         "normalization, filmgrad_version.\n"
         "\n"
         "options:\n" +
         model_options_help() +
         "  --input FILE     an image (PNG or TIFF 8/16-bit, JPEG, BMP, TGA): read as RGB in [0, 1] (grey is\n"
         "                   repeated, alpha dropped) and, for the models that expect it (dynamic_unet,\n"
         "                   resnet34, vgg16, vgg16_bn, critic), ImageNet-normalised: (x - mean) / std with\n"
         "                   mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225);\n"
         "                   or a .safetensors file: the tensor \"input\" (or the only tensor), (N, C, H, W) or\n"
         "                   (C, H, W), used exactly as stored (converted to f32, never normalised)\n"
         "  --output FILE    the .safetensors file to write (its folder must exist)\n"
         "  --activations    also write every module's output under its name (\"encoder.layer1.0.conv1\");\n"
         "                   a module that runs more than once is written as NAME, NAME#2, NAME#3, ...\n"
         "  --save-weights FILE  also write the weights used (a state dict under PyTorch's names), so another\n"
         "                   framework can load exactly the same ones\n";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string checked_output_path(const ArgParser& args, const std::string& flag) {
  const std::string path = args.required(flag);
  if (!ends_with(path, ".safetensors")) throw UsageError(flag + " must name a .safetensors file, got '" + path + "'");
  return path;
}

Tensor for_file(const Tensor& t) {
  return t.to(Device::cpu()).contiguous();
}

}  // namespace

int cmd_forward(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  std::vector<OptionSpec> specs = model_option_specs();
  specs.push_back({"--input"});
  specs.push_back({"--output"});
  specs.push_back({"--activations", 0});
  specs.push_back({"--save-weights"});
  ArgParser args("forward", specs);
  args.parse(argc, argv, 2);
  const ModelOptions mo = read_model_options(args);
  const std::string input_path = args.required("--input");
  const std::string output_path = checked_output_path(args, "--output");
  const std::string weights_out = args.has("--save-weights") ? checked_output_path(args, "--save-weights") : "";
  if (!weights_out.empty() && weights_out == output_path)
    throw UsageError("--save-weights and --output name the same file '" + output_path + "'");
  const bool activations = args.has("--activations");
  require_readable_file(input_path, "the input file");
  require_output_folder(output_path);
  if (!weights_out.empty()) require_output_folder(weights_out);

  const InputFile in = read_input_file(input_path);
  const int64_t channels = mo.spec->default_input[1];
  FG_CHECK(in.tensor.size(1) == channels, mo.spec->name << " takes " << channels << " input channels, but '"
                                                        << input_path << "' holds " << shape_str(in.tensor.shape()));
  const bool normalize = in.is_image && mo.spec->imagenet_input;
  const Tensor x = normalize ? imagenet_normalize(in.tensor) : in.tensor;

  std::shared_ptr<nn::Module> model = build_model(mo);
  model->eval();

  SafeTensors out;
  std::vector<nn::LayerRecord> records;
  {
    NoGradGuard no_grad;
    std::unique_ptr<nn::ActivationRecorder> recorder;
    if (activations) recorder = std::make_unique<nn::ActivationRecorder>(*model, /*keep_outputs=*/true);
    std::vector<std::pair<std::string, Variable>> outputs;
    try {
      outputs = models::run_model(*model, Variable(x));
    } catch (const fg::Error& e) {
      throw fg::Error(mo.spec->name + " cannot run on '" + input_path + "' " + shape_str(x.shape()) + ": " + e.what());
    }
    for (const auto& [name, v] : outputs) out.tensors[name] = for_file(v.data());
    out.tensors["input"] = for_file(x);  // exactly what the network saw, for another framework to run
    if (recorder) records = recorder->records();
  }
  int64_t written_activations = 0;
  if (activations) {
    std::map<std::string, int> calls;
    for (const nn::LayerRecord& r : records) {
      if (r.name.empty()) continue;  // the model itself: that is "output"
      const int k = ++calls[r.name];
      std::string key = k == 1 ? r.name : r.name + "#" + std::to_string(k);
      FG_ASSERT(!out.has(key), "an activation is named like an output: " << key);
      out.tensors[key] = for_file(r.output);
      ++written_activations;
    }
  }
  out.metadata["model"] = mo.spec->name;
  out.metadata["width"] = format_number(mo.width);
  out.metadata["input_shape"] = shape_str(x.shape());
  out.metadata["input"] = input_path;
  out.metadata["input_format"] = in.format;
  out.metadata["normalization"] = normalize ? "imagenet" : "none";
  out.metadata["weights"] = describe_weights(mo);
  out.metadata["filmgrad_version"] = kFilmgradVersion;

  if (!weights_out.empty()) {
    SafeTensors w;
    for (const auto& [name, t] : model->state_dict()) w.tensors[name] = for_file(t);
    w.metadata["model"] = mo.spec->name;
    w.metadata["width"] = format_number(mo.width);
    w.metadata["filmgrad_version"] = kFilmgradVersion;
    save_safetensors(weights_out, w);
  }
  save_safetensors(output_path, out);

  const Tensor& y = out.get("output");
  std::printf("%s (width %s) on %s %s%s -> output %s\n", mo.spec->name.c_str(), format_number(mo.width).c_str(),
              input_path.c_str(), shape_str(x.shape()).c_str(), normalize ? " (ImageNet-normalised)" : "",
              shape_str(y.shape()).c_str());
  const size_t outputs = out.tensors.size() - size_t(written_activations) - 1;
  std::printf("wrote %s: the input, %zu output%s", output_path.c_str(), outputs, outputs == 1 ? "" : "s");
  if (activations) std::printf(" and %lld layer activations", (long long)written_activations);
  std::printf("\n");
  if (!weights_out.empty()) std::printf("wrote the weights to %s\n", weights_out.c_str());
  return 0;
}

}  // namespace fg::apps
