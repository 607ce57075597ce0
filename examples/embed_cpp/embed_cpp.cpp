// Restores image files with filmgrad's C++ API: plans the outputs as `filmgrad restore` does (nothing is written
// unless every input is readable and no output would overwrite one), loads a model once, and restores each file,
// tiled, with a progress line. Errors are one line and a nonzero exit, as in the filmgrad program.
//
//   embed_cpp MODEL OUT_DIR IN...
// MODEL: a run folder written by `filmgrad train` or a checkpoint. Each IN (an image, or a folder of images) is
// written to OUT_DIR as NAME_restored.EXT, keeping its format and bit depth, with its damage mask NAME_mask.png.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/restore.h"
#include "apps/task.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: embed_cpp MODEL OUT_DIR IN...\n");
    return 2;
  }
  try {
    fg::apps::RestoreOptions options;
    options.write_mask = true;
    options.on_tile = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r  tile %lld of %lld", static_cast<long long>(done), static_cast<long long>(total));
      if (done == total) std::fputc('\n', stderr);
    };
    const std::vector<std::string> inputs(argv + 3, argv + argc);
    const std::vector<fg::apps::RestoreJob> jobs = fg::apps::plan_restore(inputs, argv[2], options);

    auto model = fg::apps::load_restoration_model(fg::apps::resolve_model_path(argv[1]));
    std::fprintf(stderr, "model: %s (%s), %lld weights\n", model->config().model.c_str(), model->config().task.c_str(),
                 static_cast<long long>(model->module().num_parameters()));
    fg::apps::Restorer restorer(std::move(model), options);
    for (const fg::apps::RestoreJob& job : jobs) {
      std::filesystem::create_directories(std::filesystem::path(job.output).parent_path());
      std::fprintf(stderr, "%s\n", job.input.c_str());
      const fg::apps::RestoreReport r = restorer.restore_file(job);
      std::printf("%s: %lld x %lld, %lld tiles, %.2f s -> %s\n", job.input.c_str(), static_cast<long long>(r.width),
                  static_cast<long long>(r.height), static_cast<long long>(r.tiles), r.seconds, job.output.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "embed_cpp: error: %s\n", e.what());
    return 1;
  }
}
