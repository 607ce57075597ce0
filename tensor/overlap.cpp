// The overlap checks of tensor/overlap.h. Only metadata is read (shape, strides, offset, storage identity), never
// elements, so the checks cost the same for CPU and CUDA tensors and never wait for a device.
#include "tensor/overlap.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/error.h"

namespace fg {

namespace {

// Bytes [begin, end) of storage that the elements of `t` (numel > 0) occupy, from the lowest to the highest address.
struct ByteRange {
  int64_t begin = 0, end = 0;
};
ByteRange byte_range(const Tensor& t) {
  const int64_t es = int64_t(dtype_size(t.dtype()));
  int64_t lo = t.offset(), hi = t.offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t span = (t.size(d) - 1) * t.stride(d);
    (span < 0 ? lo : hi) += span;
  }
  return {lo * es, (hi + 1) * es};
}

// A set of the bytes in [begin, begin + units * unit) that some tensor's elements cover, one bit per `unit` bytes.
// unit divides every element size and every range end involved, so elements cover whole units.
class ByteSet {
 public:
  ByteSet(ByteRange window, int64_t unit)
      : begin_(window.begin),
        end_(window.end),
        unit_(unit),
        bits_(size_t((window.end - window.begin) / unit + 63) / 64) {}
  // Marks the element at byte `start` of `size` bytes; returns whether any of its units was marked already.
  bool mark(int64_t start, int64_t size) {
    bool seen = false;
    for (int64_t b = std::max(start, begin_); b < std::min(start + size, end_); b += unit_) {
      const size_t u = size_t((b - begin_) / unit_);
      seen = seen || ((bits_[u / 64] >> (u % 64)) & 1u) != 0;
      bits_[u / 64] |= uint64_t(1) << (u % 64);
    }
    return seen;
  }
  bool any(int64_t start, int64_t size) const {
    for (int64_t b = std::max(start, begin_); b < std::min(start + size, end_); b += unit_) {
      const size_t u = size_t((b - begin_) / unit_);
      if ((bits_[u / 64] >> (u % 64)) & 1u) return true;
    }
    return false;
  }

 private:
  int64_t begin_, end_, unit_;
  std::vector<uint64_t> bits_;
};

bool intersect(ByteRange a, ByteRange b, ByteRange& both) {
  both = {std::max(a.begin, b.begin), std::min(a.end, b.end)};
  return both.begin < both.end;
}

// Marks every element of `t` in `set`; returns whether two of them met.
bool mark_all(const Tensor& t, ByteSet& set) {
  const int64_t es = int64_t(dtype_size(t.dtype()));
  const Shape* strides[1] = {&t.strides()};
  const int64_t base[1] = {t.offset()};
  bool met = false;
  for_each_strided<1>(t.shape(), strides, base, [&](const int64_t* o) { met = set.mark(o[0] * es, es) || met; });
  return met;
}

// Strides of the dims that have more than one element: what decides where the elements lie.
bool same_layout(const Tensor& a, const Tensor& b) {
  if (a.offset() != b.offset() || dtype_size(a.dtype()) != dtype_size(b.dtype()) || a.shape() != b.shape())
    return false;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  return true;
}

bool may_share(const Tensor& a, const Tensor& b, ByteRange& both) {
  if (!a.defined() || !b.defined() || a.numel() == 0 || b.numel() == 0 || !a.shares_storage_with(b)) return false;
  return intersect(byte_range(a), byte_range(b), both);
}

}  // namespace

bool has_internal_overlap(const Tensor& t) {
  if (!t.defined() || t.numel() <= 1 || t.is_contiguous()) return false;
  std::vector<std::pair<int64_t, int64_t>> dims;  // (|stride|, size) of the dims with more than one element
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) == 1) continue;
    if (t.stride(d) == 0) return true;
    dims.emplace_back(std::abs(t.stride(d)), t.size(d));
  }
  // Every view that slicing, selecting, transposing, permuting and reshaping make: each stride steps past the
  // whole extent of the smaller ones.
  std::sort(dims.begin(), dims.end());
  bool nested = true;
  int64_t extent = 1;
  for (const auto& [stride, size] : dims) {
    if (stride < extent) {
      nested = false;
      break;
    }
    extent = stride * (size - 1) + extent;
  }
  if (nested) return false;
  const int64_t es = int64_t(dtype_size(t.dtype()));
  ByteSet set(byte_range(t), es);
  return mark_all(t, set);
}

