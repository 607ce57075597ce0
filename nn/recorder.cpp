// ActivationRecorder; see recorder.h.
#include "nn/recorder.h"

namespace fg::nn {

namespace {
thread_local ActivationRecorder* g_active = nullptr;
}

ActivationRecorder::ActivationRecorder(const Module& root, bool keep_outputs) : keep_outputs_(keep_outputs) {
  FG_CHECK(g_active == nullptr, "an ActivationRecorder is already active on this thread");
  for (const auto& [name, m] : root.named_modules()) names_.emplace(m, name);
  g_active = this;
}

ActivationRecorder::~ActivationRecorder() { g_active = nullptr; }

ActivationRecorder* ActivationRecorder::active() { return g_active; }

void ActivationRecorder::record(const Module* module, const Variable& output) {
  auto it = names_.find(module);
  if (it == names_.end()) return;  // a module outside the recorded tree
  LayerRecord r;
  r.name = it->second;
  r.type_name = module->type_name();
  r.output_shape = output.shape();
  if (keep_outputs_) r.output = output.data();
  r.own_parameters = 0;
  r.own_trainable = 0;
  for (const auto& [pname, p] : module->named_parameters()) {
    if (pname.find('.') != std::string::npos) continue;  // a child's parameter
    r.own_parameters += p.numel();
    if (p.requires_grad()) r.own_trainable += p.numel();
  }
  records_.push_back(std::move(r));
}

}  // namespace fg::nn
