// Entry points of the CUDA runtime layer that plain C++ may call (only when built with FG_WITH_CUDA).
#pragma once
#include "tensor/storage.h"

namespace fg::cuda {

int device_count();    // 0 when there is no driver or no device
// Fills in device allocation and copies (called by tensor/storage.cpp on first use).
void install_hooks(DeviceAllocatorHooks& hooks);

}  // namespace fg::cuda
