// Which implementation runs an op family on CUDA tensors: filmgrad's own kernels (kernels/cuda/) or the vendor
// library twin (kernels/vendor/: cuDNN for conv2d and batch norm, cuBLAS for matmul and the Gram matrix). The
// choice is made at run time so one training run can be timed on either.
//
// Initial values come from the environment variable FG_VENDOR, read once on first use:
//   unset or ""  every family on filmgrad's kernels (the default)
//   "none"       the same
//   "all"        every family on the vendor library
//   a comma list of families, e.g. "conv2d,matmul": those on the vendor library; the names are
//                conv2d, batch_norm, matmul, gram (spaces around names are ignored)
// Anything else throws fg::Error on first use, naming the bad entry and the valid ones. set_vendor() overrides a
// family afterwards (tests and benchmarks use it). Without CUDA the switch exists, holds its value, and nothing
// consults it. Thread-safe; a kernel entry point reads it once per call.
#pragma once
#include <string>

namespace fg::kernels {

enum class OpFamily { CONV2D, BATCH_NORM, MATMUL, GRAM };

bool use_vendor(OpFamily family);
void set_vendor(OpFamily family, bool vendor);
const char* op_family_name(OpFamily family);  // "conv2d", "batch_norm", "matmul", "gram"

// Parses an FG_VENDOR value into one flag per family (index = int(OpFamily)); throws fg::Error when it is invalid.
// Exposed for tests.
struct VendorSelection {
  bool vendor[4] = {false, false, false, false};
};
VendorSelection parse_vendor_selection(const std::string& text);

}  // namespace fg::kernels
