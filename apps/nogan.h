// NoGAN training (SPEC B, "NoGAN"; DeOldify's schedule, the dissertation's appendix E): `filmgrad train --preset nogan
// --generator GEN --data DIR --out RUN` takes a trained generator run and
//   1. pretrains the critic (models/critic.h) on real (clean) against generated images, the generator fixed:
//      critic_frozen_epochs with its ResNet34 body frozen (but for its BatchNorms), then critic_unfrozen_epochs with
//      everything trainable, both at critic_lr (2e-5);
//   2. alternates (fastai's AdaptiveGANSwitcher): the critic trains, one batch per step, until its loss is below
//      critic_threshold (0.65); then one generator step on loss = w0 * BCE(D(G(x)), real) + w1 * the generator's
//      own loss (its run's loss: MSE, the perceptual losses, ...); then the critic again. The phase ends after
//      gan_generator_steps generator steps. max_critic_steps bounds a critic turn (then the generator steps
//      anyway, and the log says so), so a critic that cannot get below the threshold cannot stall the run.
// Critic loss (fastai v1's gan_loss_from_func): (BCE(D(real), 1) + BCE(D(fake), 0)) / 2 over the patch logits.
// The critic sees images mapped from [0, 1] to [-1, 1] (x * 2 - 1).
// Optimiser: one Adam (betas 0 and 0.99, DeOldify's GAN setting; weight decay 1e-3 decoupled) over both networks in
// two groups (generator at gan_lr, critic at critic_lr): a step updates only the parameters that have gradients,
// and the critic's are dropped before a generator step, so each step moves one network.
//
// The run folder RUN holds last.safetensors (both networks as "generator.*" and "critic.*", the optimizer, the
// position, these options: what --resume needs; written every checkpoint_every steps, at each phase's end and
// when stopped), metrics.jsonl (one line per step: phase, which network stepped, the critic's loss, the
// generator's terms, whether the switch fired), model.safetensors (the generator at the end, with the generator
// run's config, so `filmgrad eval GEN RUN` shows the GAN stage's rows next to the generator's) and critic.safetensors
// (the critic at the end), plus the split CSVs (the generator run's, so the test images stay unseen).
// Resume is exact: the loader skips what the epoch used, and the critic's dropout is reseeded from (seed, step).
#pragma once
#include <cstdint>
#include <string>

namespace fg::apps {

struct NoGanOptions {
  std::string data_dir, out_dir;
  std::string generator_run;  // a finished `filmgrad train` run (its model.safetensors and split)
  int64_t size = 256;         // crops (the critic needs at least 193; the generator's size multiple applies)
  int64_t batch = 8;
  double critic_width = 1.0;
  int64_t critic_frozen_epochs = 30, critic_unfrozen_epochs = 10;
  double critic_lr = 2e-5;
  int64_t gan_generator_steps = 100;
  int64_t max_critic_steps = 1000;
  double critic_threshold = 0.65;
  double w0 = 1.0, w1 = 1.0;
  double gan_lr = 1e-5;
  uint64_t seed = 0;
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N" (f32 on either; may change when resuming)
  int workers = 2;
  int64_t checkpoint_every = 100;
  int64_t max_steps = 0;  // stop (resumably) once this many steps are done in all (0: no limit)
  bool progress = true;

  std::string to_json() const;
  static NoGanOptions from_json(const std::string& json);
};

struct NoGanSummary {
  int64_t steps = 0, critic_steps = 0, generator_steps = 0;
  bool finished = false, interrupted = false, max_steps_reached = false;
  std::string model_path;
};

// `filmgrad train --preset nogan ...` (argv as cmd_train gets it).
int cmd_train_nogan(int argc, char** argv);

// Runs (or, with resume, continues) a NoGAN run; progress on stderr, a line per phase on stdout.
NoGanSummary run_nogan(const NoGanOptions& options, bool resume);

}  // namespace fg::apps
