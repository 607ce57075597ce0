// Module bookkeeping: registration, recursive naming, state dicts, modes, freezing. See nn/module.h.
#include "nn/module.h"

#include <algorithm>
#include <sstream>

#include "nn/recorder.h"
#include "tensor/error.h"

namespace fg::nn {

namespace {

std::string join_name(const std::string& prefix, const std::string& name) {
  if (name.empty()) return prefix;
  return prefix.empty() ? name : prefix + "." + name;
}

// "[a, b, c, ... and 7 more]": long lists (a checkpoint for another architecture) stay readable on one line.
std::string list_str(const std::vector<std::string>& items) {
  constexpr size_t kShown = 10;
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < items.size() && i < kShown; ++i) os << (i ? ", " : "") << items[i];
  if (items.size() > kShown) os << ", ... and " << items.size() - kShown << " more";
  os << "]";
  return os.str();
}

std::string count_str(size_t n, const char* singular, const char* plural) {
  return std::to_string(n) + " " + (n == 1 ? singular : plural);
}

bool prefix_matches(const std::string& prefix, const std::string& name) {
  if (prefix.empty() || name == prefix) return true;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  return prefix.back() == '.' || name[prefix.size()] == '.';
}

// PyTorch's _addindent: indents every line but the first.
std::string add_indent(const std::string& s, int spaces) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '\n') out.append(size_t(spaces), ' ');
  }
  return out;
}

}  // namespace

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}

Variable Module::operator()(const Variable& x) {
  Variable y = forward(x);
  record_output(y);
  return y;
}

void Module::record_output(const Variable& output) const {
  if (ActivationRecorder* r = ActivationRecorder::active()) r->record(this, output);
}

Variable Module::forward(const Variable&) {
  throw Error(type_name_ + " has no single-input forward(x); call the forward method that " + type_name_ +
              " defines for its inputs");
}

void Module::check_new_name(const std::string& name, const char* what) const {
  FG_CHECK(!name.empty(), type_name_ << ": a " << what << " name must not be empty");
  FG_CHECK(name.find('.') == std::string::npos,
           type_name_ << ": " << what << " name '" << name << "' must not contain '.' (dots join module paths)");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  FG_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
           type_name_ << ": cannot register " << what << " '" << name
                      << "': the name is already used by a parameter, buffer or child module");
}

Variable Module::register_parameter(const std::string& name, const Tensor& value, bool requires_grad) {
  check_new_name(name, "parameter");
  FG_CHECK(value.defined(), type_name_ << ": parameter '" << name << "' is an undefined tensor");
  FG_CHECK(dtype_is_floating(value.dtype()), type_name_ << ": parameter '" << name << "' has dtype "
                                                        << dtype_name(value.dtype())
                                                        << "; parameters must be floating point");
  Variable v(value, requires_grad);
  parameters_.emplace_back(name, v);
  return v;
}

Variable Module::register_buffer(const std::string& name, const Tensor& value) {
  check_new_name(name, "buffer");
  FG_CHECK(value.defined(), type_name_ << ": buffer '" << name << "' is an undefined tensor");
  Variable v(value, false);
  buffers_.emplace_back(name, v);
  return v;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "child module");
  FG_CHECK(module != nullptr, type_name_ << ": child module '" << name << "' is null");
  FG_CHECK(module.get() != this, type_name_ << ": a module cannot be its own child ('" << name << "')");
  children_.emplace_back(name, std::move(module));
}

std::shared_ptr<Module> Module::replace_module(const std::string& name, std::shared_ptr<Module> module) {
  FG_CHECK(module != nullptr, type_name_ << ": the module replacing '" << name << "' is null");
  FG_CHECK(module.get() != this, type_name_ << ": a module cannot be its own child ('" << name << "')");
  for (auto& e : children_) {
    if (e.first != name) continue;
    std::shared_ptr<Module> old = std::move(e.second);
    e.second = std::move(module);
    return old;
  }
  throw Error(type_name_ + " has no child module '" + name + "' to replace");
}

Variable Module::take_parameter(const std::string& name) {
  auto it = std::find_if(parameters_.begin(), parameters_.end(), [&](const auto& e) { return e.first == name; });
  FG_ASSERT(it != parameters_.end(), type_name_ << " has no parameter '" << name << "'");
  Variable v = it->second;
  parameters_.erase(it);
  return v;
}

