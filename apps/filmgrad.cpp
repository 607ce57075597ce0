// filmgrad: the command-line program. Subcommands (one file each, apps/cmd_<name>.cpp):
//   demo      train a small U-Net on the CPU to remove synthetic dust from generated images, report PSNR
//   inspect   a model's layer table (output shapes, parameter counts, trainable or frozen) and totals
//   forward   run a model on an image or a tensor file; write its output and, on request, every layer's output
//   synth     write damaged/clean pairs from a folder of clean images
//   train     train a restoration network on a folder of photos
//   eval      evaluate checkpoints on the test split: tables, histograms, examples, as an HTML report
//   restore   restore images of any size with a trained network, tiled
//   metrics   PSNR and SSIM of two images
//   version   print the version, the build configuration and the CPU kernels picked
//   study     the loss-network study: VGG16-BN filter activations on clean/damaged pairs, filter visualisation
//   bench     run the CPU (and, with a GPU, CUDA) benchmarks this build has; a table and JSON
// User errors print one line "filmgrad: error: ..." and exit with status 2 (bad usage, a missing input file) or
// 1 (any other failure).
#include <cstdio>
#include <new>
#include <string>

#include "apps/args.h"
#include "apps/commands.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/gemm.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"demo", fg::apps::cmd_demo},
    {"inspect", fg::apps::cmd_inspect},
    {"forward", fg::apps::cmd_forward},
    {"synth", fg::apps::cmd_synth},
    {"train", fg::apps::cmd_train},
    {"eval", fg::apps::cmd_eval},
    {"restore", fg::apps::cmd_restore},
    {"metrics", fg::apps::cmd_metrics},
    {"version", fg::apps::cmd_version},
    {"study", fg::apps::cmd_study},
    {"bench", fg::apps::cmd_bench},
};

constexpr const char* kUsage =
    "usage: filmgrad <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo      train a small U-Net on the CPU to remove synthetic dust and scratches from generated\n"
    "            images; prints the loss and the PSNR before and after, writes a sample grid\n"
    "  inspect   --model NAME: the layer table (output shapes, parameters, trainable or frozen) and the\n"
    "            parameter totals\n"
    "  forward   --model NAME --input FILE --output FILE.safetensors: run a model in eval mode and write\n"
    "            its output (and with --activations every layer's output), e.g. to compare with PyTorch\n"
    "  synth     IN_DIR -o OUT_DIR: write damaged/clean pairs (dust and scratches, or damaged negatives)\n"
    "  train     --data DIR --out RUN: train a restoration network (presets: dissertation, cross-channel)\n"
    "  eval      RUN --data DIR: the papers' tables and plots as one HTML report (plus CSV)\n"
    "  restore   IN... -o OUT --model RUN: restore images of any size (tiled), keeping their bit depth\n"
    "  metrics   A B: PSNR and SSIM of two images, whole and per channel\n"
    "  version   print the version and how this binary was built\n"
    "  study     --data DIR --vgg-weights FILE -o OUT: what the perceptual loss's VGG sees of damage\n"
    "            (Table 5.2's differing top-9 filters, filter visualisations), as an HTML report\n"
    "  bench     the CPU and GPU benchmarks: FLOP/s, bytes/s and percent of peak, as a table and JSON\n"
    "\n"
    "Run 'filmgrad <command> --help' for a command's options; docs/cli.md has examples.\n";

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
  const std::string name = cmd == "--version" ? "version" : cmd;
  const Command* command = nullptr;
  for (const Command& c : kCommands)
    if (name == c.name) command = &c;
  try {
    if (command == nullptr) throw fg::apps::UsageError("unknown command '" + cmd + "'");
    // FG_CPU_GEMM, FG_CPU_KERNELS and FG_CPU_WINOGRAD are read on first use, which may run inside an OpenMP region
    // where an error could not be reported: read them here, so a bad value is a one-line error before any work.
    fg::cpu::gemm_backend();
    fg::cpu::gemm_isa();
    fg::kernels::conv2d_cpu_winograd();
    return command->run(argc, argv);
  } catch (const fg::apps::UsageError& e) {
    const std::string help = command ? "filmgrad " + name + " --help" : "filmgrad --help";
    std::fprintf(stderr, "filmgrad: error: %s (see '%s')\n", e.what(), help.c_str());
    return 2;
  } catch (const fg::Error& e) {
    std::fprintf(stderr, "filmgrad: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "filmgrad: error: out of memory; try a smaller input or --width\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "filmgrad: internal error: %s (please report it)\n", e.what());
    return 1;
  }
}
