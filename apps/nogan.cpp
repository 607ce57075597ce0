// NoGAN training (apps/nogan.h).
#include "apps/nogan.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "apps/args.h"
#include "apps/commands.h"
#include "apps/json.h"
#include "apps/progress.h"
#include "apps/task.h"
#include "apps/train.h"
#include "autograd/ops.h"
#include "data/dataset.h"
#include "models/critic.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tensor/safetensors.h"
#ifdef FG_WITH_CUDA
#endif

namespace fg::apps {

namespace fs = std::filesystem;

namespace {

enum Phase : int64_t { CRITIC_FROZEN = 0, CRITIC_UNFROZEN = 1, GAN = 2, DONE = 3 };
const char* phase_name(int64_t p) {
  return p == CRITIC_FROZEN ? "critic_frozen" : p == CRITIC_UNFROZEN ? "critic_unfrozen" : p == GAN ? "gan" : "done";
}

// Both networks under one root, so one checkpoint (and one optimizer) holds the whole run.
class NoGanPair : public nn::Module {
 public:
  NoGanPair(std::shared_ptr<nn::Module> generator, std::shared_ptr<models::NoGanCritic> critic) : Module("NoGan") {
    register_module("generator", std::move(generator));
    register_module("critic", std::move(critic));
  }
  Variable forward(const Variable& x) override { return x; }  // not a network of its own
};

std::string exact(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

// [0, 1] -> [-1, 1], what the critic sees.
Variable critic_input(const Variable& x) {
  return add_scalar(mul_scalar(x, 2.0), -1.0);
}

}  // namespace

std::string NoGanOptions::to_json() const {
  std::ostringstream o;
  o << "{\"data_dir\":" << json_quote(data_dir) << ",\"out_dir\":" << json_quote(out_dir)
    << ",\"generator_run\":" << json_quote(generator_run) << ",\"size\":" << size << ",\"batch\":" << batch
    << ",\"critic_width\":" << json_number(critic_width) << ",\"critic_frozen_epochs\":" << critic_frozen_epochs
    << ",\"critic_unfrozen_epochs\":" << critic_unfrozen_epochs << ",\"critic_lr\":" << json_number(critic_lr)
    << ",\"gan_generator_steps\":" << gan_generator_steps << ",\"max_critic_steps\":" << max_critic_steps
    << ",\"critic_threshold\":" << json_number(critic_threshold) << ",\"w0\":" << json_number(w0)
    << ",\"w1\":" << json_number(w1) << ",\"gan_lr\":" << json_number(gan_lr) << ",\"seed\":" << seed << "}";
  return o.str();
}

NoGanOptions NoGanOptions::from_json(const std::string& text) {
  const Json j = parse_json(text);
  NoGanOptions o;
  const auto str = [&](const char* k, std::string& v) {
    if (const Json* f = j.find(k)) v = f->text;
  };
  const auto num = [&](const char* k, double& v) {
    if (const Json* f = j.find(k)) v = std::stod(f->text);
  };
  const auto integer = [&](const char* k, int64_t& v) {
    if (const Json* f = j.find(k)) v = std::stoll(f->text);
  };
  str("data_dir", o.data_dir);
  str("out_dir", o.out_dir);
  str("generator_run", o.generator_run);
  integer("size", o.size);
  integer("batch", o.batch);
  num("critic_width", o.critic_width);
  integer("critic_frozen_epochs", o.critic_frozen_epochs);
  integer("critic_unfrozen_epochs", o.critic_unfrozen_epochs);
  num("critic_lr", o.critic_lr);
  integer("gan_generator_steps", o.gan_generator_steps);
  integer("max_critic_steps", o.max_critic_steps);
  num("critic_threshold", o.critic_threshold);
  num("w0", o.w0);
  num("w1", o.w1);
  num("gan_lr", o.gan_lr);
  if (const Json* f = j.find("seed")) o.seed = std::stoull(f->text);
  return o;
}

namespace {

struct NoGanRun {
  NoGanOptions opt;
  bool resume;
  std::unique_ptr<RestorationModel> model;
  std::shared_ptr<models::NoGanCritic> critic;
  std::shared_ptr<NoGanPair> pair;
  std::unique_ptr<nn::Adam> optimizer;
  ModelConfig config;
  data::Split split;
  std::unique_ptr<data::RestorationDataset> dataset;
  std::unique_ptr<data::DataLoader> loader;
  int64_t steps_per_epoch = 0;
  Device device;

