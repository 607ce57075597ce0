// `filmgrad eval RUN_OR_CHECKPOINT... --data DIR`: the papers' evaluation of trained models on the test split, as
// one self-contained HTML report plus CSV files (apps/evaluate.h computes, apps/report.h writes).
//
// Promises: everything that can be checked before the long part is checked first (options, every checkpoint
// loaded, every split read, the size, one task for all models, the output folder), so a mistake costs no
// evaluation time; the outputs are written atomically and only after every model was evaluated, so a failure
// leaves any earlier report untouched.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/evaluate.h"
#include "apps/task.h"

namespace fg::apps {

namespace {

namespace fs = std::filesystem;

std::string help_text() {
  return "usage: filmgrad eval RUN_OR_CHECKPOINT... --data DIR [--split DIR] [--out DIR] [--size S]\n"
         "                     [--limit N] [--examples K] [--seed S] [--device cpu|cuda] [--batch N] [--workers N]\n"
         "\n"
         "Evaluates trained models on the test split, with fixed synthetic damage, and writes one self-contained\n"
         "HTML report (tables, histograms, best and worst examples, training curves; open it in a browser) plus\n"
         "per_image.csv and summary.csv. Dust models: SSIM and PSNR, whole and per channel, of the damaged input,\n"
         "of the prediction, and of the prediction on the clean image (the dissertation's Table 5.4, whose\n"
         "published figures are shown beside ours). Negative models: the restored blue channel (the cross-channel\n"
         "paper's Table 1). Several models make one report, one row each; they must share a task.\n"
         "\n"
         "arguments:\n"
         "  RUN_OR_CHECKPOINT  a folder written by filmgrad train (RUN/model.safetensors and RUN's split), or a\n"
         "                   checkpoint file (its split from its folder, or --split)\n"
         "options:\n"
         "  --data DIR       the image folder the split's paths are relative to (what train was given)\n"
         "  --split DIR      the folder with train.csv, validation.csv and test.csv (default: each run's own)\n"
         "  --out DIR        where to write report.html, per_image.csv, summary.csv (default: FIRST_RUN/eval)\n"
         "  --size S         images are S x S centre crops (default: the size the model was last trained at,\n"
         "                   or 256); a multiple of the model's size multiple (32 dynamic_unet, 16 cross_channel)\n"
         "  --limit N        only the first N test images\n"
         "  --examples K     how many best and worst examples to show per model (default 4)\n"
         "  --seed S         the seed of the test damage (default 0; fixed per image)\n"
         "  --device D       cpu (default), cuda or cuda:N\n"
         "  --batch N        images per forward (default 8)\n"
         "  --workers N      threads that read and damage images (default 2)\n";
}

// The nearest folder that exists on the way to `path` must be a writable folder (what create_directories needs).
void require_creatable_folder(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  const fs::file_status st = fs::status(p, ec);
  if (fs::exists(st)) {
    FG_CHECK(fs::is_directory(st), "cannot write the report into '" << path << "': it is a file, not a folder");
    FG_CHECK(::access(p.c_str(), W_OK) == 0,
             "cannot write the report into '" << path << "': the folder is not writable; pass --out with one that is");
    return;
  }
  fs::path parent = p.parent_path();
  while (!parent.empty() && !fs::exists(parent, ec) && parent != parent.parent_path()) parent = parent.parent_path();
  FG_CHECK(fs::is_directory(parent, ec),
           "cannot create the output folder '" << path << "': '" << parent.string() << "' is not a folder");
  FG_CHECK(::access(parent.c_str(), W_OK) == 0, "cannot create the output folder '"
                                                    << path << "': '" << parent.string()
                                                    << "' is not writable; pass --out with a folder you can write");
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(help_text().c_str(), stdout);
    return 0;
  }
  ArgParser args("eval", {{"--data"},
                          {"--split"},
                          {"--out"},
                          {"--size"},
                          {"--limit"},
                          {"--examples"},
                          {"--seed"},
                          {"--device"},
                          {"--batch"},
                          {"--workers"}});
  const std::vector<std::string> paths = args.parse_with_positionals(argc, argv, 2);
  if (paths.empty()) throw UsageError("eval needs at least one training run folder or checkpoint file");

  EvalOptions options;
  options.data_root = args.required("--data");
  {
    std::error_code ec;
    const fs::file_status st = fs::status(options.data_root, ec);
    if (!fs::exists(st)) throw UsageError("the image folder '" + options.data_root + "' does not exist");
    if (!fs::is_directory(st))
      throw UsageError("--data must name the folder of images, '" + options.data_root + "' is a file");
  }
  options.size = args.integer("--size", 0, 1);
  options.limit = args.integer("--limit", 0, 1);
  options.examples = args.integer("--examples", options.examples, 0);
  options.seed = args.seed("--seed", 0);
  options.batch_size = args.integer("--batch", options.batch_size, 1);
  options.workers = int(args.integer("--workers", options.workers, 0));
  options.device = args.text("--device", "cpu");
  try {
    const Device d = parse_device(options.device);
#ifndef FG_WITH_CUDA
    if (d.is_cuda()) throw UsageError("this filmgrad was built without CUDA; use --device cpu");
#else
    (void)d;
#endif
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(std::string("--device: ") + e.what());
  }

  const std::string split_override = args.text("--split");
  std::vector<EvalSource> sources;
  std::map<std::string, int> label_uses;
  for (const std::string& p : paths) {
    sources.push_back(resolve_eval_source(p, split_override));
    const int uses = ++label_uses[sources.back().label];
    if (uses > 1) sources.back().label += " (" + std::to_string(uses) + ")";
  }
  std::string out_dir = args.text("--out");
  if (out_dir.empty()) {
    const EvalSource& first = sources[0];
    const fs::path base = !first.run_dir.empty() ? fs::path(first.run_dir) : fs::path(first.checkpoint).parent_path();
    out_dir = ((base.empty() ? fs::path(".") : base) / "eval").string();
  }
  require_creatable_folder(out_dir);

  // Every model and split is loaded and checked before any evaluation: a wrong file, a bad size or a mix of tasks
  // costs no evaluation time.
  std::vector<EvalPlan> plans;
  for (const EvalSource& s : sources) {
    plans.push_back(plan_evaluation(s, options));
    const ModelConfig& first = plans[0].model->config();
    const ModelConfig& c = plans.back().model->config();
    if (c.task != first.task)
      throw UsageError("one report holds one task: '" + plans[0].source.path + "' is a " + first.task + " model (" +
                       first.model + ") but '" + s.path + "' is a " + c.task + " model (" + c.model +
                       "); run eval once per task");
  }

  std::vector<ModelEvaluation> evals;
  for (EvalPlan& plan : plans) {
    std::printf("evaluating %s (%s, %s): %zu test images at %lld x %lld\n", plan.source.label.c_str(),
                plan.model->config().task.c_str(), plan.model->config().model.c_str(), plan.test_paths.size(),
                static_cast<long long>(plan.size), static_cast<long long>(plan.size));
    std::fflush(stdout);
    evals.push_back(run_evaluation(plan, options));
    plan.model.reset();  // its memory (host or device) is free for the next one
  }
  write_eval_outputs(out_dir, evals, options);
  std::printf("\n%s\n", summary_text(evals).c_str());
  const fs::path out(out_dir);
  std::printf("report: %s\n", (out / "report.html").string().c_str());
  std::printf("tables: %s, %s\n", (out / "summary.csv").string().c_str(), (out / "per_image.csv").string().c_str());
  return 0;
}

}  // namespace fg::apps
