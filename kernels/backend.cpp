// Vendor selection per op family (kernels/backend.h): FG_VENDOR read once, then atomic flags.
#include "kernels/backend.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "tensor/error.h"

namespace fg::kernels {

namespace {

constexpr int kFamilies = 4;
const char* const kNames[kFamilies] = {"conv2d", "batch_norm", "matmul", "gram"};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

struct Flags {
  std::atomic<bool> vendor[kFamilies];
};

// The flags, initialised from FG_VENDOR on first use. A bad value throws on every use until it is fixed, so no
// kernel silently runs with a selection the user did not ask for.
Flags& flags() {
  static Flags f;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("FG_VENDOR");
    const VendorSelection sel = parse_vendor_selection(env ? env : "");
    for (int i = 0; i < kFamilies; ++i) f.vendor[i].store(sel.vendor[i]);
  });
  return f;
}

}  // namespace

VendorSelection parse_vendor_selection(const std::string& text) {
  VendorSelection sel;
  const std::string all = trim(text);
  if (all.empty() || all == "none") return sel;
  if (all == "all") {
    for (bool& v : sel.vendor) v = true;
    return sel;
  }
  size_t start = 0;
  while (start <= all.size()) {
    const size_t comma = all.find(',', start);
    const std::string item = trim(all.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    int found = -1;
    for (int i = 0; i < kFamilies; ++i)
      if (item == kNames[i]) found = i;
    FG_CHECK(found >= 0, "FG_VENDOR='" << text << "': unknown op family '" << item
                                       << "'; use a comma list of conv2d, batch_norm, matmul, gram, or all, or none");
    sel.vendor[found] = true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return sel;
}

bool use_vendor(OpFamily family) { return flags().vendor[int(family)].load(); }

void set_vendor(OpFamily family, bool vendor) { flags().vendor[int(family)].store(vendor); }

const char* op_family_name(OpFamily family) { return kNames[int(family)]; }

}  // namespace fg::kernels
