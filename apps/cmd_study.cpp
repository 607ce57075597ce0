// `filmgrad study (--data DIR | --clean A --damaged B) --vgg-weights FILE -o OUT`: the loss-network study of SPEC B
// (apps/study.h): the VGG16-BN filters' mean activations on clean/damaged pairs, Table 5.2's count of differing
// top filters, and filter visualisation by activation maximisation, written as JSON, CSV, PNG grids and one
// self-contained HTML report. Every check that can fail runs before the work (the options, the weights, the pairs'
// files); the outputs are written atomically after the work.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/study.h"
#include "data/dataset.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace {

namespace fs = std::filesystem;

std::string help_text() {
  return "usage: filmgrad study (--data DIR | --clean A --damaged B) --vgg-weights FILE -o OUT [options]\n"
         "\n"
         "The loss-network study: for each clean/damaged pair, the mean activation of every filter at the\n"
         "five VGG16-BN layers the perceptual loss compares (features[5, 12, 22, 32, 42]), how many of each\n"
         "layer's top 9 filters differ between clean and damaged (the dissertation's Table 5.2), and each\n"
         "layer's top filters visualised by activation maximisation. Writes OUT/report.html (self-contained),\n"
         "OUT/study.json, OUT/table.csv, OUT/activations.csv and OUT/vis_layer<i>_f<index>.png (one grid per\n"
         "layer).\n"
         "\n"
         "pairs:\n"
         "  --data DIR        a folder as 'filmgrad synth' writes it: DIR/clean/NAME and DIR/damaged/NAME\n"
         "  --clean A --damaged B   one pair (same size, at least 16x16)\n"
         "  --max-pairs N     the first N pairs of --data by name (default: all)\n"
         "network:\n"
         "  --vgg-weights FILE  torchvision's vgg16_bn state dict as safetensors (features.* names), or\n"
         "                    'random' for an untrained VGG (seeded by --seed; for tests and demos)\n"
         "  --vgg-width W     channel multiplier of the VGG (default 1; the weights must match it)\n"
         "  --seed N          the random VGG's and the visualisation's noise seed (default 0)\n"
         "  --top K           filters compared per layer (default 9)\n"
         "visualisation (the dissertation's settings are the defaults):\n"
         "  --vis-filters N   per layer: the top N filters on the clean and on the damaged images (default\n"
         "                    9; 0 skips the visualisation)\n"
         "  --vis-start PX    starting image size (default 56)\n"
         "  --vis-upscaling-steps N  optimisation rounds, with a resize between each two (default 12)\n"
         "  --vis-scale X     resize factor between rounds (default 1.2)\n"
         "  --vis-steps N     Adam steps per round (default 40)\n"
         "  --vis-lr X        Adam's learning rate (default 0.1)\n"
         "  -o, --out OUT     the output folder (created when missing)\n"
         "\n"
         "At the default settings a full-width VGG visualises each filter with 480 forward and backward\n"
         "passes at up to 416 px: minutes per filter on a CPU. docs/study.md has a demo-scale run.\n";
}

// Same check as eval's: the nearest existing folder on the way to `path` must be writable.
void require_creatable_folder(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  const fs::file_status st = fs::status(p, ec);
  if (fs::exists(st)) {
    FG_CHECK(fs::is_directory(st), "cannot write the study into '" << path << "': it is a file, not a folder");
    FG_CHECK(::access(p.c_str(), W_OK) == 0,
             "cannot write the study into '" << path << "': the folder is not writable");
    return;
  }
  fs::path parent = p.parent_path();
  while (!parent.empty() && !fs::exists(parent, ec) && parent != parent.parent_path()) parent = parent.parent_path();
  FG_CHECK(fs::is_directory(parent, ec),
           "cannot create the output folder '" << path << "': '" << parent.string() << "' is not a folder");
  FG_CHECK(::access(parent.c_str(), W_OK) == 0,
           "cannot create the output folder '" << path << "': '" << parent.string() << "' is not writable");
}

