// Tensor: metadata, views, copies and conversions. Element loops here are the generic strided ones; kernels
// that need speed take contiguous inputs.
#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "tensor/overlap.h"

namespace fg {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ")";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[size_t(i)] = acc;
    acc *= std::max<int64_t>(s[size_t(i)], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what) {
  const int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  FG_CHECK(dim >= lo && dim <= hi, what << " " << dim << " is out of range for a tensor with " << ndim
                                        << " dimensions (expected " << lo << ".." << hi << ")");
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    FG_CHECK(da == db || da == 1 || db == 1,
             "shapes " << shape_str(a) << " and " << shape_str(b) << " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- element conversion helpers ----
namespace {

template <typename T>
inline double to_double(T v) { return double(v); }
template <> inline double to_double<half_t>(half_t v) { return half_to_float(v); }
template <> inline double to_double<bf16_t>(bf16_t v) { return bf16_to_float(v); }

template <typename T>
inline T from_double(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return T(0);
    return T(std::llround(v));  // integer casts round to nearest; used for labels and counters only
  } else {
    return T(v);
  }
}
template <> inline half_t from_double<half_t>(double v) { return float_to_half(float(v)); }
template <> inline bf16_t from_double<bf16_t>(double v) { return float_to_bf16(float(v)); }

// Float to float conversions go through float when either side is a 16-bit type, so that rounding happens once.
template <typename D, typename S>
inline D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, double>) {
    return float(v);
  } else if constexpr (std::is_same_v<D, double> && std::is_same_v<S, float>) {
    return double(v);
  } else if constexpr (std::is_same_v<S, half_t> || std::is_same_v<S, bf16_t>) {
    return from_double<D>(to_double(v));
  } else if constexpr (std::is_same_v<D, half_t>) {
    return float_to_half(float(v));
  } else if constexpr (std::is_same_v<D, bf16_t>) {
    return float_to_bf16(float(v));
  } else {
    return from_double<D>(double(v));
  }
}

template <typename Fn>
void dispatch_any(DType dt, Fn fn) {
  switch (dt) {
    case DType::F32: fn(float{}); break;
    case DType::F64: fn(double{}); break;
    case DType::F16: fn(half_t{}); break;
    case DType::BF16: fn(bf16_t{}); break;
    case DType::I64: fn(int64_t{}); break;
    case DType::I32: fn(int32_t{}); break;
    case DType::U8: fn(uint8_t{}); break;
  }
}

double load_double(const void* base, DType dt, int64_t i) {
  double out = 0;
  dispatch_any(dt, [&](auto tag) {
    using T = decltype(tag);
    out = to_double(static_cast<const T*>(base)[i]);
  });
  return out;
}

void store_double(void* base, DType dt, int64_t i, double v) {
  dispatch_any(dt, [&](auto tag) {
    using T = decltype(tag);
    static_cast<T*>(base)[i] = from_double<T>(v);
  });
}

}  // namespace

// ---- construction ----
Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)), offset_(offset),
      dtype_(dtype) {
  FG_ASSERT(shape_.size() == strides_.size(), "shape and strides differ in length");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) FG_CHECK(d >= 0, "negative dimension in shape " << shape_str(shape));
  auto storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(0.0);
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  FG_CHECK(int64_t(values.size()) == shape_numel(shape),
           "from_vector: " << values.size() << " values do not fill shape " << shape_str(shape));
  Tensor t = empty(shape, dtype);
  void* p = t.raw_data();
  for (size_t i = 0; i < values.size(); ++i) store_double(p, dtype, int64_t(i), values[i]);
  return t;
}

Tensor Tensor::from_vector_f32(const std::vector<float>& values, const Shape& shape) {
  FG_CHECK(int64_t(values.size()) == shape_numel(shape),
           "from_vector: " << values.size() << " values do not fill shape " << shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  for (int64_t d : shape) FG_CHECK(d >= 0, "negative dimension in shape " << shape_str(shape));
  auto storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), Device::cpu(), true);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) store_double(t.raw_data(), dtype, i, double(i));
  return t;
}

// ---- metadata ----
int64_t Tensor::size(int64_t d) const { return shape_[size_t(wrap_dim(d, dim()))]; }
int64_t Tensor::stride(int64_t d) const { return strides_[size_t(wrap_dim(d, dim()))]; }
Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape_[size_t(i)] == 1) continue;
    if (strides_[size_t(i)] != expected) return false;
    expected *= shape_[size_t(i)];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device().str();
}

