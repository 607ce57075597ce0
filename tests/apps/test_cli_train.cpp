// `filmgrad train` as a user runs it, on twelve small smooth images the test writes: the run folder it leaves
// (split CSVs, checkpoints, metrics log, sample grids), exact resume (a run stopped mid-epoch and across a stage
// boundary, then resumed, logs the same per-step losses and ends with the same weights as a run never stopped),
// the cross-channel preset with a CSV log, the Dynamic U-Net's frozen and unfrozen stages, Ctrl-C, and one-line
// errors for bad input. Every run uses one OpenMP thread so that results are bit-reproducible.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/image_io.h"
#include "nn/checkpoint.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace fs = std::filesystem;

namespace fg {
namespace {

class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("OMP_NUM_THREADS", "1", 1);
    root_ = fs::temp_directory_path() / ("fg_cli_train_" + std::to_string(getpid()));
    fs::create_directories(root_ / "photos");
    test::write_wave_photos((root_ / "photos").string());
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static std::string photos() { return (root_ / "photos").string(); }
  static std::string run_dir(const std::string& name) { return (root_ / name).string(); }

  static fs::path root_;
};

fs::path TrainCli::root_;

// The tiny_unet dust run most tests use: 10 training images, batch 4 -> 2 steps per epoch; the dissertation
// preset's two stages (resizing, then unfrozen) of one epoch each -> 4 steps.
const std::string kTiny = " --model tiny_unet --sizes 32 --batches 4 --epochs 1 --log-every 1 --no-progress";

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

// The text of a JSON field's value in a metrics line ("0.123", "true", "null").
std::string field(const std::string& line, const std::string& name) {
  const std::string key = "\"" + name + "\":";
  const size_t at = line.find(key);
  if (at == std::string::npos) return "<missing>";
  const size_t start = at + key.size();
  const size_t end = line.find_first_of(",}", start);
  return line.substr(start, end - start);
}

// Each step line's (step, loss) and each epoch line's (epoch, training and validation loss), as text: compared
// exactly.
std::vector<std::string> losses(const std::string& run) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(run + "/metrics.jsonl")) {
    if (field(l, "kind") == "\"step\"") out.push_back("step " + field(l, "step") + " " + field(l, "loss"));
    if (field(l, "kind") == "\"epoch\"")
      out.push_back("epoch " + field(l, "epoch") + " " + field(l, "train_loss") + " " + field(l, "val_loss"));
  }
  return out;
}

