// `filmgrad restore IN... -o OUT --model RUN`: restores scans of any size with a trained network, tiled, keeping
// their bit depth (the logic is apps/restore.h; this file is the command line).
//
// Promises: every check that can fail before the first image (options, inputs, outputs, the model) runs first and
// stops with one line; then each image is restored and written on its own, so an image that cannot be read is
// reported (one line naming it) and skipped, the others are still written, and the exit status is 1 at the end.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/restore.h"
#include "tensor/storage.h"

namespace fg::apps {

namespace {

std::string help_text() {
  return "usage: filmgrad restore IN... -o OUT --model RUN [--mode dust|negative] [--mask] [--tile 512]\n"
         "                        [--margin PX] [--ramp 32] [--device cpu|cuda] [--format same|png|tif|jpg]\n"
         "                        [--suffix _restored] [--work-size auto|PX] [--overwrite] [--inference-mode]\n"
         "                        [--f16-weights] [--fill network|classical] [--fill-threshold 0.7]\n"
         "                        [--inpaint harmonic|biharmonic] [--fill-check neutral|none] [--flip-average]\n"
         "\n"
         "Restores images with a trained network, in tiles so that memory stays bounded whatever the image size.\n"
         "IN are image files or folders (searched recursively for .png .tif .tiff .jpg .jpeg .bmp .tga; hidden\n"
         "files skipped). Each output keeps its input's bit depth (16-bit PNG/TIFF stays 16-bit), channels and\n"
         "alpha; inputs are never overwritten.\n"
         "\n"
         "options:\n"
         "  -o, --output OUT  the output folder (created; sub-folders of an input folder are kept), written as\n"
         "                    NAME<suffix>.<ext>; with one input file, OUT may instead be the output file itself\n"
         "  --model RUN       a run folder written by 'filmgrad train' (its model.safetensors) or a checkpoint\n"
         "  --mode MODE       dust: the image's RGB in, restored RGB out (grey is restored as RGB and written back\n"
         "                    grey); negative: the image's (R, G, B) is (R, G, damaged B); R and G are kept, B is\n"
         "                    replaced by the restored blue. Must match the model's task (default: the model's)\n"
         "  --mask            also write NAME<suffix>_mask.png, the predicted damage mask (8-bit grey)\n"
         "  --tile PX         the largest tile side (default 512; rounded down to the model's size multiple)\n"
         "  --margin PX       pixels discarded at each inner tile edge (default: the model's receptive-field radius\n"
         "                    when it is at most 64 px, so tiles join exactly (tiny_unet: 22); otherwise 32)\n"
         "  --ramp PX         width over which neighbouring tiles are blended (default 32)\n"
         "  --device DEV      cpu (default), cuda or cuda:N\n"
         "  --format F        same (the input's format, default), png, tif or jpg (JPEG is 8-bit, without alpha)\n"
         "  --suffix S        added to each output's name (default _restored)\n"
         "  --work-size PX    dust: restore an image whose shorter side is over PX at that size, then bring back\n"
         "                    only what the network changed (its damage mask) to full size; elsewhere the\n"
         "                    pixels stay as they are. auto (default): the largest frame the model's dust was\n"
         "                    sized for in training, when its run recorded one; 0: always at full size\n"
         "  --fill F          dust, with a model that predicts a damage mask: network (default: the network's\n"
         "                    output) or classical (the pixels its mask marks, dilated by 1 px, filled from the\n"
         "                    pixels around them by --inpaint; every other pixel kept as it is)\n"
         "  --inpaint I       with --fill classical: harmonic (default; each filled pixel the mean of its\n"
         "                    neighbours) or biharmonic (carries the gradients into the hole; faster on large scans)\n"
         "  --fill-threshold T  the mask value over which --fill classical fills a pixel (default 0.7)\n"
         "  --fill-check C    with --fill classical: neutral (default) puts back the filled spots whose change is\n"
         "                    not a blend towards white or black alike in every channel (dust blocks all colours\n"
         "                    alike; a coloured change is texture the mask mistook for damage); none keeps all\n"
         "  --flip-average    average the network over the image and its three mirror images (4 times the time;\n"
         "                    a steadier damage mask)\n"
         "  --overwrite       replace outputs that exist (without it, an existing output stops the run)\n"
         "  --inference-mode  fold the BatchNorms into the convolutions once after loading (the same result up to\n"
         "                    float rounding, a little faster; docs/embedding.md)\n"
         "  --f16-weights     keep the weights in 16-bit floats (half the model's memory; computed in 32-bit; the\n"
         "                    result changes slightly, docs/embedding.md gives the measured error). CPU only\n"
         "\n"
         "docs/restore.md explains the tiling, the margins and the memory use.\n";
}

const std::vector<OptionSpec>& option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"-o"},      {"--output"}, {"--model"},  {"--mode"},   {"--mask", 0},      {"--tile"},
      {"--margin"}, {"--ramp"},  {"--device"}, {"--format"}, {"--suffix"}, {"--overwrite", 0}, {"--work-size"},
      {"--inference-mode", 0}, {"--f16-weights", 0}, {"--fill"}, {"--fill-threshold"}, {"--fill-check"},
      {"--flip-average", 0}, {"--inpaint"},
  };
  return specs;
}