std::vector<StudyPair> pairs_of_folder(const std::string& dir, int64_t max_pairs) {
  const fs::path clean = fs::path(dir) / "clean", damaged = fs::path(dir) / "damaged";
  if (!fs::is_directory(clean) || !fs::is_directory(damaged))
    throw UsageError("--data '" + dir + "' needs the subfolders clean/ and damaged/ (as 'filmgrad synth' writes them)");
  std::vector<StudyPair> pairs;
  for (const std::string& rel : data::list_images(clean.string())) {
    const fs::path d = damaged / rel;
    if (!fs::exists(d)) continue;
    StudyPair p;
    p.name = fs::path(rel).replace_extension().generic_string();
    p.clean_path = (clean / rel).string();
    p.damaged_path = d.string();
    pairs.push_back(p);
    if (max_pairs > 0 && int64_t(pairs.size()) >= max_pairs) break;
  }
  if (pairs.empty())
    throw UsageError("--data '" + dir + "' has no image in clean/ with a damaged/ image of the same name");
  return pairs;
}

}  // namespace

int cmd_study(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  ArgParser args("study", {{"--data"},
                           {"--clean"},
                           {"--damaged"},
                           {"--max-pairs"},
                           {"--vgg-weights"},
                           {"--vgg-width"},
                           {"--seed"},
                           {"--top"},
                           {"--vis-filters"},
                           {"--vis-start"},
                           {"--vis-upscaling-steps"},
                           {"--vis-scale"},
                           {"--vis-steps"},
                           {"--vis-lr"},
                           {"-o"},
                           {"--out"}});
  args.parse(argc, argv, 2);

  // "-o" is the short form of --out, as in restore.
  if (args.has("-o") && args.has("--out")) throw UsageError("-o and --out name the same option; give one");
  if (!args.has("-o") && !args.has("--out")) throw UsageError("missing -o OUT (the folder the study is written to)");
  const std::string out = args.has("-o") ? args.required("-o") : args.required("--out");
  const std::string weights = args.required("--vgg-weights");
  StudyOptions o;
  o.top = args.integer("--top", 9, 1);
  o.vis.filters = args.integer("--vis-filters", 9, 0);
  o.vis.start_size = args.integer("--vis-start", 56, 16);
  o.vis.rounds = args.integer("--vis-upscaling-steps", 12, 1);
  o.vis.scale = args.positive_number("--vis-scale", 1.2);
  o.vis.steps = args.integer("--vis-steps", 40, 1);
  o.vis.lr = args.positive_number("--vis-lr", 0.1);
  const uint64_t seed = args.seed("--seed", 0);
  o.vis.seed = seed;
  const double width = args.positive_number("--vgg-width", 1.0);
  if (o.vis.scale < 1.0) throw UsageError("--vis-scale must be at least 1 (the image grows between rounds)");

  std::vector<StudyPair> pairs;
  if (args.has("--data")) {
    if (args.has("--clean") || args.has("--damaged")) throw UsageError("give either --data or --clean and --damaged");
    pairs = pairs_of_folder(args.text("--data"), args.integer("--max-pairs", 0, 1));
  } else {
    if (!args.has("--clean") || !args.has("--damaged"))
      throw UsageError("the study needs pairs: --data DIR, or --clean A --damaged B");
    const std::string a = args.text("--clean"), b = args.text("--damaged");
    require_readable_file(a, "the clean image");
    require_readable_file(b, "the damaged image");
    pairs.push_back({fs::path(a).stem().string(), a, b});
  }
  if (weights != "random") require_readable_file(weights, "the VGG weights file");
  require_creatable_folder(out);

  Generator gen(seed);
  models::VGG16 vgg(gen, true, width);
  if (weights != "random") vgg.load_torchvision(load_safetensors(weights).tensors);

  std::string settings = "filmgrad study";
  for (int i = 2; i < argc; ++i) settings += std::string(" ") + argv[i];
  std::printf("study: %zu pair%s, VGG16-BN width %g (%s)\n", pairs.size(), pairs.size() == 1 ? "" : "s", width,
              weights.c_str());
  std::fflush(stdout);
  const StudyResult result = run_study(vgg, pairs, o, [](const std::string& line) {
    std::printf("  %s\n", line.c_str());
    std::fflush(stdout);
  });
  fs::create_directories(out);
  write_study(result, o, settings, out);
  std::printf("differing among the top %lld (mean over the pairs), layers 1-5:", static_cast<long long>(o.top));
  for (int64_t d : result.mean.differing) std::printf(" %lld", static_cast<long long>(d));
  std::printf("\nwrote %s\n", (fs::path(out) / "report.html").string().c_str());
  return 0;
}

}  // namespace fg::apps
