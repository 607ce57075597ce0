// A real `filmgrad train` process killed without warning (SIGKILL: no handler, no last save) at several points,
// and killed in the middle of writing a checkpoint, then resumed with --resume each time: the run it finally
// completes logs the same metrics (every field but the timings) and leaves byte-identical checkpoints, model and
// sample grids as one run never interrupted. This is apps/train.h's promise that resume is exact, checked against
// crashes rather than the orderly stops of test_cli_train.
//
// How the kill points are made deterministic enough: a SIGKILL is sent when the child reaches an observed point (a
// step logged, a checkpoint saved, an epoch's sample grid written, a checkpoint's temporary file created); the
// child may run a little past it before the signal lands, so each attempt also carries --max-steps, which bounds
// how far it can get. Whatever step a kill lands on, the final result must be the same, and that is what is
// asserted. The kill in the middle of a checkpoint write is exact: the child runs under a file-size limit
// (RLIMIT_FSIZE) larger than every file it writes except last.safetensors, so the kernel stops it with SIGXFSZ inside
// that write; the previous last.safetensors must then be intact, byte for byte, and resumable.
//
// Every child runs with one OpenMP thread, so that results are bit-reproducible (train.h: deterministic for a fixed
// number of threads).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "data/image_io.h"
#include "nn/checkpoint.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace fs = std::filesystem;

namespace fg {
namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A metrics line without its timing fields (images_per_s, time_s), which differ from run to run.
std::string without_timings(std::string line) {
  for (const std::string key : {",\"images_per_s\":", ",\"time_s\":"}) {
    const size_t at = line.find(key);
    if (at == std::string::npos) continue;
    const size_t end = line.find_first_of(",}", at + key.size());
    line.erase(at, end - at);
  }
  return line;
}

std::vector<std::string> metrics(const std::string& run) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(run + "/metrics.jsonl")) out.push_back(without_timings(l));
  return out;
}

// The highest step a metrics line records (0 when none).
int64_t logged_steps(const std::string& run) {
  int64_t last = 0;
  for (const std::string& l : lines_of(run + "/metrics.jsonl")) {
    const size_t at = l.find("\"step\":");
    if (at != std::string::npos) last = std::max<int64_t>(last, std::strtoll(l.c_str() + at + 7, nullptr, 10));
  }
  return last;
}

int64_t checkpoint_step(const std::string& run) {
  const std::string path = run + "/last.safetensors";
  if (!fs::exists(path)) return -1;
  return nn::read_checkpoint_info(path).step;
}

std::vector<std::string> temporary_checkpoints(const std::string& run) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().rfind("last.safetensors.tmp-", 0) == 0) out.push_back(e.path().string());
  return out;
}

struct Attempt {
  std::string name;               // for the test's output
  std::vector<std::string> args;  // after "filmgrad"  // after "filmgrad"
  // When it returns true the child is sent SIGKILL; `tmp_created`: a checkpoint's temporary file has appeared.
  std::function<bool(bool tmp_created)> kill_when;
  rlim_t file_size_limit = RLIM_INFINITY;
};

struct Outcome {
  bool exited = false;
  int exit_status = -1;
  int signal = 0;
  std::string log;
};

// Runs the program with `a.args`, watching the run folder, and kills it when a.kill_when says so.
Outcome run_attempt(const Attempt& a, const std::string& run, const std::string& log_path) {
  fs::create_directories(run);  // so it can be watched from the start (the program accepts an existing folder)
  const int watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  EXPECT_GE(watch_fd, 0);
  EXPECT_GE(inotify_add_watch(watch_fd, run.c_str(), IN_CREATE | IN_MOVED_TO), 0);

  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("OMP_NUM_THREADS", "1", 1);
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    const rlimit fsize{a.file_size_limit, a.file_size_limit};
    setrlimit(RLIMIT_FSIZE, &fsize);
    const std::string bin = std::string(FG_BINARY_DIR) + "/filmgrad";
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin.c_str()));
    for (const std::string& s : a.args) argv.push_back(const_cast<char*>(s.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  Outcome o;
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return o;
  }
  bool tmp_created = false, killed = false;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    pollfd p{watch_fd, POLLIN, 0};
    poll(&p, 1, 2);
    alignas(inotify_event) char buf[4096];
    ssize_t n;
    while ((n = read(watch_fd, buf, sizeof buf)) > 0) {
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
        if (ev->len > 0 && std::string(ev->name).rfind("last.safetensors.tmp-", 0) == 0) tmp_created = true;
        off += ssize_t(sizeof(inotify_event) + ev->len);
      }
    }
    if (!killed && a.kill_when && a.kill_when(tmp_created)) {
      kill(pid, SIGKILL);
      killed = true;
    }
  }
  close(watch_fd);
  o.exited = WIFEXITED(status);
  o.exit_status = o.exited ? WEXITSTATUS(status) : -1;
  o.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  o.log = bytes_of(log_path);
  // Where it stopped, for the test's output (the kill points are not exact, see the top of the file).
  std::printf("  %-46s %-8s logged step %2lld, checkpoint at step %2lld\n", a.name.c_str(),
              o.signal == SIGKILL   ? "SIGKILL"
              : o.signal == SIGXFSZ ? "SIGXFSZ"
              : o.exited            ? "exit"
                                    : "signal",
              static_cast<long long>(logged_steps(run)), static_cast<long long>(checkpoint_step(run)));
  return o;
}

class KillResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("fg_kill_resume_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "photos");
    test::write_wave_photos((root_ / "photos").string());
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static fs::path root_;
};

fs::path KillResume::root_;

// tiny_unet at 32 px, batch 2: 5 steps per epoch; a resizing stage of 2 epochs and an unfrozen one of 1 epoch:
// 15 steps in all, a checkpoint every 2 steps and at each epoch's end.
std::vector<std::string> fresh_args(const std::string& photos, const std::string& run) {
  return {"train",     "--data",
          photos,      "--out",
          run,         "--model",
          "tiny_unet", "--sizes",
          "32",        "--batches",
          "2",         "--epochs-per-size",
          "2",         "--unfrozen-epochs",
          "1",         "--checkpoint-every",
          "2",         "--log-every",
          "1",         "--no-progress",
          "--workers", "1"};
}

TEST_F(KillResume, KilledAnywhereThenResumedEqualsAnUninterruptedRun) {
  const std::string photos = (root_ / "photos").string();
  const std::string ref = (root_ / "reference").string(), run = (root_ / "killed").string();
  const std::string log = (root_ / "child.log").string();
  constexpr int64_t kSteps = 15;

  const Outcome r = run_attempt({"reference run", fresh_args(photos, ref), nullptr}, ref, log);
  ASSERT_TRUE(r.exited && r.exit_status == 0) << r.log;
  ASSERT_EQ(checkpoint_step(ref), kSteps);
  // The file-size limit that lets everything but last.safetensors be written.
  const uintmax_t last_size = fs::file_size(ref + "/last.safetensors");
  uintmax_t others = 0;
  for (const auto& e : fs::recursive_directory_iterator(ref))
    if (e.is_regular_file() && e.path().filename() != "last.safetensors") others = std::max(others, e.file_size());
  ASSERT_LT(others + 4096, last_size);
  const rlim_t limit = rlim_t((others + last_size) / 2);

  auto resume_or_start = [&](int64_t max_steps) {
    std::vector<std::string> args = fs::exists(run + "/last.safetensors")
                                        ? std::vector<std::string>{"train", "--out", run, "--resume"}
                                        : fresh_args(photos, run);
    args.push_back("--max-steps");
    args.push_back(std::to_string(max_steps));
    return args;
  };
  auto killed_or_capped = [&](const Outcome& o, const std::string& what) {
    EXPECT_TRUE(o.signal == SIGKILL || (o.exited && o.exit_status == 0)) << what << "\n" << o.log;
  };

  // 1. Shortly after the first step, before (or just after) the first checkpoint.
  {
    const Outcome o = run_attempt(
        {"1: after the first step", resume_or_start(4), [&](bool) { return logged_steps(run) >= 1; }}, run, log);
    killed_or_capped(o, "kill 1");
  }
  // 2. Right after a checkpoint is saved.
  {
    const Outcome o = run_attempt(
        {"2: just after a checkpoint", resume_or_start(6), [&](bool) { return checkpoint_step(run) >= 4; }}, run, log);
    killed_or_capped(o, "kill 2");
    ASSERT_GE(checkpoint_step(run), 2) << o.log;
  }
  // 3. Mid-epoch, between two checkpoints (step 7 of the second epoch).
  {
    const Outcome o =
        run_attempt({"3: mid-epoch", resume_or_start(9), [&](bool) { return logged_steps(run) >= 7; }}, run, log);
    killed_or_capped(o, "kill 3");
  }
  // 4. At an epoch's end, after its sample grid is written (validation and the best weights are done; the epoch's
  //    checkpoint may or may not be).
  {
    const Outcome o = run_attempt(
        {"4: at an epoch's end", resume_or_start(11), [&](bool) { return fs::exists(run + "/samples/epoch_002.png"); }},
        run, log);
    killed_or_capped(o, "kill 4");
  }
  // 5. Inside a checkpoint write, exactly: the file-size limit stops the child (SIGXFSZ) in the middle of writing
  //    last.safetensors' temporary file. The previous checkpoint is untouched and the partial file is not it.
  {
    const int64_t before_step = checkpoint_step(run);
    ASSERT_GE(before_step, 2);
    ASSERT_LT(before_step, kSteps);
    const std::string before = bytes_of(run + "/last.safetensors");
    const size_t tmp_before = temporary_checkpoints(run).size();
    Attempt a{"5: inside a checkpoint write (file-size limit)", resume_or_start(kSteps), nullptr, limit};
    const Outcome o = run_attempt(a, run, log);
    EXPECT_EQ(o.signal, SIGXFSZ) << o.log;
    EXPECT_EQ(bytes_of(run + "/last.safetensors"), before);
    EXPECT_EQ(checkpoint_step(run), before_step);
    const std::vector<std::string> tmp = temporary_checkpoints(run);
    ASSERT_EQ(tmp.size(), tmp_before + 1);
    bool partial_found = false;
    for (const std::string& t : tmp) partial_found |= fs::file_size(t) == limit;
    EXPECT_TRUE(partial_found) << "no temporary checkpoint cut at " << limit << " bytes";
  }
  // 6. SIGKILL as soon as a checkpoint's temporary file appears (usually while it is being written; perhaps just
  //    after the rename): either way last.safetensors is a whole checkpoint.
  {
    const Outcome o = run_attempt(
        {"6: as a checkpoint's temporary file appears", resume_or_start(kSteps), [&](bool tmp) { return tmp; }}, run,
        log);
    killed_or_capped(o, "kill 6");
    EXPECT_GE(checkpoint_step(run), 2);
  }
  // 7. In the second stage (the unfrozen one: its own optimizer and schedule).
  {
    const Outcome o = run_attempt(
        {"7: in the second stage", resume_or_start(14), [&](bool) { return logged_steps(run) >= 13; }}, run, log);
    killed_or_capped(o, "kill 7");
  }
  // Then resumed to the end.
  for (int i = 0; i < 3 && checkpoint_step(run) < kSteps; ++i) {
    const Outcome o = run_attempt({"resumed to the end", {"train", "--out", run, "--resume"}, nullptr}, run, log);
    ASSERT_TRUE(o.exited && o.exit_status == 0) << o.log;
  }
  ASSERT_EQ(checkpoint_step(run), kSteps);

  // The same run: every metrics line (timings aside), and the files, byte for byte.
  const std::vector<std::string> ma = metrics(ref), mb = metrics(run);
  EXPECT_EQ(ma.size(), size_t(kSteps + 3));  // 15 steps, 3 epochs
  EXPECT_EQ(ma, mb);
  for (const char* f : {"best.safetensors", "model.safetensors", "train.csv", "validation.csv", "test.csv",
                        "samples/epoch_001.png", "samples/epoch_002.png", "samples/epoch_003.png"}) {
    ASSERT_TRUE(fs::exists(run + "/" + f)) << f;
    EXPECT_TRUE(bytes_of(ref + "/" + f) == bytes_of(run + "/" + f)) << f << " differs";
  }
  // last.safetensors names its run folder in the stored options; apart from that it is the same, tensor by tensor
  // (weights, BatchNorm statistics, the optimizer's moments and steps) and in every metadata entry.
  const SafeTensors wa = load_safetensors(ref + "/last.safetensors");
  SafeTensors wb = load_safetensors(run + "/last.safetensors");
  std::string& options = wb.metadata["train_options"];
  const size_t at = options.find("\"out_dir\":\"" + run + "\"");
  ASSERT_NE(at, std::string::npos) << options;
  options.replace(at, run.size() + 12, "\"out_dir\":\"" + ref + "\"");
  EXPECT_EQ(wa.metadata, wb.metadata);
  ASSERT_EQ(wa.tensors.size(), wb.tensors.size());
  for (const auto& [name, t] : wa.tensors) {
    ASSERT_TRUE(wb.tensors.count(name)) << name;
    EXPECT_TRUE(test::all_close(t, wb.tensors.at(name), 0.0, 0.0)) << name;
  }
}

}  // namespace
}  // namespace fg
