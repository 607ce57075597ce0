// `filmgrad bench` as a user runs it, on tiny subsets (--filter, a short --min-time): the JSON it writes is well
// formed and every case that ran has positive figures (never a particular timing: timings belong to benchmarks);
// the CUDA cases run with a GPU and are skipped with a reason without one; bad options are refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "apps/json.h"
#include "tests/support/gpu_util.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;
using fg::apps::Json;
using fg::test::run_filmgrad;

class Bench : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fg_cli_bench_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs bench --quick on the cases whose name contains `filter`; returns the parsed JSON.
  Json run(const std::string& filter) {
    const std::string out = (dir_ / "bench.json").string();
    const auto r =
        run_filmgrad("bench --quick --min-time 0.01 --threads 1 --filter '" + filter + "' --out '" + out + "'");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    return fg::apps::parse_json(ss.str());  // throws on malformed JSON, failing the test
  }

  static double number(const Json& object, const std::string& key) {
    const Json* v = object.find(key);
    if (v == nullptr || v->kind != Json::NUMBER) return -1;
    return std::stod(v->text);
  }

  fs::path dir_;
};

TEST_F(Bench, HelpNamesTheOptions) {
  const auto r = run_filmgrad("bench --help");
  EXPECT_EQ(r.status, 0);
  for (const char* flag : {"--quick", "--out", "--filter", "--min-time", "--threads"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

TEST_F(Bench, CpuKernelsGivePositiveFigures) {
  for (const std::string filter :
       {"cpu.peak/", "cpu.gemm/openblas/forward/r34.layer1/", "cpu.conv2d/backward_weight/r34.layer1/"}) {
    const Json j = run(filter);
    const Json* ctx = j.find("context");
    ASSERT_NE(ctx, nullptr);
    EXPECT_GT(number(*ctx, "cpu_peak_flops_1_thread"), 0);
    EXPECT_EQ(number(*ctx, "threads"), 1);
    const Json* results = j.find("results");
    ASSERT_NE(results, nullptr);
    ASSERT_EQ(results->kind, Json::ARRAY);
    ASSERT_GE(results->items.size(), 1u) << filter;
    for (const Json& r : results->items) {
      const std::string name = r.find("name")->text;
      EXPECT_NE(name.find(filter), std::string::npos) << name;
      EXPECT_EQ(r.find("skipped"), nullptr) << name;
      EXPECT_GE(number(r, "runs"), 2) << name;
      for (const char* key : {"seconds", "flops", "bytes", "flops_per_s", "bytes_per_s", "peak_flops", "pct_peak"}) {
        if (filter == "cpu.peak/" && std::string(key).find("bytes") != std::string::npos)
          continue;  // no memory traffic
        EXPECT_GT(number(r, key), 0) << name << " " << key;
      }
      // FLOP/s is flops over seconds, exactly as written (both printed as round-trip doubles).
      EXPECT_NEAR(number(r, "flops_per_s"), number(r, "flops") / number(r, "seconds"), 1e-9 * number(r, "flops_per_s"));
    }
  }
}

TEST_F(Bench, TrainingStepReportsImagesPerSecond) {
  const Json j = run("cpu.train_step/");
  const Json* results = j.find("results");
  ASSERT_NE(results, nullptr);
  ASSERT_EQ(results->items.size(), 1u);
  const Json& r = results->items[0];
  EXPECT_GT(number(r, "images_per_s"), 0);
  EXPECT_EQ(r.find("flops")->kind, Json::NUL);  // a step's flops are not counted, so no percent of peak either
  EXPECT_EQ(r.find("pct_peak")->kind, Json::NUL);
}

TEST_F(Bench, CudaCasesRunWithAGpuAndAreSkippedWithAReasonOtherwise) {
  const Json j = run("cuda.matmul/tiled_f32/");
  const Json* results = j.find("results");
  ASSERT_NE(results, nullptr);
  ASSERT_GE(results->items.size(), 1u);
  const Json& r = results->items[0];
  if (fg::test::gpu_available()) {
    EXPECT_EQ(r.find("skipped"), nullptr);
    EXPECT_GT(number(r, "flops_per_s"), 0);
    EXPECT_GT(number(r, "pct_peak"), 0);
  } else {
    ASSERT_NE(r.find("skipped"), nullptr);
    EXPECT_FALSE(r.find("skipped")->text.empty());
  }
}

TEST_F(Bench, BadOptionsAreRefused) {
  auto r = run_filmgrad("bench --min-time 0");
  EXPECT_EQ(r.status, 2) << r.out;
  r = run_filmgrad("bench --filter no-such-benchmark --out '" + (dir_ / "x.json").string() + "'");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("no benchmark name contains"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "x.json"));
  r = run_filmgrad("bench --quick --out '" + (dir_ / "missing" / "x.json").string() + "'");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
}

}  // namespace
