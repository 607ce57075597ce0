// CUDA concatenation (kernels/cuda/concat.h): each input is copied into its slice of the output by the strided
// copy kernel (tensor/cuda/tensor_kernels.cu, reached through Tensor::copy_), the same code that copies every other
// view on the GPU; a dedicated kernel would be a second copy of it.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/concat.h"

namespace fg::kernels::cuda {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  FG_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& first = xs[0];
  check_cuda_input(first, "concat", "tensor 0");
  dim = wrap_dim(dim, first.dim(), "concat: dim");
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    FG_CHECK(t.defined(), "concat: tensor " << i << " is undefined");
    FG_CHECK(t.device() == first.device(), "concat: tensor " << i << " is on " << t.device().str() << ", tensor 0 on "
                                                             << first.device().str() << "; move them to one device");
    FG_CHECK(t.dtype() == first.dtype(), "concat: tensor " << i << " is " << dtype_name(t.dtype()) << ", tensor 0 is "
                                                           << dtype_name(first.dtype()));
    FG_CHECK(t.dim() == first.dim(), "concat: tensor " << i << " has shape " << shape_str(t.shape())
                                                       << ", tensor 0 has " << shape_str(first.shape()));
    for (int64_t d = 0; d < t.dim(); ++d)
      FG_CHECK(d == dim || t.size(d) == first.size(d),
               "concat along dim " << dim << ": tensor " << i << " has shape " << shape_str(t.shape())
                                   << " but tensor 0 has " << shape_str(first.shape()) << " (only dim " << dim
                                   << " may differ)");
    total += t.size(dim);
  }
  Shape shape = first.shape();
  shape[size_t(dim)] = total;
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  int64_t at = 0;
  for (const Tensor& t : xs) {
    out.narrow(dim, at, t.size(dim)).copy_(t);
    at += t.size(dim);
  }
  return out;
}

}  // namespace fg::kernels::cuda
