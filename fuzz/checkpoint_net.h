// The small network of the checkpoint fuzz target and of its seed checkpoints (make_corpus.cpp): a convolution,
// a BatchNorm (running statistics and an i64 counter among its buffers), a ReLU and a 1x1 convolution.
#pragma once
#include <memory>

#include "nn/layers.h"

namespace fg::fuzz {

inline constexpr const char* kCheckpointModel = "fuzz_net";

inline std::shared_ptr<nn::Sequential> make_checkpoint_net() {
  Generator gen(7);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Conv2d>(gen, 3, 4, 3, 1, 1), std::make_shared<nn::BatchNorm2d>(4),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::Conv2d>(gen, 4, 3, 1)});
}

}  // namespace fg::fuzz
