// `filmgrad train`: reads the command line into TrainOptions (a preset's defaults, then each explicit flag), prints
// the plan and runs the Trainer (apps/train.h). Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves
// RUN/last.safetensors and exits with status 130; `--resume` continues a run from there with only --out.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/nogan.h"
#include "apps/presets.h"
#include "apps/train.h"
#include "models/registry.h"

namespace fg::apps {

namespace {

constexpr const char* kHelp =
    "usage: filmgrad train --data DIR --out RUN [options]\n"
    "       filmgrad train --out RUN --resume\n"
    "       mpirun -np N filmgrad train ...   (or srun: N data-parallel ranks, docs/distributed.md)\n"
    "\n"
    "Trains a restoration network on a folder of clean photos (damage is synthesised on the fly) and writes the\n"
    "run folder RUN: the split (train.csv, validation.csv, test.csv), last.safetensors (to resume),\n"
    "best.safetensors, model.safetensors (the best weights, what eval and restore load), metrics.jsonl and\n"
    "samples/epoch_NNN.png. docs/training.md explains every default.\n"
    "\n"
    "what to train (a preset fills every default; each flag overrides one):\n"
    "  --preset NAME            dissertation (default), cross-channel or demo; nogan trains a critic and\n"
    "                           the GAN phase on a finished run (filmgrad train --preset nogan --help)\n"
    "  --task dust|negative     dust and scratches on RGB, or the blue channel of negatives\n"
    "  --model NAME             dynamic_unet, tiny_unet (dust); cross_channel, cross_channel_no_mask,\n"
    "                           cross_channel_plain (negative)\n"
    "  --width W                channel multiplier (1 = the published network)\n"
    "  --loss NAME              mse, mae, ssim, model1, model2, model3 (dust); cross_channel (negative)\n"
    "  --vgg-weights FILE       torchvision vgg16_bn weights (safetensors) for model1-3, or 'random'\n"
    "  --encoder-weights FILE   torchvision resnet34 weights (safetensors) to start the encoder from\n"
    "  --gated, --no-gated      a damage-mask head whose mask gates the output (the input is kept where no\n"
    "                           damage is predicted); dynamic_unet and cross_channel (on in the demo preset)\n"
    "\n"
    "schedule:\n"
    "  --sizes 64,128,256       image sizes of the progressive-resizing stages\n"
    "  --batches 32,16,8        batch size per size (one value: the same for every size)\n"
    "  --epochs-per-size N      epochs of each resizing stage\n"
    "  --unfrozen-epochs N      epochs of the final stage with the encoder unfrozen (0: none)\n"
    "  --epochs N               every stage N epochs (instead of the two above)\n"
    "  --lr X                   peak learning rate of the resizing stages (the unfrozen stage keeps the\n"
    "                           preset's ratio: a tenth of it for the dissertation)\n"
    "  --wd X                   weight decay (decoupled for adamw)\n"
    "  --optimizer adamw|adam   --schedule one-cycle|constant\n"
    "  --samples-per-image K    random crops per photo per epoch\n"
    "  --load-scale X           crop from images resized to X times the size (default 1: whole images)\n"
    "  --damage-frame N[:M]     size dust for a frame of N px (shorter side), or of N to M px drawn per\n"
    "                           sample (default: the rendering the crop is cut from)\n"
    "  --no-augment             no flips, warps, zooms, lighting changes\n"
    "  --overlays DIR           dust overlay images instead of the procedural generator\n"
    "  --split DIR              read (or write) the split CSVs there instead of in RUN\n"
    "  --seed S                 weights, split, crops, damage and order all follow from it (default 0)\n"
    "\n"
    "how to run:\n"
    "  --device cpu|cuda[:N]    (default cpu)\n"
    "  --precision f32|f16|bf16 f16/bf16: mixed precision with f32 master weights (needs --device cuda)\n"
    "  --sync-bn                started by mpirun or srun (data-parallel, docs/distributed.md): BatchNorm\n"
    "                           statistics over every rank's shard of the batch (default: each rank's own)\n"
    "  --workers N              data loader threads (default 2)\n"
    "  --checkpoint-every N     save RUN/last.safetensors every N steps too (default 500; 0: epoch ends only)\n"
    "  --log jsonl|csv          metrics log format (default jsonl)\n"
    "  --log-every N            steps between metrics lines (default 10)\n"
    "  --no-progress            no progress bar or progress lines on stderr\n"
    "  --max-steps N            stop after N steps in all (smoke runs; resume continues the same schedule)\n"
    "  --resume                 continue RUN from last.safetensors (--data, --device, --workers,\n"
    "                           --checkpoint-every, --log-every, --no-progress, --max-steps may change)\n";

std::vector<OptionSpec> specs() {
  return {{"--data"},
          {"--out"},
          {"--preset"},
          {"--task"},
          {"--model"},
          {"--width"},
          {"--loss"},
          {"--vgg-weights"},
          {"--encoder-weights"},
          {"--gated", 0},
          {"--no-gated", 0},
          {"--sizes"},
          {"--batches"},
          {"--epochs-per-size"},
          {"--unfrozen-epochs"},
          {"--epochs"},
          {"--lr"},
          {"--wd"},
          {"--optimizer"},
          {"--schedule"},
          {"--samples-per-image"},
          {"--load-scale"},
          {"--damage-frame"},
          {"--no-augment", 0},
          {"--overlays"},
          {"--split"},
          {"--seed"},
          {"--device"},
          {"--precision"},
          {"--sync-bn", 0},
          {"--workers"},
          {"--checkpoint-every"},
          {"--log"},
          {"--log-every"},
          {"--no-progress", 0},
          {"--max-steps"},
          {"--resume", 0}};
}

// The options that say how a run goes rather than what it trains: the only ones --resume accepts.
const std::set<std::string> kResumeFlags = {"--out",       "--resume",      "--data",
                                            "--device",    "--workers",     "--checkpoint-every",
                                            "--log-every", "--no-progress", "--max-steps"};

std::vector<int64_t> integer_list(const ArgParser& args, const std::string& flag) {
  std::vector<int64_t> out;
  std::stringstream in(args.text(flag));
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(args.integer_value(flag, item, 1));
  if (out.empty()) throw UsageError(flag + " needs a comma-separated list of positive integers");
  return out;
}

double non_negative(const ArgParser& args, const std::string& flag, double fallback) {
  if (!args.has(flag)) return fallback;
  const std::string v = args.text(flag);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(x) || x < 0)
    throw UsageError(flag + " needs a number >= 0, got '" + v + "'");
  return x;
}

std::string choice(const ArgParser& args, const std::string& flag, const std::string& fallback,
                   const std::vector<std::string>& allowed) {
  const std::string v = args.text(flag, fallback);
  for (const std::string& a : allowed)
    if (v == a) return v;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw UsageError(flag + " must be one of " + list + ", got '" + v + "'");
}

void require_folder(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UsageError(what + " '" + path + "' does not exist");
  if (!fs::is_directory(path, ec)) throw UsageError(what + " '" + path + "' is not a folder");
}

// The operational flags, on a fresh or a resumed run.
void apply_run_flags(const ArgParser& args, TrainOptions& o) {
  if (args.has("--data")) o.data_dir = args.required("--data");
  o.device = args.text("--device", o.device);
  try {
    parse_device(o.device);
  } catch (const Error& e) {
    throw UsageError(std::string("--device: ") + e.what());
  }
  o.workers = int(args.integer("--workers", o.workers, 0));
  o.checkpoint_every = args.integer("--checkpoint-every", o.checkpoint_every, 0);
  o.log_every = args.integer("--log-every", o.log_every, 1);
  if (args.has("--no-progress")) o.progress = false;
  o.max_steps = args.integer("--max-steps", 0, 1);
}

std::string default_model(const std::string& task) {
  return task == "negative" ? "cross_channel" : "dynamic_unet";
}
std::string default_loss(const std::string& task) {
  return task == "negative" ? "cross_channel" : "mse";
}

TrainOptions fresh_options(const ArgParser& args, const std::string& out) {
  const std::string preset_name = args.text("--preset", "dissertation");
  Preset p;
  try {
    p = find_preset(preset_name);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  // The task follows from --task, or else from --model; a task the preset does not do brings its own model
  // and loss defaults.
  std::string task = p.model.task;
  if (args.has("--task")) {
    task = choice(args, "--task", "", {"dust", "negative"});
  } else if (args.has("--model")) {
    task = args.text("--model").rfind("cross_channel", 0) == 0 ? "negative" : "dust";
  }
  if (task != p.model.task) {
    p.model.task = task;
    p.model.model = default_model(task);
    p.model.loss = default_loss(task);
  }
  p.model.model = args.text("--model", p.model.model);
  if (args.has("--gated") && args.has("--no-gated")) throw UsageError("give --gated or --no-gated, not both");
  if (args.has("--gated")) {
    p.model.gated = true;
  } else if (args.has("--no-gated") || !models::model_can_be_gated(p.model.model)) {
    // A preset's gate is dropped for a model without one (--preset demo --model tiny_unet); --gated is not.
    p.model.gated = false;
  }
  p.model.width = args.positive_number("--width", p.model.width);
  p.model.loss = args.text("--loss", p.model.loss);
  p.model.vgg_weights = args.text("--vgg-weights", p.model.vgg_weights);
  if (!p.model.vgg_weights.empty() && p.model.vgg_weights != "random")
    require_readable_file(p.model.vgg_weights, "the VGG weights file");
  p.model.encoder_weights = args.text("--encoder-weights", p.model.encoder_weights);
  if (!p.model.encoder_weights.empty()) require_readable_file(p.model.encoder_weights, "the encoder weights file");
  try {
    p.model.validate();
  } catch (const Error& e) {
    throw UsageError(e.what());
  }

  if (args.has("--sizes")) {
    p.sizes = integer_list(args, "--sizes");
    if (!args.has("--batches")) {
      if (p.batches.size() != p.sizes.size()) {
        if (p.batches.size() == 1) {
          p.batches.assign(p.sizes.size(), p.batches[0]);
        } else {
          throw UsageError("--sizes gives " + std::to_string(p.sizes.size()) +
                           " sizes: give --batches with as many "
                           "batch sizes (or one for all)");
        }
      }
    }
  }
  if (args.has("--batches")) {
    p.batches = integer_list(args, "--batches");
    if (p.batches.size() == 1) p.batches.assign(p.sizes.size(), p.batches[0]);
    if (p.batches.size() != p.sizes.size())
      throw UsageError("--batches gives " + std::to_string(p.batches.size()) + " batch sizes for " +
                       std::to_string(p.sizes.size()) + " image sizes; give one per size, or one for all");
  }
  if (args.has("--epochs")) {
    if (args.has("--epochs-per-size") || args.has("--unfrozen-epochs"))
      throw UsageError("--epochs sets every stage; give it alone, or --epochs-per-size and --unfrozen-epochs");
    const int64_t n = args.integer("--epochs", 1, 1);
    p.epochs_per_size = n;
    if (p.unfrozen_epochs > 0) p.unfrozen_epochs = n;
  }
  p.epochs_per_size = args.integer("--epochs-per-size", p.epochs_per_size, 0);
  p.unfrozen_epochs = args.integer("--unfrozen-epochs", p.unfrozen_epochs, 0);
  if (p.epochs_per_size == 0 && p.unfrozen_epochs == 0)
    throw UsageError("--epochs-per-size 0 and --unfrozen-epochs 0 leave nothing to train");
  if (args.has("--lr")) {
    const double ratio = p.unfrozen_lr / p.lr;
    p.lr = args.positive_number("--lr", p.lr);
    p.unfrozen_lr = p.lr * ratio;
  }
  p.weight_decay = non_negative(args, "--wd", p.weight_decay);
  p.optimizer = choice(args, "--optimizer", p.optimizer, {"adamw", "adam"});
  const std::string schedule =
      choice(args, "--schedule", p.schedule == "one_cycle" ? "one-cycle" : "constant", {"one-cycle", "constant"});
  p.schedule = schedule == "one-cycle" ? "one_cycle" : "constant";
  p.samples_per_image = args.integer("--samples-per-image", p.samples_per_image, 1);
  p.load_scale = args.positive_number("--load-scale", p.load_scale);
  if (args.has("--damage-frame"))
    parse_damage_frame(args.text("--damage-frame"), &p.damage_frame_min, &p.damage_frame_max);
  if (args.has("--no-augment")) p.augment = false;

  TrainOptions o;
  o.data_dir = args.required("--data");
  require_folder(o.data_dir, "the data folder");
  o.out_dir = out;
  o.split_dir = args.text("--split");
  if (!o.split_dir.empty()) require_folder(o.split_dir, "the split folder");
  o.preset = p.name;
  o.model = p.model;
  try {
    o.stages = build_stages(p);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  o.optimizer = p.optimizer;
  o.weight_decay = p.weight_decay;
  o.schedule = p.schedule;
  o.augment = p.augment;
  o.samples_per_image = p.samples_per_image;
  o.load_scale = p.load_scale;
  o.damage_frame_min = p.damage_frame_min;
  o.damage_frame_max = p.damage_frame_max;
  o.overlay_dir = args.text("--overlays");
  if (!o.overlay_dir.empty()) require_folder(o.overlay_dir, "the overlay folder");
  o.seed = args.seed("--seed", o.seed);
  o.precision = choice(args, "--precision", o.precision, {"f32", "f16", "bf16"});
  if (args.has("--sync-bn")) o.sync_bn = true;
  o.log_format = choice(args, "--log", o.log_format, {"jsonl", "csv"});
  apply_run_flags(args, o);
  return o;
}

}  // namespace

TrainCommandLine parse_train_command_line(int argc, char** argv) {
  ArgParser args("train", specs());
  args.parse(argc, argv, 2);
  const std::string out = args.required("--out");
  TrainCommandLine c;
  c.resume = args.has("--resume");
  TrainOptions& options = c.options;
  if (c.resume) {
    for (const OptionSpec& s : specs())
      if (args.has(s.flag) && !kResumeFlags.count(s.flag))
        throw UsageError(s.flag + " cannot change when resuming: the run keeps the options stored in " + out +
                         "/last.safetensors");
    // The error_code overload: a path the system refuses (a name too long, say) is a usage error, not a
    // filesystem_error thrown out of the parser (fuzz_cmdline found it).
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(out) / "last.safetensors", ec))
      throw UsageError("nothing to resume: '" + out + "/last.safetensors' " +
                       (ec ? "cannot be read (" + ec.message() + ")" : std::string("does not exist")));
    options = read_run_options(out);
    apply_run_flags(args, options);
    require_folder(options.data_dir, "the data folder");
  } else {
    options = fresh_options(args, out);
  }
  if (options.precision != "f32" && !parse_device(options.device).is_cuda())
    throw UsageError("--precision " + options.precision +
                     " is mixed precision, which needs --device cuda (the CPU kernels compute in f32)");
  return c;
}

