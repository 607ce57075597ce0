// Data-parallel training on a Communicator (dist/comm.h): every rank holds the whole model, takes its own shard
// of each global batch, and the gradients are averaged across ranks before the optimizer steps, so every rank
// steps identically. See docs/distributed.md.
//
// GradientReducer: the trainable parameters, in reverse order (the order backward finishes them), are grouped
// into buckets of about bucket_bytes. Each parameter's grad_ready_hook (autograd/variable.h) marks it ready; when
// a bucket is complete, and every bucket before it has been started, its gradients are copied into one flat f32
// buffer and a non-blocking all-reduce starts, while backward goes on with earlier layers. finish() (after
// backward) starts what is left, waits, divides by the number of ranks and writes the averages back into grad().
// Buckets are started in the same order on every rank, which collectives require.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "autograd/variable.h"
#include "dist/comm.h"
#include "nn/module.h"

namespace fg::dist {

// Copies rank 0's parameters and floating-point buffers (BatchNorm's running statistics) to every rank.
void broadcast_module_state(Communicator& comm, nn::Module& module, bool parameters = true, bool buffers = true);

// Turns on synchronised BatchNorm in every BatchNorm2d of `module` (statistics over every rank's shard).
void enable_sync_batch_norm(Communicator& comm, nn::Module& module);

struct ReducerOptions {
  int64_t bucket_bytes = 4 << 20;
  // false: every bucket starts in finish(), after backward (no overlap): what the overlap is measured against.
  bool overlap = true;
};

// What the last step's reduction cost (bench/ and the training log read it).
struct ReducerTiming {
  int64_t buckets = 0;
  int64_t started_during_backward = 0;  // buckets started from a hook, before finish()
  double finish_seconds = 0;            // finish(): the communication backward did not hide
};

class GradientReducer {
 public:
  GradientReducer(Communicator& comm, std::vector<Variable> params, ReducerOptions options = {});
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void finish();
  const ReducerTiming& last_timing() const { return timing_; }
  int64_t bucket_count() const { return int64_t(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    int64_t numel = 0;
    int64_t pending = 0;  // parameters not yet ready in this step
    Tensor flat;
    std::unique_ptr<Request> request;
    std::vector<bool> had_grad;
  };
  void mark_ready(size_t param);
  void start_ready_buckets(bool all);
  void start(Bucket& b);
  void poke();

  Communicator& comm_;
  std::vector<Variable> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  ReducerOptions options_;
  size_t next_to_start_ = 0;
  bool in_finish_ = false;
  int64_t started_during_backward_ = 0;
  ReducerTiming timing_;
};

}  // namespace fg::dist
