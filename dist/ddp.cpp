// Data-parallel training: state broadcast, synchronised BatchNorm's hook-up and the bucketed gradient reducer.
#include "dist/ddp.h"

#include <chrono>

#include "kernels/elementwise.h"
#include "nn/layers.h"

namespace fg::dist {

void broadcast_module_state(Communicator& comm, nn::Module& module, bool parameters, bool buffers) {
  NoGradGuard no_grad;
  // Through a contiguous f32 copy on the communicator's side (host for MPI; the device itself for NCCL), so any
  // dtype and layout travel, and the copy back converts again.
  const auto send = [&](const Tensor& t, const std::string& name) {
    const Device where = std::string(comm.backend()) == "nccl" ? t.device() : Device::cpu();
    Tensor flat = t.to(where).to(DType::F32).contiguous().clone();
    comm.broadcast(flat, 0, "the broadcast of rank 0's " + name);
    Tensor dst = t;
    dst.copy_(flat);
  };
  if (parameters)
    for (const auto& [name, p] : module.named_parameters()) send(p.data(), name);
  if (buffers)
    for (const auto& [name, b] : module.named_buffers())
      if (dtype_is_floating(b.dtype())) send(b, name);
}

void enable_sync_batch_norm(Communicator& comm, nn::Module& module) {
  Communicator* c = &comm;
  for (const auto& [name, m] : module.named_modules()) {
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(m)) {
      bn->set_stats_all_reduce([c](std::vector<double>& v) {
        c->all_reduce_sum(v.data(), int64_t(v.size()), "synchronised BatchNorm's all-reduce");
      });
    }
  }
}

GradientReducer::GradientReducer(Communicator& comm, std::vector<Variable> params, ReducerOptions options)
    : comm_(comm), params_(std::move(params)), bucket_of_(params_.size()), options_(options) {
  FG_ASSERT(options_.bucket_bytes > 0, "GradientReducer: bucket_bytes must be positive");
  Bucket cur;
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const Variable& p = params_[k];
    FG_ASSERT(p.requires_grad() && p.is_leaf(), "GradientReducer: parameter " << k << " is not a trainable leaf");
    cur.params.push_back(k);
    cur.offsets.push_back(cur.numel);
    cur.numel += p.numel();
    bytes += p.numel() * int64_t(sizeof(float));
    if (bytes >= options_.bucket_bytes) {
      buckets_.push_back(std::move(cur));
      cur = Bucket();
      bytes = 0;
    }
  }
  if (!cur.params.empty()) buckets_.push_back(std::move(cur));
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bk = buckets_[b];
    bk.pending = int64_t(bk.params.size());
    bk.had_grad.assign(bk.params.size(), false);
    bk.flat = Tensor::empty({bk.numel}, DType::F32, params_[bk.params[0]].data().device());
    for (size_t k : bk.params) bucket_of_[k] = b;
  }
  for (size_t k = 0; k < params_.size(); ++k) params_[k].impl()->grad_ready_hook = [this, k] { mark_ready(k); };
}

GradientReducer::~GradientReducer() {
  for (const Variable& p : params_) p.impl()->grad_ready_hook = nullptr;
}

void GradientReducer::mark_ready(size_t param) {
  Bucket& b = buckets_[bucket_of_[param]];
  FG_ASSERT(b.pending > 0,
            "GradientReducer: a parameter was ready twice in one step (two backward passes without "
            "finish() between them)");
  --b.pending;
  if (options_.overlap) start_ready_buckets(false);
  poke();
}

void GradientReducer::start_ready_buckets(bool all) {
  while (next_to_start_ < buckets_.size() && (all || buckets_[next_to_start_].pending == 0)) {
    start(buckets_[next_to_start_]);
    if (!in_finish_) ++started_during_backward_;
    ++next_to_start_;
  }
}

void GradientReducer::start(Bucket& b) {
  for (size_t i = 0; i < b.params.size(); ++i) {
    const Variable& p = params_[b.params[i]];
    Tensor slot = b.flat.slice(0, b.offsets[i], b.offsets[i] + p.numel());
    b.had_grad[i] = p.grad().defined();
    // A parameter without a gradient in this step (unused by the graph) takes part as zeros.
    if (b.had_grad[i])
      slot.copy_(p.grad().reshape({p.numel()}));
    else
      slot.zero_();
  }
  b.request = comm_.all_reduce_sum_async(b.flat);
}

// MPI moves a non-blocking collective forward only inside MPI calls; testing the buckets in flight from every
// hook is what lets them progress while backward computes.
void GradientReducer::poke() {
  for (size_t b = 0; b < next_to_start_; ++b)
    if (buckets_[b].request) buckets_[b].request->test();
}

void GradientReducer::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  in_finish_ = true;
  start_ready_buckets(true);
  in_finish_ = false;
  const double inv = 1.0 / double(comm_.size());
  for (Bucket& b : buckets_) {
    comm_.wait(*b.request, "the gradient all-reduce");
    b.request.reset();
    kernels::mul_scalar_(b.flat, inv);
    for (size_t i = 0; i < b.params.size(); ++i) {
      if (!b.had_grad[i]) continue;
      const Variable& p = params_[b.params[i]];
      Tensor g = b.flat.slice(0, b.offsets[i], b.offsets[i] + p.numel()).view(p.shape());
      // Written into the existing gradient (it keeps the parameter's dtype, for mixed precision).
      Tensor dst = p.grad();
      dst.copy_(g);
    }
    b.pending = int64_t(b.params.size());
  }
  next_to_start_ = 0;
  timing_.buckets = int64_t(buckets_.size());
  timing_.started_during_backward = started_during_backward_;
  started_during_backward_ = 0;
  timing_.finish_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace fg::dist
