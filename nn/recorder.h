// ActivationRecorder: while one is alive on this thread, every module called through Module::operator() (or
// that calls record_output) reports its output, named by its path in the root module ("encoder.layer1.0").
// `filmgrad inspect` uses it for the layer table and `filmgrad forward --activations` to write every layer's
// output. Recorders do not nest; creating a second one while another is active is an error.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/module.h"

namespace fg::nn {

struct LayerRecord {
  std::string name;       // path in the root module; "" for the root itself
  std::string type_name;  // "Conv2d", "BatchNorm2d", ...
  Shape output_shape;
  Tensor output;           // kept only when the recorder keeps outputs
  int64_t own_parameters;  // scalars in this module's own parameters (not its children's)
  int64_t own_trainable;   // of those, how many require a gradient
};

class ActivationRecorder {
 public:
  explicit ActivationRecorder(const Module& root, bool keep_outputs = false);
  ~ActivationRecorder();
  ActivationRecorder(const ActivationRecorder&) = delete;
  ActivationRecorder& operator=(const ActivationRecorder&) = delete;

  // In call order; a module called twice appears twice.
  const std::vector<LayerRecord>& records() const { return records_; }

  static ActivationRecorder* active();
  void record(const Module* module, const Variable& output);

 private:
  std::unordered_map<const Module*, std::string> names_;
  bool keep_outputs_;
  std::vector<LayerRecord> records_;
};

}  // namespace fg::nn
