// Module: the unit networks are built from. A module owns named parameters (trainable leaves), named buffers
// (state that is saved but not trained, such as BatchNorm's running statistics) and named child modules, and
// names them the way PyTorch does, so that a state dict written by PyTorch (converted to safetensors) loads by
// name: "layer1.0.conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked".
//
// Promises:
// - state_dict() is ordered as PyTorch orders it: a module's own parameters, then its own buffers (both in
//   registration order), then each child's entries under "<child>." in registration order.
// - load_state_dict() checks every name, shape and dtype first and changes nothing unless all of them fit; a
//   mismatch throws one fg::Error listing everything that is missing, unexpected or of the wrong shape or dtype.
// - Handles returned by register_parameter / register_buffer stay valid (they see the same data) across
//   load_state_dict() and to(DType), which replace the contents in place.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"

namespace fg::nn {

// Ordered (name, tensor) pairs, as PyTorch's OrderedDict state dict.
using StateDict = std::vector<std::pair<std::string, Tensor>>;

// What a non-strict load_state_dict() skipped (PyTorch's _IncompatibleKeys).
struct LoadResult {
  std::vector<std::string> missing_keys;     // the module has them, the state dict does not
  std::vector<std::string> unexpected_keys;  // the state dict has them, the module does not
};

class Module {
 public:
  explicit Module(std::string type_name = "Module");
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The forward of single-input modules. The default throws fg::Error: modules with several inputs define their
  // own forward with its own signature.
  virtual Variable forward(const Variable& x);
  // Calls forward and reports the output to an active ActivationRecorder (nn/recorder.h). Models call their
  // children through operator(), not forward(), so that every named layer's output can be observed.
  Variable operator()(const Variable& x);

  // --- registration (names: non-empty, no '.', unique among this module's parameters, buffers and children) ---
  // The parameter is a leaf Variable wrapping `value` (not copied) with requires_grad = `requires_grad`.
  Variable register_parameter(const std::string& name, const Tensor& value, bool requires_grad = true);
  // A buffer is saved in the state dict but never trained. The returned handle's data() is the buffer (the handle
  // never requires grad).
  Variable register_buffer(const std::string& name, const Tensor& value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // --- this module's own entries ---
  Variable parameter(const std::string& name) const;  // throws fg::Error when absent
  Variable buffer(const std::string& name) const;     // throws fg::Error when absent
  std::shared_ptr<Module> child(const std::string& name) const;  // throws fg::Error when absent
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  // Puts `module` in the place of the child `name` (same name, same position, so the state-dict order holds) and
  // returns the child it replaces; throws fg::Error when there is no such child. Inference rewrites
  // (models/inference.h) use it; a member pointer to the old child is the caller's to update.
  std::shared_ptr<Module> replace_module(const std::string& name, std::shared_ptr<Module> module);

  // --- recursive views, named with '.'-joined paths ---
  // Each parameter once (a parameter shared by two modules is listed under its first name), as PyTorch does.
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  std::vector<Variable> parameters(bool trainable_only = false) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  // This module (named "") and every descendant, depth first in registration order.
  std::vector<std::pair<std::string, const Module*>> named_modules() const;
  std::vector<std::pair<std::string, Module*>> named_modules();

  StateDict state_dict() const;
  // strict: every key of the module must be present and no other key may be. Shape and dtype mismatches are
  // always errors. Tensors are copied into the existing parameters and buffers (converted to their device).
  LoadResult load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // --- modes ---
  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Sets requires_grad on every parameter whose name matches `prefix` ("" matches all). A prefix matches whole
  // name components: "layer1" matches "layer1.0.conv1.weight" but not "layer10.weight"; a prefix ending in '.'
  // or equal to a full name also matches. Returns how many parameters matched; a non-empty prefix that matches
  // nothing throws fg::Error (a typo would otherwise silently train or freeze the wrong thing).
  int64_t freeze(const std::string& prefix = "");
  int64_t unfreeze(const std::string& prefix = "");
  int64_t set_requires_grad(const std::string& prefix, bool requires_grad);

  int64_t num_parameters(bool trainable_only = false) const;  // scalars, not tensors
  void zero_grad();  // drops every parameter's gradient
  // Converts floating parameters and buffers to `dtype` (integer buffers such as num_batches_tracked stay).
  // Gradients are dropped.
  void to(DType dtype);
  // Moves parameters and buffers to `device`. Gradients are dropped.
  void to(Device device);

  // --- description (PyTorch's print(module) layout) ---
  const std::string& type_name() const { return type_name_; }
  virtual std::string extra_repr() const { return ""; }
  std::string repr() const;

 protected:
  // For modules whose forward takes several inputs: reports this module's output to an active recorder.
  // operator() calls it for single-input modules.
  void record_output(const Variable& output) const;

  // Removes an own parameter and returns it (spectral norm re-registers a weight under another name).
  Variable take_parameter(const std::string& name);

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name, const char* what) const;
  void collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& out,
                          std::vector<const VariableImpl*>& seen) const;
  void collect_state(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Variable>> parameters_;
  std::vector<std::pair<std::string, Variable>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace fg::nn
