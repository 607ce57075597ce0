// Example 1: a Tensor is a strided view of a Storage. Views (transpose, slice, select, view) share memory and copy
// nothing; contiguous() and clone() copy. Walk-through: docs/internals/01_tensors.md. Exits non-zero when a claim
// printed here does not hold.
#include <cstdio>
#include <vector>

#include "tensor/tensor.h"

namespace {

int failures = 0;

void expect(bool ok, const char* claim) {
  std::printf("%s  %s\n", ok ? "ok  " : "FAIL", claim);
  if (!ok) ++failures;
}

}  // namespace

int main() {
  // 2 x 3, row-major: element (i, j) lives at offset + i * stride(0) + j * stride(1) = i * 3 + j.
  fg::Tensor a = fg::Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  std::printf("a: %s, strides %s\n", a.str().c_str(), fg::shape_str(a.strides()).c_str());
  expect(a.strides() == fg::Shape({3, 1}) && a.is_contiguous(), "a fresh tensor has row-major strides (3, 1)");

  // The transpose swaps two entries of shape and strides: same storage, no element moved.
  fg::Tensor t = a.transpose(0, 1);
  std::printf("t = a.transpose(0, 1): %s, strides %s\n", t.str().c_str(), fg::shape_str(t.strides()).c_str());
  expect(t.shares_storage_with(a) && t.strides() == fg::Shape({1, 3}), "the transpose shares storage, strides (1, 3)");
  expect(!t.is_contiguous(), "the transpose is not contiguous");
  expect(t.at({2, 1}) == a.at({1, 2}), "t[2, 1] == a[1, 2]");

  // A write through one view is seen through the other: they are one block of memory.
  a.data<float>()[5] = 50.0f;  // a[1, 2]
  expect(t.at({2, 1}) == 50.0, "a write to a[1, 2] is seen as t[2, 1]");

  // slice with a step multiplies the stride; select drops a dim and moves the offset.
  fg::Tensor cols = a.slice(1, 0, 3, 2);  // columns 0 and 2
  expect(cols.shape() == fg::Shape({2, 2}) && cols.stride(1) == 2, "a.slice(1, 0, 3, 2) is (2, 2) with stride 2");
  fg::Tensor row1 = a.select(0, 1);
  expect(row1.offset() == 3 && row1.to_vector() == std::vector<double>({3, 4, 50}),
         "a.select(0, 1) starts at offset 3");

  // view() needs compatible strides: the transpose cannot be flattened without a copy.
  bool threw = false;
  try {
    (void)t.view({6});
  } catch (const fg::Error&) {
    threw = true;
  }
  expect(threw, "t.view({6}) throws: the strides do not allow it");
  fg::Tensor flat = t.reshape({6});  // reshape copies when it must
  expect(!flat.shares_storage_with(a) && flat.to_vector() == std::vector<double>({0, 3, 1, 4, 2, 50}),
         "t.reshape({6}) copies, in t's logical order");

  // contiguous() of a contiguous tensor is the tensor itself; of a transpose, a copy.
  expect(a.contiguous().shares_storage_with(a), "a.contiguous() is a itself");
  expect(!t.contiguous().shares_storage_with(a) && t.contiguous().is_contiguous(), "t.contiguous() copies");

  // expand: a size-1 dim gets stride 0, so one element appears many times without being copied.
  fg::Tensor col = fg::Tensor::from_vector({1, 2}, {2, 1});
  fg::Tensor wide = col.expand({2, 4});
  expect(wide.stride(1) == 0 && wide.shares_storage_with(col) && wide.at({1, 3}) == 2.0,
         "col.expand({2, 4}) repeats with stride 0");

  std::printf("%s\n", failures ? "tensor_basics: FAILED" : "tensor_basics: all claims hold");
  return failures ? 1 : 0;
}
