// Vendor selection per op family (kernels/backend.h): FG_VENDOR's grammar (none, all, a comma list, spaces),
// a clear error naming a bad entry, and set_vendor/use_vendor. Runs in every build (the switch exists without
// CUDA too).
#include <gtest/gtest.h>

#include <string>

#include "kernels/backend.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

using kernels::OpFamily;

const OpFamily kFamilies[] = {OpFamily::CONV2D, OpFamily::BATCH_NORM, OpFamily::MATMUL, OpFamily::GRAM};

bool picks(const kernels::VendorSelection& s, OpFamily f) { return s.vendor[int(f)]; }

TEST(Backend, VendorSelectionGrammar) {
  for (const char* text : {"", "none", "  none "}) {
    const kernels::VendorSelection s = kernels::parse_vendor_selection(text);
    for (OpFamily f : kFamilies)
      EXPECT_FALSE(picks(s, f)) << "'" << text << "'";
  }
  const kernels::VendorSelection all = kernels::parse_vendor_selection("all");
  for (OpFamily f : kFamilies) EXPECT_TRUE(picks(all, f));
  const kernels::VendorSelection some = kernels::parse_vendor_selection("conv2d, matmul");
  EXPECT_TRUE(picks(some, OpFamily::CONV2D));
  EXPECT_TRUE(picks(some, OpFamily::MATMUL));
  EXPECT_FALSE(picks(some, OpFamily::BATCH_NORM));
  EXPECT_FALSE(picks(some, OpFamily::GRAM));
  const kernels::VendorSelection each = kernels::parse_vendor_selection("gram,batch_norm,conv2d,matmul");
  for (OpFamily f : kFamilies) EXPECT_TRUE(picks(each, f));
}

TEST(Backend, BadSelectionsAreClearErrors) {
  for (const char* text : {"cudnn", "conv2d,", "conv2d,,matmul", "ALL", "conv"}) {
    const std::string msg = test::error_of([&] { kernels::parse_vendor_selection(text); });
    EXPECT_NE(msg.find("FG_VENDOR"), std::string::npos) << text << ": " << msg;
    EXPECT_NE(msg.find("conv2d, batch_norm, matmul, gram"), std::string::npos) << text << ": " << msg;
  }
}

TEST(Backend, SetAndUse) {
  const bool before = kernels::use_vendor(OpFamily::GRAM);
  kernels::set_vendor(OpFamily::GRAM, !before);
  EXPECT_EQ(kernels::use_vendor(OpFamily::GRAM), !before);
  kernels::set_vendor(OpFamily::GRAM, before);
  EXPECT_EQ(kernels::use_vendor(OpFamily::GRAM), before);
  EXPECT_STREQ(kernels::op_family_name(OpFamily::BATCH_NORM), "batch_norm");
}

}  // namespace
}  // namespace fg