Variable Module::parameter(const std::string& name) const {
  for (const auto& e : parameters_)
    if (e.first == name) return e.second;
  throw Error(type_name_ + " has no parameter '" + name + "'");
}

Variable Module::buffer(const std::string& name) const {
  for (const auto& e : buffers_)
    if (e.first == name) return e.second;
  throw Error(type_name_ + " has no buffer '" + name + "'");
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  for (const auto& e : children_)
    if (e.first == name) return e.second;
  throw Error(type_name_ + " has no child module '" + name + "'");
}

void Module::collect_parameters(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& out,
                                std::vector<const VariableImpl*>& seen) const {
  for (const auto& e : parameters_) {
    if (std::find(seen.begin(), seen.end(), e.second.impl()) != seen.end()) continue;
    seen.push_back(e.second.impl());
    out.emplace_back(join_name(prefix, e.first), e.second);
  }
  for (const auto& c : children_) c.second->collect_parameters(join_name(prefix, c.first), out, seen);
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  std::vector<const VariableImpl*> seen;
  collect_parameters("", out, seen);
  return out;
}

std::vector<Variable> Module::parameters(bool trainable_only) const {
  std::vector<Variable> out;
  for (const auto& e : named_parameters())
    if (!trainable_only || e.second.requires_grad()) out.push_back(e.second);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& m : named_modules())
    for (const auto& b : m.second->buffers_) out.emplace_back(join_name(m.first, b.first), b.second.data());
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out{{"", this}};
  for (const auto& c : children_)
    for (const auto& sub : static_cast<const Module&>(*c.second).named_modules())
      out.emplace_back(join_name(c.first, sub.first), sub.second);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& c : children_)
    for (const auto& sub : c.second->named_modules()) out.emplace_back(join_name(c.first, sub.first), sub.second);
  return out;
}

void Module::collect_state(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& out) const {
  for (const auto& e : parameters_) out.emplace_back(join_name(prefix, e.first), e.second);
  for (const auto& e : buffers_) out.emplace_back(join_name(prefix, e.first), e.second);
  for (const auto& c : children_) c.second->collect_state(join_name(prefix, c.first), out);
}

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Variable>> entries;
  collect_state("", entries);
  StateDict out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.emplace_back(e.first, e.second.data());
  return out;
}

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  std::map<std::string, Tensor> m;
  for (const auto& e : state) {
    FG_CHECK(m.emplace(e.first, e.second).second, "load_state_dict: the state dict names '" << e.first << "' twice");
  }
  return load_state_dict(m, strict);
}

LoadResult Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  std::vector<std::pair<std::string, Variable>> entries;
  collect_state("", entries);

  LoadResult result;
  std::vector<std::string> shape_errors, dtype_errors;
  std::vector<std::pair<Variable, Tensor>> copies;
  std::map<std::string, bool> expected;
  for (const auto& e : entries) {
    expected[e.first] = true;
    auto it = state.find(e.first);
    if (it == state.end()) {
      result.missing_keys.push_back(e.first);
      continue;
    }
    const Tensor& dst = e.second.data();
    const Tensor& src = it->second;
    FG_CHECK(src.defined(), "load_state_dict: '" << e.first << "' is an undefined tensor in the state dict");
    bool ok = true;
    if (src.shape() != dst.shape()) {
      shape_errors.push_back(e.first + ": module " + shape_str(dst.shape()) + ", state dict " +
                             shape_str(src.shape()));
      ok = false;
    }
    if (src.dtype() != dst.dtype()) {
      dtype_errors.push_back(e.first + ": module " + dtype_name(dst.dtype()) + ", state dict " +
                             dtype_name(src.dtype()));
      ok = false;
    }
    if (ok) copies.emplace_back(e.second, src);
  }
  for (const auto& s : state)
    if (!expected.count(s.first)) result.unexpected_keys.push_back(s.first);

  const bool key_errors = strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty());
  if (key_errors || !shape_errors.empty() || !dtype_errors.empty()) {
    std::ostringstream os;
    os << "load_state_dict: the state dict does not fit this " << type_name_ << ":";
    const char* sep = " ";
    if (strict && !result.missing_keys.empty()) {
      os << sep << count_str(result.missing_keys.size(), "missing key", "missing keys") << " "
         << list_str(result.missing_keys);
      sep = "; ";
    }
    if (strict && !result.unexpected_keys.empty()) {
      os << sep << count_str(result.unexpected_keys.size(), "unexpected key", "unexpected keys") << " "
         << list_str(result.unexpected_keys);
      sep = "; ";
    }
    if (!shape_errors.empty()) {
      os << sep << count_str(shape_errors.size(), "shape mismatch", "shape mismatches") << " "
         << list_str(shape_errors);
      sep = "; ";
    }
    if (!dtype_errors.empty()) {
      os << sep << count_str(dtype_errors.size(), "dtype mismatch", "dtype mismatches") << " "
         << list_str(dtype_errors);
    }
    os << "; nothing was loaded. Check that the checkpoint comes from the same architecture (strict=false "
          "loads only the names both sides have)";
    throw Error(os.str());
  }

  for (auto& c : copies) {
    Tensor dst = c.first.data();
    dst.copy_(c.second.to(dst.device()));
  }
  return result;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

