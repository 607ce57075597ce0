// `filmgrad demo`: the engine end to end on an embedded default. Generates smooth synthetic images, damages them
// with dust specks and a scratch, trains models/tiny_unet.h on the CPU to predict the clean image, and reports
// the PSNR of the damaged and the restored held-out images. Writes a sample grid as a PPM image.
#pragma once
#include <cstdint>
#include <string>

namespace fg::apps {

struct DemoOptions {
  int64_t steps = 1500;
  std::string out_dir = "demo_out";
  uint64_t seed = 1;
};

int run_demo(const DemoOptions& options);  // returns the process exit status

}  // namespace fg::apps
