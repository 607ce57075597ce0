// Tensor: an n-dimensional strided view (shape, strides in elements, offset in elements) of a Storage.
// Views (slice, select, transpose, permute, view/reshape when strides allow, expand, squeeze, unsqueeze) share
// storage and copy nothing; contiguous(), clone() and to() copy. A Tensor knows nothing of autograd: the
// autograd layer wraps it in a Variable.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/storage.h"

namespace fg {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false

  // --- construction (CPU unless a device is given) ---
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::F32);  // shape ()
  // Copies `values` (converted to dtype) into a new CPU tensor; values.size() must equal the shape's numel.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::F32);
  static Tensor from_vector_f32(const std::vector<float>& values, const Shape& shape);
  static Tensor arange(int64_t n, DType dtype = DType::F32);
  // A CPU tensor in page-locked memory (fast, DMA-able host-to-device copies for the data loader) when CUDA is
  // built and a device is usable; an ordinary CPU tensor otherwise. is_pinned() says which.
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::F32);
  // Wraps existing storage (used by views and loaders).
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);

  // --- metadata ---
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }
  bool is_pinned() const { return storage_ && storage_->pinned(); }
  std::string str() const;  // "f32(2, 3) cpu"

  // --- element access ---
  // Pointer to the first element (at offset); T must match dtype, checked.
  template <typename T>
  T* data() const {
    check_dtype_for_access(dtype_of<T>::value);
    return static_cast<T*>(storage_->data()) + offset_;
  }
  void* raw_data() const;  // first element, any dtype
  // Reads one element as double (CPU only; for tests and small tools, not for kernels).
  double at(const std::vector<int64_t>& index) const;
  double item() const;  // numel must be 1
  // All elements in logical (row-major) order, converted. CPU only.
  std::vector<double> to_vector() const;
  std::vector<float> to_vector_f32() const;

  // --- views (no copies) ---
  Tensor view(const Shape& shape) const;  // one -1 allowed; throws if the strides do not allow a view
  Tensor reshape(const Shape& shape) const;  // a view when possible, otherwise a contiguous copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // python-style clamping
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const { return slice(dim, start, start + length); }
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor expand(const Shape& shape) const;  // size-1 dims (or new leading dims) get stride 0; -1 keeps a size
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;

  // --- copies ---
  Tensor contiguous() const;  // returns *this when already contiguous
  Tensor clone() const;       // always a new contiguous tensor
  Tensor to(DType dtype) const;    // *this when the dtype already matches
  Tensor to(Device device) const;  // *this when already there

  // --- in place ---
  // Copies src into this tensor's elements. src is broadcast to this shape; dtypes are converted. Any strides on
  // either side, on any device; a copy to the host waits for the device. src may be this view itself, or memory
  // this view does not cover; a src that shares memory with it in another layout (a shifted slice, a transpose
  // of itself: the result would depend on the copy order) is an fg::Error saying to clone() src first
  // (tensor/overlap.h, the rule of every in-place op). So is a destination with several elements at one address.
  void copy_(const Tensor& src);
  void fill_(double value);  // fg::Error for a destination with several elements at one address (an expand())
  void zero_() { fill_(0.0); }

 private:
  void check_dtype_for_access(DType requested) const;
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::F32;
};

// Shape of broadcasting a and b (numpy rules); throws fg::Error naming both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Normalises a possibly negative dim into [0, ndim); throws fg::Error when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what = "dim");

// Loops over every index of `shape` (row-major), calling fn(off0, off1, ...) with the element offsets of each
// operand (strides given per operand, in elements). The plain strided loop that CPU kernels build on.
template <size_t NOps, typename Fn>
void for_each_strided(const Shape& shape, const Shape* const (&strides)[NOps], const int64_t (&base)[NOps], Fn fn) {
  const int64_t nd = int64_t(shape.size());
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  std::vector<int64_t> idx(size_t(nd), 0);
  int64_t off[NOps];
  for (size_t k = 0; k < NOps; ++k) off[k] = base[k];
  for (int64_t i = 0; i < n; ++i) {
    fn(off);
    for (int64_t d = nd - 1; d >= 0; --d) {
      ++idx[size_t(d)];
      for (size_t k = 0; k < NOps; ++k) off[k] += (*strides[k])[size_t(d)];
      if (idx[size_t(d)] < shape[size_t(d)]) break;
      for (size_t k = 0; k < NOps; ++k) off[k] -= (*strides[k])[size_t(d)] * shape[size_t(d)];
      idx[size_t(d)] = 0;
    }
  }
}

}  // namespace fg