void Tensor::check_dtype_for_access(DType requested) const {
  FG_ASSERT(defined(), "access to an undefined tensor");
  FG_CHECK(requested == dtype_, "tensor holds " << dtype_name(dtype_) << " but was read as "
                                                << dtype_name(requested) << "; cast it with to() first");
}

void* Tensor::raw_data() const {
  FG_ASSERT(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

double Tensor::at(const std::vector<int64_t>& index) const {
  FG_CHECK(device().is_cpu(), "at(): tensor is on " << device().str() << "; copy it to the CPU first");
  FG_CHECK(int64_t(index.size()) == dim(), "at(): " << index.size() << " indices for a " << dim() << "-d tensor");
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    FG_CHECK(index[i] >= 0 && index[i] < shape_[i], "at(): index " << index[i] << " out of range for dim " << i
                                                                   << " of size " << shape_[i]);
    off += index[i] * strides_[i];
  }
  return load_double(raw_data(), dtype_, off);
}

double Tensor::item() const {
  FG_CHECK(numel() == 1, "item(): tensor " << str() << " has " << numel() << " elements, expected 1");
  const Tensor c = to(Device::cpu());
  return load_double(c.raw_data(), c.dtype_, 0);
}

std::vector<double> Tensor::to_vector() const {
  const Tensor c = to(Device::cpu()).contiguous();
  std::vector<double> out(size_t(c.numel()));
  for (int64_t i = 0; i < c.numel(); ++i) out[size_t(i)] = load_double(c.raw_data(), c.dtype_, i);
  return out;
}

std::vector<float> Tensor::to_vector_f32() const {
  const Tensor c = to(DType::F32).to(Device::cpu()).contiguous();
  const float* p = c.data<float>();
  return std::vector<float>(p, p + c.numel());
}

// ---- views ----
Tensor Tensor::view(const Shape& requested) const {
  Shape shape = requested;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FG_CHECK(infer < 0, "view: only one dimension can be -1 in " << shape_str(requested));
      infer = int64_t(i);
    } else {
      FG_CHECK(shape[i] >= 0, "view: negative size in " << shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    FG_CHECK(known != 0 && numel() % known == 0,
             "view: cannot infer -1 in " << shape_str(requested) << " for " << numel() << " elements");
    shape[size_t(infer)] = numel() / known;
  }
  FG_CHECK(shape_numel(shape) == numel(), "view: shape " << shape_str(requested) << " does not match "
                                                         << numel() << " elements of " << shape_str(shape_));
  if (numel() == 0 || is_contiguous() || dim() == 0) {
    return Tensor(storage_, shape, contiguous_strides(shape), offset_, dtype_);
  }
  // Walk the old dims from the last, grouping runs that are laid out contiguously among themselves ("chunks");
  // the new dims must tile each chunk exactly, and then get strides from that chunk's innermost stride.
  Shape new_strides(shape.size(), 1);
  int64_t new_d = int64_t(shape.size()) - 1;
  int64_t chunk_stride = strides_.back();
  int64_t chunk_numel = 1, new_numel = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    chunk_numel *= shape_[size_t(d)];
    const bool chunk_ends =
        d == 0 || (shape_[size_t(d - 1)] != 1 && strides_[size_t(d - 1)] != chunk_numel * chunk_stride);
    if (!chunk_ends) continue;
    while (new_d >= 0 && (new_numel < chunk_numel || shape[size_t(new_d)] == 1)) {
      new_strides[size_t(new_d)] = new_numel * chunk_stride;
      new_numel *= shape[size_t(new_d)];
      --new_d;
    }
    FG_CHECK(new_numel == chunk_numel, "view: shape " << shape_str(requested) << " is not compatible with the strides of "
                                                      << str() << "; use reshape() (which copies) or contiguous() first");
    if (d > 0) {
      chunk_stride = strides_[size_t(d - 1)];
      chunk_numel = 1;
      new_numel = 1;
    }
  }
  FG_CHECK(new_d == -1, "view: shape " << shape_str(requested) << " is not compatible with " << str());
  return Tensor(storage_, shape, new_strides, offset_, dtype_);
}

