// NoGAN at demo scale (apps/nogan.h, `filmgrad train --preset nogan`): a tiny generator run and a narrow critic on
// 196 px crops run every phase for a few steps; the log shows the phases in order and the switch to the generator
// firing exactly when the critic's loss is below the threshold (or its turn is used up); the frozen phase leaves
// the critic's body alone (but for its BatchNorms); a run stopped and resumed logs the same losses as one never
// stopped; eval shows the GAN run's row beside the generator's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "apps/json.h"
#include "apps/task.h"
#include "data/image_io.h"
#include "models/critic.h"
#include "nn/checkpoint.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;
using fg::Tensor;
using fg::apps::Json;
using fg::test::run_filmgrad;

constexpr double kThreshold = 0.69;  // near ln 2, where an untrained critic's loss starts, so both branches occur
constexpr int kMaxCriticSteps = 3;
constexpr double kUnreachable = 1e-4;  // a critic loss no run here gets below: every turn lasts kMaxCriticSteps

class NoGan : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fg_nogan_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "photos");
    for (int i = 0; i < 10; ++i) {
      Tensor img = Tensor::empty({3, 200, 200});
      float* p = img.data<float>();
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 200; ++y)
          for (int x = 0; x < 200; ++x)
            p[(c * 200 + y) * 200 + x] = float(0.5 + 0.4 * std::sin(0.05 * (c + 1) * x + 0.7 * i + 0.03 * y + c));
      fg::data::write_image((dir_ / "photos" / ("img" + std::to_string(i) + ".png")).string(),
                            fg::data::make_image(img));
    }
    // The generator run: a tiny_unet checkpoint as `filmgrad train` writes model.safetensors.
    fs::create_directories(dir_ / "gen");
    fg::apps::ModelConfig config;
    config.task = "dust";
    config.model = "tiny_unet";
    config.width = 1.0;
    config.loss = "mse";
    fg::Generator gen(3);
    fg::apps::RestorationModel model(config, gen, false);
    fg::nn::CheckpointInfo info;
    info.model = config.model;
    info.config = config.to_json();
    fg::nn::save_checkpoint((dir_ / "gen" / "model.safetensors").string(), model.module(), nullptr, info);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string base_args(const std::string& out, int unfrozen_epochs = 1, int gan_steps = 3, int size = 196,
                        double threshold = kThreshold) const {
    return "train --preset nogan --generator '" + (dir_ / "gen").string() + "' --data '" + (dir_ / "photos").string() +
           "' --out '" + (dir_ / out).string() + "' --size " + std::to_string(size) +
           " --batch 2 --critic-width 0.015625 --critic-frozen-epochs 1 --critic-unfrozen-epochs " +
           std::to_string(unfrozen_epochs) + " --gan-steps " + std::to_string(gan_steps) + " --critic-threshold " +
           fg::apps::json_number(threshold) +
           " --max-critic-steps 3 --critic-lr 1e-3 --gan-lr 1e-3 --workers 0 --no-progress";
  }
  static double max_abs_diff(const Tensor& a, const Tensor& b) {
    const Tensor x = a.contiguous(), y = b.contiguous();
    double m = 0;
    for (int64_t i = 0; i < x.numel(); ++i) m = std::max(m, std::abs(x.data<float>()[i] - double(y.data<float>()[i])));
    return m;
  }

  std::vector<Json> log(const std::string& run) const {
    std::ifstream in(dir_ / run / "metrics.jsonl");
    std::vector<Json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(fg::apps::parse_json(line));
    return lines;
  }
  std::string text(const fs::path& p) const {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  fs::path dir_;
};

// Checks the log of a run with base_args' phases (4 + 4 critic steps, then 3 generator steps) against the switch
// rule; returns how many critic steps fired below the threshold and how many kept the turn.
std::pair<int, int> check_switches(const std::vector<Json>& lines, double threshold) {
  EXPECT_GE(lines.size(), 8u + 3u);
  if (lines.size() < 11) return {0, 0};
  // 10 photos: 8 train images, batch 2 -> 4 batches per epoch.
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(lines[i].find("phase")->text, "critic_frozen") << i;
  for (size_t i = 4; i < 8; ++i) EXPECT_EQ(lines[i].find("phase")->text, "critic_unfrozen") << i;
  int generator_steps = 0, turn = 0, fired_below = 0, stayed = 0;
  for (size_t i = 8; i < lines.size(); ++i) {
    const Json& l = lines[i];
    EXPECT_EQ(l.find("phase")->text, "gan");
    EXPECT_EQ(std::stoll(l.find("step")->text), int64_t(i));
    if (l.find("network")->text == "generator") {
      ++generator_steps;
      // A generator step only right after a critic step whose switch fired.
      EXPECT_EQ(lines[i - 1].find("network")->text, "critic");
      EXPECT_TRUE(lines[i - 1].find("switch") != nullptr && lines[i - 1].find("switch")->boolean) << i;
      EXPECT_TRUE(std::isfinite(std::stod(l.find("generator_adversarial")->text)));
      turn = 0;
      continue;
    }
    ++turn;
    const double loss = std::stod(l.find("critic_loss")->text);
    const bool below = loss < threshold, fired = l.find("switch")->boolean;
    EXPECT_EQ(fired, below || turn == kMaxCriticSteps) << "line " << i << " loss " << loss << " turn " << turn;
    fired_below += below ? 1 : 0;
    stayed += fired ? 0 : 1;
    if (fired && i + 1 < lines.size()) {
      EXPECT_EQ(lines[i + 1].find("network")->text, "generator");
    }
    if (!fired) {
      EXPECT_LT(i + 1, lines.size());  // the phase ends after a generator step, never inside a critic turn
    }
  }
  EXPECT_EQ(generator_steps, 3);
  return {fired_below, stayed};
}

