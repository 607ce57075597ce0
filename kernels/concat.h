// Concatenation along one dim (the U-Net skips and the last cross), and its inverse for the gradient.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace fg::kernels {

// xs: tensors of equal dtype and equal shape except along dim -> one contiguous tensor.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);

}  // namespace fg::kernels