Tensor Tensor::reshape(const Shape& shape) const {
  try {
    return view(shape);
  } catch (const Error&) {
    return contiguous().view(shape);
  }
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim());
  end_dim = wrap_dim(end_dim, dim());
  FG_CHECK(start_dim <= end_dim, "flatten: start_dim " << start_dim << " is after end_dim " << end_dim);
  Shape s;
  for (int64_t i = 0; i < start_dim; ++i) s.push_back(shape_[size_t(i)]);
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= shape_[size_t(i)];
  s.push_back(m);
  for (int64_t i = end_dim + 1; i < dim(); ++i) s.push_back(shape_[size_t(i)]);
  return reshape(s);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim());
  FG_CHECK(step > 0, "slice: step must be positive, got " << step);
  const int64_t n = shape_[size_t(d)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape_, st = strides_;
  s[size_t(d)] = (end - start + step - 1) / step;
  st[size_t(d)] = strides_[size_t(d)] * step;
  return Tensor(storage_, s, st, offset_ + start * strides_[size_t(d)], dtype_);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim());
  const int64_t n = shape_[size_t(d)];
  if (index < 0) index += n;
  FG_CHECK(index >= 0 && index < n, "select: index " << index << " out of range for dim " << d << " of size " << n);
  Shape s = shape_, st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Tensor(storage_, s, st, offset_ + index * strides_[size_t(d)], dtype_);
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  a = wrap_dim(a, dim());
  b = wrap_dim(b, dim());
  Shape s = shape_, st = strides_;
  std::swap(s[size_t(a)], s[size_t(b)]);
  std::swap(st[size_t(a)], st[size_t(b)]);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  FG_CHECK(int64_t(dims.size()) == dim(), "permute: " << dims.size() << " dims given for a " << dim() << "-d tensor");
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], dim());
    FG_CHECK(!seen[size_t(d)], "permute: dim " << d << " repeated");
    seen[size_t(d)] = true;
    s[i] = shape_[size_t(d)];
    st[i] = strides_[size_t(d)];
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::expand(const Shape& shape) const {
  FG_CHECK(shape.size() >= shape_.size(), "expand: cannot expand " << shape_str(shape_) << " to fewer dims "
                                                                   << shape_str(shape));
  const size_t lead = shape.size() - shape_.size();
  Shape s(shape.size()), st(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      FG_CHECK(shape[i] >= 0, "expand: new leading dims must be given explicitly");
      s[i] = shape[i];
      st[i] = 0;
      continue;
    }
    const int64_t have = shape_[i - lead];
    const int64_t want = shape[i] == -1 ? have : shape[i];
    FG_CHECK(have == want || have == 1,
             "expand: cannot expand " << shape_str(shape_) << " to " << shape_str(shape) << " (dim " << i << ")");
    s[i] = want;
    st[i] = have == want ? strides_[i - lead] : 0;
  }
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim());
  if (shape_[size_t(d)] != 1) return *this;
  Shape s = shape_, st = strides_;
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return Tensor(storage_, s, st, offset_, dtype_);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1);
  Shape s = shape_, st = strides_;
  const int64_t stride = d < dim() ? strides_[size_t(d)] * shape_[size_t(d)] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return Tensor(storage_, s, st, offset_, dtype_);
}

// ---- copies ----
Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype_) return *this;
  Tensor out = empty(shape_, dt, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor out = empty(shape_, dtype_, dev);
  out.copy_(*this);
  return out;
}

namespace {

// Elements above which copies and fills split their outermost dim over the OpenMP threads.
constexpr int64_t kParallelCopyGrain = 1 << 16;

template <typename D, typename S>
void copy_typed(const Tensor& dst, const Shape& dst_strides, const Tensor& src, const Shape& src_strides) {
  D* d = static_cast<D*>(dst.storage()->data());
  const S* s = static_cast<const S*>(src.storage()->data());
  const Shape& shape = dst.shape();
  if (shape.empty()) {
    d[dst.offset()] = convert<D>(s[src.offset()]);
    return;
  }
  // Each slice of the outermost dim is an independent strided copy.
  const Shape inner_shape(shape.begin() + 1, shape.end());
  const Shape inner_d(dst_strides.begin() + 1, dst_strides.end()), inner_s(src_strides.begin() + 1, src_strides.end());
  const Shape* strides[2] = {&inner_d, &inner_s};
#pragma omp parallel for if (dst.numel() > kParallelCopyGrain && shape[0] > 1) schedule(static)
  for (int64_t i = 0; i < shape[0]; ++i) {
    const int64_t base[2] = {dst.offset() + i * dst_strides[0], src.offset() + i * src_strides[0]};
    for_each_strided<2>(inner_shape, strides, base, [&](const int64_t* off) { d[off[0]] = convert<D>(s[off[1]]); });
  }
}

// memcpy in parallel chunks for large blocks (copy_ has refused overlapping source and destination before).
void copy_bytes(void* dst, const void* src, size_t n) {
  const size_t chunk = size_t(1) << 20;
  const int64_t chunks = int64_t((n + chunk - 1) / chunk);
#pragma omp parallel for if (chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t off = size_t(c) * chunk;
    std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, std::min(chunk, n - off));
  }
}

}  // namespace