bool shares_memory(const Tensor& a, const Tensor& b) {
  ByteRange both;
  if (!may_share(a, b, both)) return false;
  const int64_t ea = int64_t(dtype_size(a.dtype())), eb = int64_t(dtype_size(b.dtype()));
  ByteSet set(both, std::min(ea, eb));  // element sizes are powers of two, so the smaller divides the larger
  mark_all(a, set);
  const Shape* strides[1] = {&b.strides()};
  const int64_t base[1] = {b.offset()};
  bool hit = false;
  for_each_strided<1>(b.shape(), strides, base, [&](const int64_t* o) { hit = hit || set.any(o[0] * eb, eb); });
  return hit;
}

MemOverlap memory_overlap(const Tensor& out, const Tensor& in_any) {
  if (!out.defined() || !in_any.defined()) return MemOverlap::NONE;
  const Tensor in = in_any.shape() == out.shape() ? in_any : in_any.expand(out.shape());
  ByteRange both;
  if (!may_share(out, in, both)) return MemOverlap::NONE;
  if (same_layout(out, in)) return MemOverlap::FULL;
  // Walk both side by side: a shared byte is harmless only when it belongs to the same element index on both sides.
  const int64_t eo = int64_t(dtype_size(out.dtype())), ei = int64_t(dtype_size(in.dtype()));
  ByteSet set(both, std::min(eo, ei));
  mark_all(out, set);
  const Shape* strides[2] = {&out.strides(), &in.strides()};
  const int64_t base[2] = {out.offset(), in.offset()};
  bool shared = false, partial = false;
  for_each_strided<2>(out.shape(), strides, base, [&](const int64_t* o) {
    if (partial || !set.any(o[1] * ei, ei)) return;
    shared = true;
    if (eo != ei || o[0] != o[1]) partial = true;
  });
  if (partial) return MemOverlap::PARTIAL;
  return shared ? MemOverlap::FULL : MemOverlap::NONE;
}

void check_no_internal_overlap(const Tensor& out, const char* what) {
  FG_CHECK(!has_internal_overlap(out),
           what << ": the written tensor " << out.str() << " has several elements at one memory address (an "
                << "expand()ed view), so the result would depend on which write lands last; write into a "
                << "tensor of its own (clone() it, then copy back what you need)");
}

void check_no_partial_overlap(const Tensor& out, const Tensor& in, const char* what) {
  check_no_internal_overlap(out, what);
  FG_CHECK(memory_overlap(out, in) != MemOverlap::PARTIAL,
           what << ": the input " << in.str() << " and the written tensor " << out.str()
                << " share memory in different layouts (as in x += x.t() or a shifted slice of x), so the result "
                << "would depend on the order the elements are written in; clone() the input first");
}

void check_no_overlap(const Tensor& out, const Tensor& in, const char* what) {
  check_no_internal_overlap(out, what);
  FG_CHECK(!shares_memory(out, in),
           what << ": the input " << in.str() << " shares memory with the output " << out.str()
                << ", which this op writes while it still reads the input; write into a new tensor, or clone() "
                << "the input first");
}

void check_elementwise_update(std::initializer_list<const Tensor*> written, std::initializer_list<const Tensor*> read,
                              const char* what) {
  for (auto w_it = written.begin(); w_it != written.end(); ++w_it) {
    const Tensor* w = *w_it;
    if (!w->defined()) continue;
    check_no_internal_overlap(*w, what);
    for (auto other_it = written.begin(); other_it != written.end(); ++other_it)
      if (other_it != w_it && (*other_it)->defined()) check_no_partial_overlap(*w, **other_it, what);
    for (const Tensor* in : read)
      if (in->defined()) check_no_partial_overlap(*w, *in, what);
  }
}

void check_outputs_separate(std::initializer_list<const Tensor*> outputs, std::initializer_list<const Tensor*> inputs,
                            const char* what) {
  for (auto out_it = outputs.begin(); out_it != outputs.end(); ++out_it) {
    const Tensor* out = *out_it;
    if (!out->defined()) continue;
    for (const Tensor* in : inputs) check_no_overlap(*out, *in, what);
    for (auto other_it = outputs.begin(); other_it != out_it; ++other_it) {  // each pair once
      const Tensor* other = *other_it;
      FG_CHECK(!shares_memory(*out, *other), what << ": two outputs, " << other->str() << " and " << out->str()
                                                  << ", share memory; give each output a tensor of its own");
    }
  }
}

}  // namespace fg