  // Position: the next step is `step` (all steps), in `phase`; pretraining counts epochs_in_phase and the batch;
  // the data run on through the phases (data_epoch, batch_in_epoch).
  int64_t step = 0, phase = CRITIC_FROZEN, epoch_in_phase = 0, batch_in_phase_epoch = 0;
  int64_t data_epoch = 0, batch_in_epoch = 0;
  int64_t generator_steps = 0, critic_steps = 0, critic_turn = 0;  // critic_turn: critic steps since the switch
  bool generator_next = false;                                     // GAN: the switch fired, a generator step is due
  std::ofstream log;

  std::string path(const std::string& name) const { return (fs::path(opt.out_dir) / name).string(); }

  void setup() {
    FG_CHECK(opt.size >= 193, "--size " << opt.size << ": the critic needs crops of at least 193 px");
    FG_CHECK(opt.critic_threshold > 0, "--critic-threshold must be positive");
    const std::string gen_model = (fs::path(opt.generator_run) / "model.safetensors").string();
    FG_CHECK(fs::exists(gen_model), "--generator '" << opt.generator_run
                                                    << "' has no model.safetensors; pass a finished "
                                                    << "'filmgrad train' run");
    std::error_code ec;
    fs::create_directories(opt.out_dir, ec);
    FG_CHECK(!ec && ::access(opt.out_dir.c_str(), W_OK) == 0, "cannot write in the run folder '" << opt.out_dir << "'");
    if (resume)
      FG_CHECK(fs::exists(path("last.safetensors")),
               "nothing to resume: '" << path("last.safetensors") << "' does not exist");
    else
      FG_CHECK(!fs::exists(path("last.safetensors")),
               "'" << opt.out_dir << "' already holds a run (last.safetensors): continue it with --resume, or choose "
                   << "another --out");

    const nn::CheckpointInfo gi = nn::read_checkpoint_info(gen_model);
    config = ModelConfig::from_json(gi.config);
    FG_CHECK(config.task == "dust",
             "NoGAN trains dust-removal generators; '" << gen_model << "' is a " << config.task << " model");
    ModelConfig build = config;
    build.encoder_weights.clear();  // the weights come from the checkpoint
    Generator gen(opt.seed);
    model = std::make_unique<RestorationModel>(build, gen);
    nn::load_checkpoint(gen_model, model->module(), nullptr, config.model);
    FG_CHECK(opt.size % model->size_multiple() == 0,
             "--size " << opt.size << ": " << config.model << " needs multiples of " << model->size_multiple());
    Generator critic_gen(opt.seed ^ 0x637269746963ULL);
    critic = std::make_shared<models::NoGanCritic>(critic_gen, opt.critic_width);
    pair = std::make_shared<NoGanPair>(model->module_ptr(), critic);
    device = usable_device(opt.device);
    model->to(device);
    critic->to(device);

    // One Adam over both networks in two groups (generator, critic), built over every parameter so a checkpoint's
    // state always fits; a step moves only parameters with gradients.
    nn::AdamWOptions ao;
    ao.lr = opt.gan_lr;
    ao.weight_decay = 1e-3;
    optimizer = std::make_unique<nn::AdamW>(model->module().parameters(), ao);
    optimizer->add_param_group(critic->parameters(), opt.critic_lr);
    for (auto& g : optimizer->param_groups()) {
      g.momentum = 0.0;  // beta1 (DeOldify's GAN optimiser: Adam with betas (0, 0.99))
      g.beta2 = 0.99;
    }

    // The generator run's split, so its test images stay unseen.
    split = data::load_or_create_split(opt.data_dir, opt.generator_run, opt.seed);
    for (const char* f : {"train.csv", "validation.csv", "test.csv"}) {
      std::ifstream in(fs::path(opt.generator_run) / f);
      std::stringstream ss;
      ss << in.rdbuf();
      write_file_atomic(path(f), ss.str());
    }
    data::DatasetOptions d;
    d.task = model->task();
    d.size = opt.size;
    d.seed = opt.seed;
    d.augment = false;
    d.train = true;
    dataset = std::make_unique<data::RestorationDataset>(split.root, split.train, d);
    data::LoaderOptions lo;
    lo.batch_size = opt.batch;
    lo.shuffle = true;
    lo.drop_last = true;
    lo.workers = opt.workers;
    lo.seed = opt.seed;
    lo.pin_memory = device.is_cuda();
    loader = std::make_unique<data::DataLoader>(*dataset, lo);
    steps_per_epoch = loader->batches_per_epoch();
    FG_CHECK(steps_per_epoch >= 1,
             "the training split has " << split.train.size() << " images, fewer than --batch " << opt.batch);

    if (resume) {
      const nn::CheckpointInfo info = nn::load_checkpoint(path("last.safetensors"), *pair, optimizer.get(), "nogan");
      const auto get = [&](const char* k) {
        const auto it = info.extra.find(k);
        FG_CHECK(it != info.extra.end(),
                 "'" << path("last.safetensors") << "' lacks '" << k << "'; it cannot be resumed");
        return std::stoll(it->second);
      };
      step = info.step;
      phase = get("nogan_phase");
      epoch_in_phase = get("nogan_epoch_in_phase");
      batch_in_phase_epoch = get("nogan_batch_in_phase_epoch");
      data_epoch = get("nogan_data_epoch");
      batch_in_epoch = get("nogan_batch_in_epoch");
      generator_steps = get("nogan_generator_steps");
      critic_steps = get("nogan_critic_steps");
      critic_turn = get("nogan_critic_turn");
      generator_next = get("nogan_generator_next") != 0;
    }
    loader->start_epoch(data_epoch, batch_in_epoch);
    if (resume) {
      // Lines of steps after the checkpoint (a run killed between checkpoints) are dropped, so no step is logged
      // twice.
      std::ifstream in(path("metrics.jsonl"));
      std::string kept;
      for (std::string line; std::getline(in, line);) {
        const Json* s = nullptr;
        Json j;
        try {
          j = parse_json(line);
          s = j.find("step");
        } catch (const Error&) {
          continue;  // a line cut short by the kill
        }
        if (s != nullptr && std::stoll(s->text) < step) kept += line + "\n";
      }
      write_file_atomic(path("metrics.jsonl"), kept);
    }
    log.open(path("metrics.jsonl"), resume ? std::ios::app : std::ios::trunc);
    FG_CHECK(log.good(), "cannot write '" << path("metrics.jsonl") << "'");
  }