// Splits argv[first..) into positional inputs and the options ArgParser checks (an argument that does not start
// with '-' and is not an option's value is an input).
std::vector<char*> split_arguments(int argc, char** argv, int first, std::vector<std::string>& inputs) {
  std::vector<char*> options = {argv[0], argv[1]};
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.size() > 1 && a[0] == '-') {
      options.push_back(argv[i]);
      for (const OptionSpec& s : option_specs()) {
        if (s.flag != a) continue;
        for (int k = 0; k < s.values && i + 1 < argc; ++k) options.push_back(argv[++i]);
      }
    } else {
      inputs.push_back(a);
    }
  }
  return options;
}

}  // namespace

int cmd_restore(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  // The host block cache (tensor/storage.h) keeps freed blocks for reuse, up to 1 GiB by default: right for
  // training, where every step allocates the same sizes, but one tile of a U-Net frees many sizes that are needed
  // once per tile, and the cache would add them all to the peak (measured: 1.8 GB instead of 1.2 GB for a 512-pixel
  // tile of the Dynamic U-Net). 256 MiB keeps what the next tile reuses. Set before the first tensor exists (the
  // cache reads it once); a value the user set is kept.
  ::setenv("FG_CPU_CACHE_MB", "256", /*overwrite=*/0);
  std::vector<std::string> inputs;
  std::vector<char*> opts = split_arguments(argc, argv, 2, inputs);
  ArgParser args("restore", option_specs());
  args.parse(int(opts.size()), opts.data(), 2);
  if (args.has("-o") && args.has("--output")) throw UsageError("-o and --output name the same option; give one");
  const std::string out = args.has("-o") ? args.required("-o") : args.has("--output") ? args.required("--output") : "";
  if (out.empty()) throw UsageError("restore needs -o OUT (the output folder)");
  const std::string model_arg = args.required("--model");

  RestoreOptions options;
  options.mode = args.text("--mode");
  if (!options.mode.empty() && options.mode != "dust" && options.mode != "negative")
    throw UsageError("--mode must be dust or negative, got '" + options.mode + "'");
  options.write_mask = args.has("--mask");
  options.tile = args.integer("--tile", options.tile, 1);
  options.margin = args.integer("--margin", -1, 0);
  options.ramp = args.integer("--ramp", options.ramp, 0);
  options.device = args.text("--device", "cpu");
  options.format = args.text("--format", "same");
  options.suffix = args.text("--suffix", options.suffix);
  options.overwrite = args.has("--overwrite");
  const std::string work = args.text("--work-size", "auto");
  if (work == "auto") {
    options.work_size = -1;
  } else {
    options.work_size = args.integer("--work-size", 0, 0);
  }
  options.inference_mode = args.has("--inference-mode");
  options.f16_weights = args.has("--f16-weights");
  options.fill = args.text("--fill", options.fill);
  options.fill_threshold = args.positive_number("--fill-threshold", options.fill_threshold);
  options.fill_check = args.text("--fill-check", options.fill_check);
  options.flip_average = args.has("--flip-average");
  options.inpaint = args.text("--inpaint", options.inpaint);
  if (options.suffix.find('/') != std::string::npos) throw UsageError("--suffix must not contain '/'");
  (void)parse_device(options.device);  // a bad name is a usage mistake, found before the model loads
  if (::isatty(STDERR_FILENO)) {
    // A scan takes minutes on a CPU: show the tiles as they finish (only on a terminal, so logs stay clean).
    options.on_tile = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\r  tile %lld of %lld", (long long)done, (long long)total);
      if (done == total) std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
    };
  }

  const std::vector<RestoreJob> jobs = plan_restore(inputs, out, options);
  const std::string model_path = resolve_model_path(model_arg);
  if (options.work_size < 0) options.work_size = trained_work_size(model_path);
  Restorer restorer(load_restoration_model(model_path), options);

  // Output folders (a file output's folder must exist already, as for every other command).
  namespace fs = std::filesystem;
  for (const RestoreJob& job : jobs) {
    const fs::path folder = fs::path(job.output).parent_path();
    if (folder.empty()) continue;
    std::error_code ec;
    if (fs::is_directory(folder, ec)) continue;
    fs::create_directories(folder, ec);
    FG_CHECK(!ec, "cannot create the output folder '" << folder.string() << "': " << ec.message());
  }
  for (const RestoreJob& job : jobs) require_output_folder(job.output);

  const data::TileOptions& t = restorer.tile_options();
  const ModelConfig& mc = restorer.model().config();
  std::printf("model %s (width %g, %s) from %s; tiles of at most %lld px, margin %lld, ramp %lld, on %s%s%s%s\n",
              mc.model.c_str(), mc.width, restorer.mode().c_str(), model_path.c_str(), (long long)t.tile,
              (long long)t.margin, (long long)t.ramp, options.device.c_str(),
              options.work_size > 0 && restorer.mode() == "dust"
                  ? ("; images over " + std::to_string(options.work_size) + " px restored at that size").c_str()
                  : "",
              options.inference_mode ? "; BatchNorms folded" : "", options.f16_weights ? "; f16 weights" : "");
  std::fflush(stdout);

  int64_t failed = 0;
  double total_seconds = 0, total_megapixels = 0;
  for (const RestoreJob& job : jobs) {
    try {
      const RestoreReport r = restorer.restore_file(job);
      total_seconds += r.seconds;
      total_megapixels += double(r.width) * double(r.height) * 1e-6;
      std::printf("%s -> %s: %lldx%lld %s, %lld tile%s, %.2f s%s%s\n", job.input.c_str(), job.output.c_str(),
                  (long long)r.width, (long long)r.height, r.input_description.c_str(), (long long)r.tiles,
                  r.tiles == 1 ? "" : "s", r.seconds, r.note.empty() ? "" : "; ", r.note.c_str());
    } catch (const fg::Error& e) {
      ++failed;
      std::fflush(stdout);
      std::fprintf(stderr, "filmgrad: error: %s\n", e.what());
    } catch (const std::bad_alloc&) {
      ++failed;
      std::fflush(stdout);
      std::fprintf(stderr, "filmgrad: error: out of memory restoring '%s'; try a smaller --tile\n", job.input.c_str());
    }
    std::fflush(stdout);
    release_host_cache();  // the next image may have another size: hand this one's blocks back to the system
  }
  const int64_t done = int64_t(jobs.size()) - failed;
  if (failed > 0)
    throw fg::Error(std::to_string(failed) + " of " + std::to_string(jobs.size()) +
                    " images could not be restored (named above); the other " + std::to_string(done) +
                    " were written");
  std::printf("restored %lld image%s (%.1f megapixels) in %.1f s\n", (long long)done, done == 1 ? "" : "s",
              total_megapixels, total_seconds);
  return 0;
}

}  // namespace fg::apps