TEST_F(NoGan, EveryPhaseRunsAndTheSwitchFiresBelowTheThreshold) {
  const auto r = run_filmgrad(base_args("gan"));
  ASSERT_EQ(r.status, 0) << r.out;
  const auto [fired_below, stayed] = check_switches(log("gan"), kThreshold);
  // An untrained critic starts near ln 2 = 0.693 and learns within a step or two at lr 1e-3: the switch fires on
  // the threshold here (the other branch is ResumeGivesTheSameLossesAsAnUnbrokenRun's).
  EXPECT_GT(fired_below, 0);
  std::printf("critic steps below the threshold: %d, critic steps that kept the turn: %d\n", fired_below, stayed);
  EXPECT_NE(r.out.find("done:"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "gan" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "gan" / "critic.safetensors"));

  // eval: the GAN run's rows beside the generator's.
  const auto e = run_filmgrad("eval '" + (dir_ / "gen").string() + "' '" + (dir_ / "gan").string() + "' --data '" +
                              (dir_ / "photos").string() + "' --out '" + (dir_ / "eval").string() + "' --workers 0");
  ASSERT_EQ(e.status, 0) << e.out;
  const std::string summary = text(dir_ / "eval" / "summary.csv");
  EXPECT_NE(summary.find("gen"), std::string::npos) << summary;
  EXPECT_NE(summary.find("gan"), std::string::npos) << summary;
}

TEST_F(NoGan, TheFrozenPhaseLeavesTheCriticBodyAlone) {
  const auto r = run_filmgrad(base_args("frozen", 0, 0));
  ASSERT_EQ(r.status, 0) << r.out;
  // The critic as the run initialised it (seed 0, the same derivation as apps/nogan.cpp).
  fg::Generator critic_gen(0 ^ 0x637269746963ULL);
  fg::models::NoGanCritic initial(critic_gen, 0.015625);
  const fg::SafeTensors saved = fg::load_safetensors((dir_ / "frozen" / "critic.safetensors").string());
  int64_t body = 0, head_changed = 0;
  for (const auto& [name, t] : initial.state_dict()) {
    if (t.dtype() != fg::DType::F32) continue;  // num_batches_tracked
    const double err = max_abs_diff(t, saved.get("model." + name));
    const bool batch_norm = name.find("bn") != std::string::npos || name.find("downsample.1") != std::string::npos;
    if (name.rfind("body.", 0) == 0 && !batch_norm) {
      EXPECT_EQ(err, 0.0) << name;  // not trained: the very same values
      ++body;
    } else if (name.rfind("head.", 0) == 0 && name.find("weight_orig") != std::string::npos) {
      head_changed += err > 0 ? 1 : 0;
    }
  }
  EXPECT_GT(body, 0);
  EXPECT_GT(head_changed, 0);  // while the head trained
  // The body's BatchNorm weights stay trainable (fastai's freeze) and moved.
  for (const auto& [name, t] : initial.state_dict())
    if (name == "body.bn1.weight") {
      EXPECT_GT(max_abs_diff(t, saved.get("model." + name)), 0.0);
    }
}

TEST_F(NoGan, ResumeGivesTheSameLossesAsAnUnbrokenRun) {
  ASSERT_EQ(run_filmgrad(base_args("whole", 1, 3, 196, kUnreachable)).status, 0);
  // Every critic turn is used up here: the switch fires on the turn's length alone.
  const auto [fired_below, stayed] = check_switches(log("whole"), kUnreachable);
  EXPECT_EQ(fired_below, 0);
  EXPECT_EQ(stayed, 3 * (kMaxCriticSteps - 1));
  // Stopped inside a critic turn of the alternating phase (steps 8.. are the GAN phase's).
  auto r = run_filmgrad(base_args("parts", 1, 3, 196, kUnreachable) + " --max-steps 10");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("--resume"), std::string::npos) << r.out;
  r = run_filmgrad("train --preset nogan --out '" + (dir_ / "parts").string() + "' --resume --workers 0 --no-progress");
  ASSERT_EQ(r.status, 0) << r.out;
  // Same binary, same thread count: the same floating-point operations in the same order.
  EXPECT_EQ(text(dir_ / "parts" / "metrics.jsonl"), text(dir_ / "whole" / "metrics.jsonl"));
}

TEST_F(NoGan, UserErrorsAreOneLine) {
  auto r = run_filmgrad("train --preset nogan --data '" + (dir_ / "photos").string() + "' --out '" +
                        (dir_ / "x").string() + "'");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--generator"), std::string::npos) << r.out;
  r = run_filmgrad(base_args("small", 1, 3, 128));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("at least 193"), std::string::npos) << r.out;
  r = run_filmgrad(base_args("dev") + " --device cuda:64");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("--device cuda:64"), std::string::npos) << r.out;
  r = run_filmgrad("train --preset nogan --out '" + (dir_ / "none").string() + "' --resume");
  EXPECT_EQ(r.status, 2) << r.out;
  r = run_filmgrad("train --preset nogan --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--critic-threshold"), std::string::npos);
}

}  // namespace