std::string last_line(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

TEST_F(TrainCli, WritesTheWholeRunFolder) {
  const std::string run = run_dir("full");
  const test::CommandResult r = test::run_filmgrad("train --data " + photos() + " --out " + run + kTiny);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("stage"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("17,547 / 0"), std::string::npos) << r.out;  // the plan: trainable / frozen
  for (const char* f : {"train.csv", "validation.csv", "test.csv", "last.safetensors", "best.safetensors",
                        "model.safetensors", "metrics.jsonl", "samples/epoch_001.png", "samples/epoch_002.png"})
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  EXPECT_EQ(lines_of(run + "/train.csv").size(), 11u);  // header + 10
  EXPECT_EQ(lines_of(run + "/validation.csv").size(), 2u);
  EXPECT_EQ(lines_of(run + "/test.csv").size(), 2u);

  const nn::CheckpointInfo model = nn::read_checkpoint_info(run + "/model.safetensors");
  EXPECT_EQ(model.model, "tiny_unet");
  EXPECT_NE(model.config.find("\"tiny_unet\""), std::string::npos);
  EXPECT_EQ(model.step, 4);
  const nn::CheckpointInfo last = nn::read_checkpoint_info(run + "/last.safetensors");
  EXPECT_EQ(last.optimizer, "AdamW");
  EXPECT_EQ(last.epoch, 2);
  EXPECT_TRUE(last.extra.count("train_options"));
  EXPECT_TRUE(last.extra.count("loss_scale_scale"));

  const std::vector<std::string> lines = lines_of(run + "/metrics.jsonl");
  int steps = 0, epochs = 0;
  for (const std::string& l : lines) {
    steps += field(l, "kind") == "\"step\"";
    epochs += field(l, "kind") == "\"epoch\"";
    if (field(l, "kind") == "\"epoch\"") {
      EXPECT_GT(std::stod(field(l, "val_mse")), 0.0) << l;
      const double ssim = std::stod(field(l, "val_ssim"));
      EXPECT_TRUE(ssim > -1.0 && ssim <= 1.0) << l;
    }
  }
  EXPECT_EQ(steps, 4);
  EXPECT_EQ(epochs, 2);
  // The grid: one validation image per row, input | prediction | target with 2 px gaps.
  const data::ImageInfo grid = data::read_image_info(run + "/samples/epoch_002.png");
  EXPECT_EQ(grid.width, 3 * 32 + 2 * 2);
  EXPECT_EQ(grid.height, 32);
  // A second start into the same folder would overwrite the run: refused.
  const test::CommandResult again = test::run_filmgrad("train --data " + photos() + " --out " + run + kTiny);
  EXPECT_EQ(again.status, 1) << again.out;
  EXPECT_EQ(test::count_lines(again.out), 1) << again.out;
  EXPECT_NE(again.out.find("--resume"), std::string::npos) << again.out;
}

// Run A straight through; run B stopped mid-epoch (step 3), then resumed and stopped mid-way through the second
// stage (step 5, just after a stage boundary), then resumed to the end. Same losses, same final weights.
TEST_F(TrainCli, ResumeGivesExactlyTheSameRun) {
  const std::string a = run_dir("resume_a"), b = run_dir("resume_b");
  const std::string common = " --data " + photos() +
                             " --model tiny_unet --sizes 32 --batches 4 --epochs-per-size 2 --unfrozen-epochs 1 "
                             "--log-every 1 --no-progress";
  const test::CommandResult ra = test::run_filmgrad("train --out " + a + common);
  ASSERT_EQ(ra.status, 0) << ra.out;
  const test::CommandResult rb1 = test::run_filmgrad("train --out " + b + common + " --max-steps 3");
  ASSERT_EQ(rb1.status, 0) << rb1.out;
  EXPECT_NE(rb1.out.find("--resume"), std::string::npos) << rb1.out;
  EXPECT_EQ(nn::read_checkpoint_info(b + "/last.safetensors").step, 3);
  const test::CommandResult rb2 = test::run_filmgrad("train --out " + b + " --resume --max-steps 5 --workers 0");
  ASSERT_EQ(rb2.status, 0) << rb2.out;
  EXPECT_NE(rb2.out.find("resuming at step 3"), std::string::npos) << rb2.out;
  const test::CommandResult rb3 = test::run_filmgrad("train --out " + b + " --resume");
  ASSERT_EQ(rb3.status, 0) << rb3.out;

  const std::vector<std::string> la = losses(a), lb = losses(b);
  EXPECT_EQ(la.size(), 6u + 3u);  // 6 steps, 3 epochs
  EXPECT_EQ(la, lb);
  const SafeTensors ma = load_safetensors(a + "/model.safetensors");
  const SafeTensors mb = load_safetensors(b + "/model.safetensors");
  ASSERT_EQ(ma.tensors.size(), mb.tensors.size());
  for (const auto& [name, t] : ma.tensors) {
    ASSERT_TRUE(mb.tensors.count(name)) << name;
    EXPECT_TRUE(test::all_close(t, mb.tensors.at(name), 0.0, 0.0)) << name;
  }
  // Resuming a finished run changes nothing and says so.
  const test::CommandResult rb4 = test::run_filmgrad("train --out " + b + " --resume");
  EXPECT_EQ(rb4.status, 0) << rb4.out;
  EXPECT_NE(rb4.out.find("every stage is done"), std::string::npos) << rb4.out;
  EXPECT_EQ(losses(b), la);
}

TEST_F(TrainCli, CrossChannelPresetWithACsvLog) {
  const std::string run = run_dir("cross");
  const test::CommandResult r = test::run_filmgrad(
      "train --preset cross-channel --width 0.0625 --sizes 16 --batches 4 --epochs 1 --log csv --log-every 1 "
      "--no-progress --data " +
      photos() + " --out " + run);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Adam (weight decay 0), constant lr"), std::string::npos) << r.out;
  const std::vector<std::string> lines = lines_of(run + "/metrics.csv");
  ASSERT_EQ(lines.size(), 1u + 2u + 1u) << r.out;  // header, 2 steps, 1 epoch
  EXPECT_EQ(lines[0].rfind("kind,step,epoch,", 0), 0u);
  EXPECT_EQ(lines[1].rfind("step,1,1,1,16,0.0001,", 0), 0u) << lines[1];  // constant lr 1e-4
  EXPECT_NE(lines[1].find("bce_mask="), std::string::npos) << lines[1];
  EXPECT_EQ(lines[3].rfind("epoch,2,1,1,16,", 0), 0u) << lines[3];
  EXPECT_EQ(nn::read_checkpoint_info(run + "/model.safetensors").model, "cross_channel");
  const data::ImageInfo grid = data::read_image_info(run + "/samples/epoch_001.png");
  EXPECT_EQ(grid.width, 3 * 16 + 2 * 2);
  EXPECT_EQ(grid.channels, 3);
}

// Two runs that differ only in the learning rate, stopped at the end of the frozen stage: the encoder's
// convolutions are still the seed's (equal in both), while its BatchNorms and the decoder trained (they differ).
// Resumed through the unfrozen stage, the encoder's convolutions move too.
TEST_F(TrainCli, DynamicUNetTrainsFrozenThenUnfrozen) {
  const std::string slow = run_dir("unet_slow"), fast = run_dir("unet_fast");
  const std::string common =
      " --width 0.0625 --sizes 32 --batches 4 --epochs-per-size 1 --unfrozen-epochs 1 --no-progress --data " +
      photos() + " --max-steps 2";
  const test::CommandResult r = test::run_filmgrad("train --out " + slow + common + " --lr 1e-3");
  ASSERT_EQ(r.status, 0) << r.out;
  // The plan: the first stage trains the decoder and the encoder's BatchNorms, the second everything.
  EXPECT_NE(r.out.find("frozen  81,051 / 83,628"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("trained  164,679 / 0"), std::string::npos) << r.out;
  ASSERT_EQ(test::run_filmgrad("train --out " + fast + common + " --lr 3e-3").status, 0);

  const std::string conv = "model.encoder.layer1.0.conv1.weight", bn = "model.encoder.layer1.0.bn1.weight";
  const std::string head = "model.head.weight";
  const SafeTensors a = load_safetensors(slow + "/last.safetensors");
  const SafeTensors b = load_safetensors(fast + "/last.safetensors");
  EXPECT_TRUE(test::all_close(a.tensors.at(conv), b.tensors.at(conv), 0.0, 0.0));
  EXPECT_GT(test::nmse(a.tensors.at(bn), b.tensors.at(bn)), 0.0);
  EXPECT_GT(test::nmse(a.tensors.at(head), b.tensors.at(head)), 0.0);

  ASSERT_EQ(test::run_filmgrad("train --out " + slow + " --resume").status, 0);
  const SafeTensors done = load_safetensors(slow + "/last.safetensors");
  EXPECT_EQ(nn::read_checkpoint_info(slow + "/last.safetensors").step, 4);
  EXPECT_GT(test::nmse(a.tensors.at(conv), done.tensors.at(conv)), 0.0);
}

TEST_F(TrainCli, CtrlCSavesAndResumes) {
  const std::string run = run_dir("sigint");
  const std::string log = run_dir("sigint.log");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const std::string bin = std::string(FG_BINARY_DIR) + "/filmgrad";
    const std::string data = photos();
    execl(bin.c_str(), bin.c_str(), "train", "--data", data.c_str(), "--out", run.c_str(), "--model", "tiny_unet",
          "--sizes", "32", "--batches", "4", "--epochs", "5000", "--log-every", "1", "--no-progress",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until it is training (a step is logged), then interrupt it.
  bool training = false;
  for (int i = 0; i < 600 && !training; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    training = fs::exists(run + "/metrics.jsonl") && !lines_of(run + "/metrics.jsonl").empty();
  }
  ASSERT_TRUE(training);
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  std::ifstream in(log);
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("filmgrad train --out " + run + " --resume"), std::string::npos) << out;
  const int64_t stopped = nn::read_checkpoint_info(run + "/last.safetensors").step;
  EXPECT_GE(stopped, 1);
  const test::CommandResult r =
      test::run_filmgrad("train --out " + run + " --resume --max-steps " + std::to_string(stopped + 1));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nn::read_checkpoint_info(run + "/last.safetensors").step, stopped + 1);
}

TEST_F(TrainCli, ANonFiniteLossStopsWithOneLine) {
  const std::string run = run_dir("nan");
  const test::CommandResult r =
      test::run_filmgrad("train --data " + photos() + " --out " + run + kTiny + " --lr 1e30 --checkpoint-every 1");
  EXPECT_EQ(r.status, 1) << r.out;
  const std::string line = last_line(r.out);
  EXPECT_EQ(line.rfind("filmgrad: error: the ", 0), 0u) << r.out;
  EXPECT_NE(line.find("not finite"), std::string::npos) << r.out;
  EXPECT_NE(line.find("lower --lr"), std::string::npos) << r.out;
  EXPECT_NE(line.find("at step "), std::string::npos) << r.out;
}

TEST_F(TrainCli, BadInputIsAOneLineError) {
  const std::string d = " --data " + photos();
  const std::string run = " --out " + run_dir("bad");
  struct Case {
    std::string args;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"train" + run, 2, "needs --data"},
      {"train --data " + run_dir("no_such_folder") + run, 2, "does not exist"},
      {"train" + d + run + " --bogus", 2, "unknown option"},
      {"train" + d + run + " --precision f16", 2, "--device cuda"},
      {"train" + d + run + " --preset nope", 2, "unknown preset"},
      {"train" + d + run + " --model tiny_unet --sizes 64,x", 2, "--sizes"},
      {"train" + d + run + " --sizes 64,128 --batches 8,4,2", 2, "--batches"},
      {"train" + d + run + " --epochs 3 --unfrozen-epochs 2", 2, "--epochs"},
      {"train" + d + run + " --loss frobenius", 2, "loss"},
      {"train" + d + run + " --model tiny_unet --gated", 2, "no gated form"},
      {"train" + d + run + " --gated --no-gated", 2, "not both"},
      {"train" + d + run + " --damage-frame 0", 2, "--damage-frame"},
      {"train" + d + run + " --damage-frame 300:100", 2, "N <= M"},
      {"train" + d + run + " --model tiny_unet --sizes 30 --batches 4", 1, "multiples of 4"},
      {"train" + d + run + " --model tiny_unet --sizes 32 --batches 64", 1, "fewer than the batch size"},
      {"train --out " + run_dir("empty") + " --resume", 2, "nothing to resume"},
      {"train --data " + photos() + " --out " + run_dir("bad") + "/x --resume --lr 1", 2, "cannot change"},
  };
  for (const Case& c : cases) {
    const test::CommandResult r = test::run_filmgrad(c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.out;
    EXPECT_EQ(test::count_lines(r.out), 1) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
  }
  // A run folder that cannot be created (under a regular file, which even root cannot make a folder of).
  const std::string file = run_dir("a_file");
  std::ofstream(file) << "x";
  const test::CommandResult r = test::run_filmgrad("train" + d + " --out " + file + "/run" + kTiny);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(test::count_lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("cannot create the run folder"), std::string::npos) << r.out;
  EXPECT_EQ(test::run_filmgrad("train --help").status, 0);
}

}  // namespace
}  // namespace fg