int64_t Module::set_requires_grad(const std::string& prefix, bool requires_grad) {
  int64_t matched = 0;
  for (const auto& e : named_parameters()) {
    if (!prefix_matches(prefix, e.first)) continue;
    e.second.set_requires_grad(requires_grad);
    ++matched;
  }
  if (!prefix.empty() && matched == 0) {
    auto names = named_parameters();
    std::string example = names.empty() ? std::string("(this module has no parameters)")
                                        : "names look like '" + names.front().first + "'";
    throw Error((requires_grad ? "unfreeze" : "freeze") + std::string(": no parameter name starts with '") +
                prefix + "'; " + example);
  }
  return matched;
}

int64_t Module::freeze(const std::string& prefix) { return set_requires_grad(prefix, false); }
int64_t Module::unfreeze(const std::string& prefix) { return set_requires_grad(prefix, true); }

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& p : parameters(trainable_only)) n += p.numel();
  return n;
}

void Module::zero_grad() {
  for (const auto& p : parameters()) p.zero_grad();
}

void Module::to(DType dtype) {
  FG_CHECK(dtype_is_floating(dtype), type_name_ << ".to(" << dtype_name(dtype)
                                                << "): only floating dtypes can be targets");
  for (auto& m : named_modules()) {
    // The handles' shared impl is updated, so layers holding a parameter or buffer handle see the new tensor.
    for (auto& e : m.second->parameters_) {
      VariableImpl* impl = e.second.impl();
      if (impl->data.dtype() == dtype) continue;
      impl->data = impl->data.to(dtype);
      impl->grad = Tensor();
    }
    for (auto& e : m.second->buffers_) {
      VariableImpl* impl = e.second.impl();
      if (!dtype_is_floating(impl->data.dtype()) || impl->data.dtype() == dtype) continue;
      impl->data = impl->data.to(dtype);
    }
  }
}

void Module::to(Device device) {
  for (auto& m : named_modules()) {
    for (auto& e : m.second->parameters_) {
      VariableImpl* impl = e.second.impl();
      if (impl->data.device() == device) continue;
      impl->data = impl->data.to(device);
      impl->grad = Tensor();
    }
    for (auto& e : m.second->buffers_) {
      VariableImpl* impl = e.second.impl();
      if (impl->data.device() != device) impl->data = impl->data.to(device);
    }
  }
}

std::string Module::repr() const {
  std::vector<std::string> extra_lines;
  const std::string extra = extra_repr();
  if (!extra.empty()) {
    std::istringstream is(extra);
    for (std::string line; std::getline(is, line);) extra_lines.push_back(line);
  }
  std::vector<std::string> lines = extra_lines;
  for (const auto& c : children_) lines.push_back("(" + c.first + "): " + add_indent(c.second->repr(), 2));
  std::string out = type_name_ + "(";
  if (!lines.empty()) {
    if (extra_lines.size() == 1 && children_.empty()) {
      out += extra_lines[0];
    } else {
      for (const auto& l : lines) out += "\n  " + l;
      out += "\n";
    }
  }
  return out + ")";
}

}  // namespace fg::nn