void Tensor::copy_(const Tensor& src) {
  FG_ASSERT(defined() && src.defined(), "copy_ with an undefined tensor");
  const Tensor b = src.shape_ == shape_ ? src : src.expand(shape_);
  // Nothing to copy. Returning here also spares the strided copy its walk over the outer dimensions, which can be
  // billions long when another one is 0 (an empty tensor read from a safetensors file: fuzz_safetensors timed out).
  if (numel() == 0) return;
  // tensor/overlap.h: a copy from a view that shares memory with this one in another layout (a shifted slice, a
  // transpose of itself) is refused on every device, as PyTorch refuses it; a view copied onto itself is allowed.
  check_no_partial_overlap(*this, b, "copy_");
  if (device().is_cpu() && b.device().is_cpu()) {
    if (dtype_ == b.dtype_ && is_contiguous() && b.is_contiguous()) {
      if (numel() > 0 && raw_data() != b.raw_data()) copy_bytes(raw_data(), b.raw_data(), nbytes());
      return;
    }
    dispatch_any(dtype_, [&](auto dtag) {
      using D = decltype(dtag);
      dispatch_any(b.dtype_, [&](auto stag) {
        using S = decltype(stag);
        copy_typed<D, S>(*this, strides_, b, b.strides_);
      });
    });
    return;
  }
  auto& hooks = cuda_allocator_hooks();
  FG_CHECK(hooks.copy != nullptr, "cannot copy to or from CUDA: this filmgrad was built without CUDA");
  if (numel() == 0) return;
  if (device().is_cuda() && b.device().is_cuda()) {
    // One device: the strided copy kernel (any strides, any dtypes). Across devices: through the host (rare).
    if (device() == b.device()) hooks.copy_strided(*this, b);
    else copy_(b.to(Device::cpu()));
    return;
  }
  // Between host and device, bytes move contiguous and in one dtype; conversions happen on the host (the CPU's
  // rules) for uploads, and layout changes on the device.
  if (device().is_cuda()) {
    if (b.dtype_ != dtype_ || !b.is_contiguous()) {
      copy_(b.to(dtype_).contiguous());
    } else if (!is_contiguous()) {
      Tensor staged = empty(shape_, dtype_, device());
      staged.copy_(b);
      hooks.copy_strided(*this, staged);
    } else {
      hooks.copy(raw_data(), b.raw_data(), nbytes(), 0, device().index);
    }
    return;
  }
  if (!b.is_contiguous()) {
    copy_(b.contiguous());  // made contiguous on the device first
  } else if (b.dtype_ != dtype_ || !is_contiguous()) {
    copy_(b.to(Device::cpu()));  // downloaded as it is, then converted or laid out on the host
  } else {
    hooks.copy(raw_data(), b.raw_data(), nbytes(), 1, b.device().index);
  }
}

void Tensor::fill_(double value) {
  FG_ASSERT(defined(), "fill_ on an undefined tensor");
  check_no_internal_overlap(*this, "fill_");
  if (!device().is_cpu()) {
    FG_CHECK(cuda_allocator_hooks().fill != nullptr, "cannot fill a " << device().str()
                                                         << " tensor: this filmgrad was built without CUDA");
    cuda_allocator_hooks().fill(*this, value);
    return;
  }
  dispatch_any(dtype_, [&](auto tag) {
    using T = decltype(tag);
    const T v = from_double<T>(value);
    T* p = static_cast<T*>(storage_->data());
    if (is_contiguous()) {
      const int64_t n = numel();
      T* q = p + offset_;
#pragma omp parallel for if (n > kParallelCopyGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) q[i] = v;
      return;
    }
    const Shape* strides[1] = {&strides_};
    const int64_t base[1] = {offset_};
    for_each_strided<1>(shape_, strides, base, [&](const int64_t* off) { p[off[0]] = v; });
  });
}

}  // namespace fg