  void save_last() {
    nn::CheckpointInfo info;
    info.model = "nogan";
    info.config = config.to_json();
    info.step = step;
    info.extra["filmgrad_version"] = kFilmgradVersion;
    info.extra["nogan_options"] = opt.to_json();
    info.extra["nogan_phase"] = std::to_string(phase);
    info.extra["nogan_epoch_in_phase"] = std::to_string(epoch_in_phase);
    info.extra["nogan_batch_in_phase_epoch"] = std::to_string(batch_in_phase_epoch);
    info.extra["nogan_data_epoch"] = std::to_string(data_epoch);
    info.extra["nogan_batch_in_epoch"] = std::to_string(batch_in_epoch);
    info.extra["nogan_generator_steps"] = std::to_string(generator_steps);
    info.extra["nogan_critic_steps"] = std::to_string(critic_steps);
    info.extra["nogan_critic_turn"] = std::to_string(critic_turn);
    info.extra["nogan_generator_next"] = generator_next ? "1" : "0";
    nn::save_checkpoint(path("last.safetensors"), *pair, optimizer.get(), info);
  }

  data::Batch next_batch() {
    std::optional<data::Batch> b = loader->next();
    if (!b) {
      ++data_epoch;
      batch_in_epoch = 0;
      loader->start_epoch(data_epoch, 0);
      b = loader->next();
    }
    FG_ASSERT(b.has_value(), "an epoch without batches");
    ++batch_in_epoch;
    if (batch_in_epoch == steps_per_epoch) {  // the epoch is used up: the next call starts the next one
      ++data_epoch;
      batch_in_epoch = 0;
      loader->start_epoch(data_epoch, 0);
    }
    return *b;
  }