namespace {

// Trains and reports on stdout: what a single process, or rank 0 of several, prints (`quiet`: the other ranks).
int train_and_report(Trainer& trainer, const std::string& out, bool quiet) {
  if (!quiet) {
    std::printf("%s\n", trainer.plan().c_str());
    std::fflush(stdout);
  }
  const TrainSummary s = trainer.run();
  if (quiet) return s.interrupted ? 130 : 0;

  const std::string resume_hint = "filmgrad train --out " + out + " --resume";
  if (s.interrupted) {
    std::printf("interrupted after step %lld: saved %s/last.safetensors; continue with: %s\n",
                static_cast<long long>(s.steps), out.c_str(), resume_hint.c_str());
    return 130;
  }
  char best[64] = "none";
  if (std::isfinite(s.best_val_loss)) std::snprintf(best, sizeof best, "%.5g", s.best_val_loss);
  if (s.max_steps_reached) {
    std::printf(
        "stopped after step %lld (--max-steps), %.1f images/s; best validation loss of the stage %s; "
        "weights in %s; continue with: %s\n",
        static_cast<long long>(s.steps), s.images_per_second, best, s.model_path.c_str(), resume_hint.c_str());
    return 0;
  }
  std::printf("done: %lld steps, %lld epochs, %.1f images/s; best validation loss of the last stage %s; model in %s\n",
              static_cast<long long>(s.steps), static_cast<long long>(s.epochs), s.images_per_second, best,
              s.model_path.c_str());
  return 0;
}

// One rank of `mpirun -np N filmgrad train ...`. An error that every rank reaches together (AllRanksError) is
// printed once, by rank 0, and every rank ends normally; any other error is this rank's own: it is printed with
// the rank's number and the whole run is aborted, so no rank is left waiting for it.
int train_distributed(const dist::Launch& launch, TrainOptions options, bool resume) {
  const Device requested = parse_device(options.device);
  // One GPU per rank: on each machine, local rank k uses GPU k.
  const Device device = requested.is_cuda() ? Device::cuda(launch.local_rank) : requested;
  if (requested.is_cuda()) options.device = device.str();
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator(launch, device);
  const int rank = comm->rank();
  try {
    Trainer trainer(options, resume, comm.get());
    return train_and_report(trainer, options.out_dir, rank != 0);
  } catch (const AllRanksError& e) {
    if (rank == 0) std::fprintf(stderr, "filmgrad: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "filmgrad: error: rank %d of %d: %s; ending every rank\n", rank, comm->size(), e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
  return 1;  // not reached: abort() ends the process
}

}  // namespace

int cmd_train(int argc, char** argv) {
  // NoGAN trains a critic beside a finished generator run: its own options and loop (apps/nogan.h).
  for (int i = 2; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--preset" && std::string(argv[i + 1]) == "nogan") return cmd_train_nogan(argc, argv);
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  const TrainCommandLine c = parse_train_command_line(argc, argv);
  install_stop_signal_handlers();
  const dist::Launch launch = dist::detect_launch();
  if (launch.launched) return train_distributed(launch, c.options, c.resume);
  Trainer trainer(c.options, c.resume);
  return train_and_report(trainer, c.options.out_dir, false);
}

}  // namespace fg::apps
