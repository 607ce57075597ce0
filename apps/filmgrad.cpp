// filmgrad: the command-line program. Subcommands so far:
//   demo      train a small U-Net on the CPU to remove synthetic dust from generated images, report PSNR
//   version   print the version and build configuration
// User errors print one line "filmgrad: error: ..." and exit with status 2 (bad usage) or 1 (failure).
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "apps/demo.h"
#include "tensor/error.h"

namespace {

constexpr const char* kUsage =
    "usage: filmgrad <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo [--steps N] [--out DIR] [--seed S]\n"
    "            train a small U-Net on the CPU to remove synthetic dust and scratches from generated\n"
    "            images; prints the loss and the PSNR before and after, writes DIR/samples.ppm\n"
    "  version   print the version and how this binary was built\n"
    "\n"
    "Run 'filmgrad <command> --help' for a command's options.\n";

// A mistake in the command line: reported like any error, but with exit status 2.
struct UsageError : fg::Error {
  using fg::Error::Error;
};

int usage_error(const std::string& message) {
  std::fprintf(stderr, "filmgrad: error: %s (see 'filmgrad --help')\n", message.c_str());
  return 2;
}

int run_version() {
  std::printf("filmgrad 0.1.0\n");
#ifdef FG_WITH_CUDA
  std::printf("cuda: built in\n");
#else
  std::printf("cuda: not built (nvcc was not found at build time)\n");
#endif
  std::printf("openmp threads: %d\n", omp_get_max_threads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  try {
    if (cmd == "version" || cmd == "--version") return run_version();
    if (cmd == "demo") {
      fg::apps::DemoOptions opt;
      for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* flag) -> std::string {
          if (i + 1 >= argc) throw UsageError(std::string(flag) + " needs a value");
          return argv[++i];
        };
        auto number = [&](const char* flag) -> long long {
          const std::string v = value(flag);
          char* end = nullptr;
          const long long n = std::strtoll(v.c_str(), &end, 10);
          if (v.empty() || *end != '\0' || n < 0)
            throw UsageError(std::string(flag) + " needs a non-negative integer, got '" + v + "'");
          return n;
        };
        if (a == "--help" || a == "-h") {
          std::fputs("usage: filmgrad demo [--steps N] [--out DIR] [--seed S]\n"
                     "  --steps N   training steps (default 1500)\n"
                     "  --out DIR   where samples.ppm is written (default demo_out)\n"
                     "  --seed S    random seed for data and weights (default 1)\n",
                     stdout);
          return 0;
        } else if (a == "--steps") {
          opt.steps = number("--steps");
        } else if (a == "--out") {
          opt.out_dir = value("--out");
        } else if (a == "--seed") {
          opt.seed = uint64_t(number("--seed"));
        } else {
          return usage_error("unknown option '" + a + "' for demo");
        }
      }
      return fg::apps::run_demo(opt);
    }
    return usage_error("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    return usage_error(e.what());
  } catch (const fg::Error& e) {
    std::fprintf(stderr, "filmgrad: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "filmgrad: internal error: %s (please report it)\n", e.what());
    return 1;
  }
}