  // The critic's dropout drawn from (seed, step), so a resumed run draws what an unbroken one does.
  void reseed_dropout() {
    for (size_t i : {size_t(0), size_t(2), size_t(4)})
      critic->head()->at<nn::Dropout2d>(i)->generator() = Generator(opt.seed * 7919u + uint64_t(step) * 31u + i);
  }

  double critic_step(const data::Batch& batch) {
    Tensor fake;
    {
      NoGradGuard no_grad;
      model->module().eval();  // the generator only generates here: its BatchNorms keep their statistics
      fake = model->predict(Variable(batch.input.to(device))).data();
    }
    critic->train();
    reseed_dropout();
    const Variable real_logits = (*critic)(critic_input(Variable(batch.target.to(device))));
    const Variable fake_logits = (*critic)(critic_input(Variable(fake)));
    const Variable loss = mul_scalar(
        add(bce_with_logits(real_logits, Variable(Tensor::full(real_logits.shape(), 1.0, DType::F32, device))),
            bce_with_logits(fake_logits, Variable(Tensor::full(fake_logits.shape(), 0.0, DType::F32, device)))),
        0.5);
    const double value = loss.item();
    FG_CHECK(std::isfinite(value),
             "the critic's loss is not finite at step " << step + 1 << "; try a lower --critic-lr");
    loss.backward();
    optimizer->step();
    optimizer->zero_grad();
    return value;
  }

  std::map<std::string, double> generator_step(const data::Batch& batch) {
    model->module().train();
    critic->train();
    reseed_dropout();
    const LossValue own = model->loss(batch);
    const Variable fake_logits = (*critic)(critic_input(own.prediction));
    const Variable adv =
        bce_with_logits(fake_logits, Variable(Tensor::full(fake_logits.shape(), 1.0, DType::F32, device)));
    const Variable total = add(mul_scalar(adv, opt.w0), mul_scalar(own.total, opt.w1));
    const double value = total.item();
    FG_CHECK(std::isfinite(value),
             "the generator's loss is not finite at step " << step + 1 << "; try a lower --gan-lr");
    total.backward();
    for (const Variable& p : critic->parameters()) p.zero_grad();  // this step moves the generator only
    optimizer->step();
    optimizer->zero_grad();
    std::map<std::string, double> terms;
    terms["adversarial"] = adv.item();
    terms["own"] = own.total.item();
    terms["total"] = value;
    return terms;
  }

  void write_log(const std::string& net, double critic_loss, const std::map<std::string, double>& gen_terms,
                 bool switched) {
    std::string line = "{\"step\":" + std::to_string(step) + ",\"phase\":" + json_quote(phase_name(phase)) +
                       ",\"network\":" + json_quote(net);
    if (net == "critic") line += ",\"critic_loss\":" + json_number(critic_loss);
    for (const auto& [k, v] : gen_terms) line += ",\"generator_" + k + "\":" + json_number(v);
    if (phase == GAN && net == "critic") line += std::string(",\"switch\":") + (switched ? "true" : "false");
    log << line << "}\n";
    log.flush();
  }

  NoGanSummary run() {
    NoGanSummary summary;
    Progress progress(Progress::detect(opt.progress));
    const auto set_phase_trainable = [&] {
      // The critic's body frozen in the first phase except its BatchNorms (bn*, downsample.1), as fastai's freeze()
      // leaves them, and as the generator's encoder is frozen (apps/presets.h).
      critic->unfreeze();
      if (phase != CRITIC_FROZEN) return;
      for (const auto& [name, p] : critic->body()->named_parameters())
        if (name.find("bn") == std::string::npos && name.find("downsample.1") == std::string::npos)
          p.set_requires_grad(false);
    };
    int64_t last_saved = resume ? step : -1;
    while (phase != DONE) {
      if (phase == CRITIC_FROZEN && opt.critic_frozen_epochs == 0) phase = CRITIC_UNFROZEN;
      if (phase == CRITIC_UNFROZEN && opt.critic_unfrozen_epochs == 0) phase = GAN;
      if (phase == GAN && generator_steps >= opt.gan_generator_steps) {
        phase = DONE;
        break;
      }
      if (stop_requested() || (opt.max_steps > 0 && step >= opt.max_steps)) {
        summary.interrupted = stop_requested();
        summary.max_steps_reached = !summary.interrupted;
        break;
      }
      set_phase_trainable();
      const data::Batch batch = next_batch();
      if (phase == CRITIC_FROZEN || phase == CRITIC_UNFROZEN) {
        const double loss = critic_step(batch);
        ++critic_steps;
        write_log("critic", loss, {}, false);
        ++step;
        const int64_t epochs = phase == CRITIC_FROZEN ? opt.critic_frozen_epochs : opt.critic_unfrozen_epochs;
        progress.update(std::string(phase_name(phase)) + " epoch " + std::to_string(epoch_in_phase + 1) + "/" +
                            std::to_string(epochs),
                        batch_in_phase_epoch + 1, steps_per_epoch, loss, 0.0, -1.0);
        if (++batch_in_phase_epoch == steps_per_epoch) {
          batch_in_phase_epoch = 0;
          if (++epoch_in_phase == epochs) {
            progress.print(stdout, std::string(phase_name(phase)) + ": " + std::to_string(epochs) +
                                       " epoch(s) done, critic loss " + exact(loss));
            epoch_in_phase = 0;
            phase = phase == CRITIC_FROZEN ? CRITIC_UNFROZEN : GAN;
            save_last();
            last_saved = step;
          }
        }
      } else if (!generator_next) {
        const double loss = critic_step(batch);
        ++critic_steps;
        ++critic_turn;
        // fastai's AdaptiveGANSwitcher: to the generator once the critic is below the threshold; a turn that
        // reaches max_critic_steps switches too (logged as such).
        generator_next = loss < opt.critic_threshold || critic_turn >= opt.max_critic_steps;
        write_log("critic", loss, {}, generator_next);
        ++step;
        progress.update(
            "gan generator step " + std::to_string(generator_steps + 1) + "/" + std::to_string(opt.gan_generator_steps),
            generator_steps, opt.gan_generator_steps, loss, 0.0, -1.0);
      } else {
        const std::map<std::string, double> terms = generator_step(batch);
        ++generator_steps;
        generator_next = false;
        critic_turn = 0;
        write_log("generator", 0.0, terms, false);
        ++step;
        progress.update(
            "gan generator step " + std::to_string(generator_steps) + "/" + std::to_string(opt.gan_generator_steps),
            generator_steps, opt.gan_generator_steps, terms.at("total"), 0.0, -1.0);
      }
      if (opt.checkpoint_every > 0 && step % opt.checkpoint_every == 0 && last_saved != step) {
        save_last();
        last_saved = step;
      }
    }
    progress.clear();
    if (last_saved != step) save_last();
    summary.steps = step;
    summary.critic_steps = critic_steps;
    summary.generator_steps = generator_steps;
    if (phase == DONE) {
      summary.finished = true;
      nn::CheckpointInfo info;
      info.model = config.model;
      info.config = config.to_json();
      info.step = step;
      info.extra["filmgrad_version"] = kFilmgradVersion;
      info.extra["nogan_generator_run"] = opt.generator_run;
      info.extra["size"] = std::to_string(opt.size);  // eval's default size (apps/evaluate.h)
      nn::save_checkpoint(path("model.safetensors"), model->module(), nullptr, info);
      nn::CheckpointInfo ci;
      ci.model = "critic";
      ci.step = step;
      ci.extra["filmgrad_version"] = kFilmgradVersion;
      ci.extra["critic_width"] = exact(opt.critic_width);
      nn::save_checkpoint(path("critic.safetensors"), *critic, nullptr, ci);
      summary.model_path = path("model.safetensors");
    }
    return summary;
  }
};

constexpr const char* kHelp =
    "usage: filmgrad train --preset nogan --generator GEN --data DIR --out RUN [options]\n"
    "       filmgrad train --preset nogan --out RUN --resume\n"
    "\n"
    "NoGAN (SPEC B; DeOldify's schedule): starting from the trained generator of run GEN, pretrain the\n"
    "critic on real against generated images (its ResNet34 body frozen, then unfrozen), then alternate:\n"
    "the critic trains until its loss is below the threshold, then one generator step on\n"
    "w0 * BCE(critic(fake), real) + w1 * the generator's own loss. Writes RUN/last.safetensors (resume),\n"
    "RUN/metrics.jsonl, and at the end RUN/model.safetensors (the generator; 'filmgrad eval GEN RUN' shows\n"
    "both) and RUN/critic.safetensors. docs/training.md, \"NoGAN\", has the details.\n"
    "\n"
    "options:\n"
    "  --generator GEN            the generator's run folder (its model.safetensors and split)\n"
    "  --data DIR                 the folder of clean photos GEN was trained on\n"
    "  --out RUN                  the NoGAN run folder\n"
    "  --size S                   crop size (default 256; at least 193 for the critic)\n"
    "  --batch N                  batch size (default 8)\n"
    "  --critic-width W           the critic's channel multiplier (default 1)\n"
    "  --critic-frozen-epochs N   critic pretraining with its body frozen (default 30)\n"
    "  --critic-unfrozen-epochs N then with everything trainable (default 10)\n"
    "  --critic-lr X              the critic's learning rate (default 2e-5)\n"
    "  --gan-steps N              generator steps of the alternating phase (default 100)\n"
    "  --critic-threshold X       the critic's loss below which the generator steps (default 0.65)\n"
    "  --max-critic-steps N       critic steps per turn at most (default 1000)\n"
    "  --gan-weights W0 W1        the generator's loss: W0 * adversarial + W1 * its own (default 1 1)\n"
    "  --gan-lr X                 the generator's learning rate in the alternating phase (default 1e-5)\n"
    "  --seed S                   the critic's initialisation, the data order and the damage (default 0)\n"
    "  --device D                 cpu (default), cuda or cuda:N (f32)\n"
    "  --workers N                loader threads (default 2)\n"
    "  --checkpoint-every N       steps between checkpoints (default 100)\n"
    "  --max-steps N              stop (resumably) after N steps in all\n"
    "  --no-progress              no progress bar\n"
    "  --resume                   continue RUN (only --out, --device, --workers, --checkpoint-every,\n"
    "                             --max-steps, --no-progress may be given)\n";

}  // namespace

NoGanSummary run_nogan(const NoGanOptions& options, bool resume) {
  NoGanRun r;
  r.opt = options;
  r.resume = resume;
  r.setup();
  std::printf("nogan: generator %s (%s), critic width %g, %lld training images, %lld batches per epoch; phase %s\n",
              options.generator_run.c_str(), r.config.model.c_str(), options.critic_width,
              static_cast<long long>(r.split.train.size()), static_cast<long long>(r.steps_per_epoch),
              phase_name(r.phase));
  std::fflush(stdout);
  return r.run();
}

int cmd_train_nogan(int argc, char** argv) {
  if (ArgParser::wants_help(argc, argv, 2)) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  ArgParser args("train", {{"--preset"},
                           {"--generator"},
                           {"--data"},
                           {"--out"},
                           {"--size"},
                           {"--batch"},
                           {"--critic-width"},
                           {"--critic-frozen-epochs"},
                           {"--critic-unfrozen-epochs"},
                           {"--critic-lr"},
                           {"--gan-steps"},
                           {"--critic-threshold"},
                           {"--max-critic-steps"},
                           {"--gan-weights", 2},
                           {"--gan-lr"},
                           {"--seed"},
                           {"--workers"},
                           {"--checkpoint-every"},
                           {"--max-steps"},
                           {"--no-progress", 0},
                           {"--resume", 0},
                           {"--device"}});
  args.parse(argc, argv, 2);
  const std::string out = args.required("--out");
  const bool resume = args.has("--resume");
  NoGanOptions o;
  if (resume) {
    for (const char* f : {"--generator", "--data", "--size", "--batch", "--critic-width", "--critic-frozen-epochs",
                          "--critic-unfrozen-epochs", "--critic-lr", "--gan-steps", "--critic-threshold",
                          "--max-critic-steps", "--gan-weights", "--gan-lr", "--seed"})
      if (args.has(f))
        throw UsageError(std::string(f) + " cannot change when resuming: the run keeps the options stored in " + out +
                         "/last.safetensors");
    const std::string last = (fs::path(out) / "last.safetensors").string();
    require_readable_file(last, "the run to resume");
    const nn::CheckpointInfo info = nn::read_checkpoint_info(last);
    const auto it = info.extra.find("nogan_options");
    if (it == info.extra.end()) throw UsageError("'" + last + "' is not a NoGAN run");
    o = NoGanOptions::from_json(it->second);
  } else {
    o.generator_run = args.required("--generator");
    o.data_dir = args.required("--data");
    o.size = args.integer("--size", o.size, 1);
    o.batch = args.integer("--batch", o.batch, 1);
    o.critic_width = args.positive_number("--critic-width", o.critic_width);
    o.critic_frozen_epochs = args.integer("--critic-frozen-epochs", o.critic_frozen_epochs, 0);
    o.critic_unfrozen_epochs = args.integer("--critic-unfrozen-epochs", o.critic_unfrozen_epochs, 0);
    o.critic_lr = args.positive_number("--critic-lr", o.critic_lr);
    o.gan_generator_steps = args.integer("--gan-steps", o.gan_generator_steps, 0);
    o.critic_threshold = args.positive_number("--critic-threshold", o.critic_threshold);
    o.max_critic_steps = args.integer("--max-critic-steps", o.max_critic_steps, 1);
    if (args.has("--gan-weights")) {
      const auto& w = args.values("--gan-weights");
      try {
        o.w0 = std::stod(w[0]);
        o.w1 = std::stod(w[1]);
      } catch (const std::exception&) {
        throw UsageError("--gan-weights takes two numbers, got '" + w[0] + "' '" + w[1] + "'");
      }
      if (!(o.w0 >= 0 && o.w1 >= 0)) throw UsageError("--gan-weights must not be negative");
    }
    o.gan_lr = args.positive_number("--gan-lr", o.gan_lr);
    o.seed = args.seed("--seed", o.seed);
    if (!fs::is_directory(o.data_dir)) throw UsageError("the data folder '" + o.data_dir + "' does not exist");
    if (!fs::is_directory(o.generator_run))
      throw UsageError("--generator '" + o.generator_run + "' is not a run folder");
  }
  o.out_dir = out;
  o.device = args.text("--device", "cpu");
  o.workers = int(args.integer("--workers", o.workers, 0));
  o.checkpoint_every = args.integer("--checkpoint-every", o.checkpoint_every, 0);
  o.max_steps = args.integer("--max-steps", 0, 0);
  o.progress = !args.has("--no-progress");

  install_stop_signal_handlers();
  const NoGanSummary s = run_nogan(o, resume);
  const std::string hint = "filmgrad train --preset nogan --out " + out + " --resume";
  if (s.interrupted) {
    std::printf("interrupted after step %lld: saved %s/last.safetensors; continue with: %s\n",
                static_cast<long long>(s.steps), out.c_str(), hint.c_str());
    return 130;
  }
  if (!s.finished) {
    std::printf("stopped after step %lld (--max-steps): %lld critic and %lld generator steps; continue with: %s\n",
                static_cast<long long>(s.steps), static_cast<long long>(s.critic_steps),
                static_cast<long long>(s.generator_steps), hint.c_str());
    return 0;
  }
  std::printf("done: %lld steps (%lld critic, %lld generator); generator in %s\n", static_cast<long long>(s.steps),
              static_cast<long long>(s.critic_steps), static_cast<long long>(s.generator_steps), s.model_path.c_str());
  return 0;
}

}  // namespace fg::apps
