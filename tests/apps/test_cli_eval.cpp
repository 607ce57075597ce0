// `filmgrad eval` end to end on runs the test builds itself (tiny untrained models, a few small PNGs, split CSVs):
// the report and both CSVs are written; the CSV numbers are the ones data::ssim/psnr give when recomputed here;
// dSSIM is what it says on every row; two negative models make one report with both rows; and every bad input is
// one line, a non-zero exit, and no damage to an earlier report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "apps/evaluate.h"
#include "apps/task.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/inpaint.h"
#include "data/median.h"
#include "data/metrics.h"
#include "nn/checkpoint.h"
#include "tests/support/test_util.h"

namespace fg::apps {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A CSV without quoted fields (what these tests write and read) as rows of cells keyed by the header.
std::vector<std::map<std::string, std::string>> read_csv(const fs::path& p) {
  std::istringstream in(slurp(p));
  std::string line;
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    if (header.empty()) {
      header = cells;
      continue;
    }
    EXPECT_EQ(cells.size(), header.size()) << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

// The rows of one method ("network" or a baseline's name).
std::vector<std::map<std::string, std::string>> rows_of(const std::vector<std::map<std::string, std::string>>& rows,
                                                        const std::string& method) {
  std::vector<std::map<std::string, std::string>> out;
  for (const auto& r : rows)
    if (r.at("method") == method) out.push_back(r);
  return out;
}

double num(const std::map<std::string, std::string>& row, const std::string& key) {
  auto it = row.find(key);
  EXPECT_NE(it, row.end()) << "no column " << key;
  return it == row.end() ? NAN : std::stod(it->second);
}

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("fg_eval_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(images());
    // smooth-ish colour images of a few sizes (not square: the dataset resizes and centre-crops them)
    for (int i = 0; i < 7; ++i) {
      const int64_t h = 20 + 2 * i, w = 24 + i;
      Tensor t = test::random_tensor({3, h, w}, 100 + uint64_t(i), DType::F32, 0.2, 0.8);
      float* p = t.data<float>();
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x)
            p[(c * h + y) * w + x] = 0.5f * p[(c * h + y) * w + x] + 0.4f * float(x) / float(w);
      data::write_image((images() / ("img" + std::to_string(i) + ".png")).string(), data::make_image(t));
    }
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path images() const { return root_ / "images"; }

  // A run folder: the split CSVs, model.safetensors (an untrained model) and, for dust runs, a metrics.jsonl.
  fs::path make_run(const std::string& name, const ModelConfig& config, uint64_t seed, bool with_size = false) {
    const fs::path run = root_ / name;
    fs::create_directories(run);
    std::ofstream(run / "train.csv") << "path\nimg0.png\nimg1.png\nimg2.png\n";
    std::ofstream(run / "validation.csv") << "path\nimg3.png\n";
    std::ofstream(run / "test.csv") << "path\nimg4.png\nimg5.png\nimg6.png\n";
    Generator gen(seed);
    RestorationModel model(config, gen, /*build_loss=*/false);
    nn::CheckpointInfo info;
    info.model = config.model;
    info.config = config.to_json();
    info.step = 42;
    if (with_size) info.extra["size"] = "16";
    nn::save_checkpoint((run / "model.safetensors").string(), model.module(), nullptr, info);
    std::ofstream(run / "metrics.jsonl")
        << "{\"epoch\": 0, \"step\": 10, \"train_loss\": 0.5, \"lr\": 0.001}\n"
           "{\"epoch\": 0, \"step\": 20, \"train_loss\": 0.4, \"valid\": {\"loss\": 0.45, \"ssim\": 0.7}}\n"
           "not json\n"
           "{\"epoch\": 1, \"step\": 30, \"train_loss\": 0.3, \"valid\": {\"loss\": 0.35, \"ssim\": 0.8}}\n";
    return run;
  }

  static ModelConfig dust_config() {
    ModelConfig c;
    c.task = "dust";
    c.model = "tiny_unet";
    c.width = 0.25;
    c.loss = "mse";
    return c;
  }
  static ModelConfig negative_config(const std::string& model) {
    ModelConfig c;
    c.task = "negative";
    c.model = model;
    c.width = 0.0625;
    c.loss = "cross_channel";
    return c;
  }

  fs::path root_;
};

// The test images of a run exactly as eval prepares them.
data::RestorationDataset test_dataset(const fs::path& images, data::Task task, int64_t size) {
  data::DatasetOptions o;
  o.task = task;
  o.size = size;
  o.fixed_damage = true;
  o.seed = 0;
  return data::RestorationDataset(images.string(), {"img4.png", "img5.png", "img6.png"}, o);
}

Tensor clamp01(const Tensor& t) {
  Tensor out = t.to(DType::F32).clone();
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = std::min(1.0f, std::max(0.0f, p[i]));
  return out;
}

TEST_F(EvalCli, DustRunWritesReportAndCsvsWithTheRightNumbers) {
  const fs::path run = make_run("dust_run", dust_config(), 7, /*with_size=*/true);
  const test::CommandResult r =
      test::run_filmgrad("eval " + run.string() + " --data " + images().string() + " --examples 2 --batch 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const fs::path out = run / "eval";  // the default
  EXPECT_NE(r.out.find((out / "report.html").string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SSIM clean in"), std::string::npos) << r.out;  // the summary table is printed

  const std::string html = slurp(out / "report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* want : {"Table 5.4", "dust_run", "<svg", "class=\"bar\"", "data:image/png;base64,", "δSSIM",
                           "MSE Model", "class=\"line\"", "1 line(s) of metrics.jsonl"})
    EXPECT_NE(html.find(want), std::string::npos) << want;
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // 2 best + 2 worst examples, 4 images each
  size_t images_in_page = 0;
  for (size_t at = html.find("<img "); at != std::string::npos; at = html.find("<img ", at + 1)) ++images_in_page;
  EXPECT_EQ(images_in_page, 16u);

  const auto all_summary = read_csv(out / "summary.csv");
  ASSERT_EQ(all_summary.size(), 4u);  // the model and its three baselines
  const auto summary = rows_of(all_summary, "network");
  ASSERT_EQ(summary.size(), 1u);
  for (const char* b : {"identity", "median3x3", "inpaint"}) {
    ASSERT_EQ(rows_of(all_summary, b).size(), 1u) << b;
    EXPECT_EQ(rows_of(all_summary, b)[0].at("model"), "dust_run");
  }
  // identity is the damaged input: its "restored" is the damaged score
  EXPECT_EQ(rows_of(all_summary, "identity")[0].at("ssim_restored_mean"), summary[0].at("ssim_damaged_mean"));
  EXPECT_NE(r.out.find("median3x3"), std::string::npos) << r.out;
  EXPECT_NE(html.find("Against classical baselines"), std::string::npos);
  EXPECT_EQ(summary[0].at("model"), "dust_run");
  EXPECT_EQ(summary[0].at("size"), "16");  // the checkpoint's training size
  EXPECT_EQ(summary[0].at("images"), "3");
  EXPECT_EQ(summary[0].at("step"), "42");

  const auto all_rows = read_csv(out / "per_image.csv");
  ASSERT_EQ(all_rows.size(), 12u);
  const auto rows = rows_of(all_rows, "network");
  const auto median_rows = rows_of(all_rows, "median3x3");
  const auto inpaint_rows = rows_of(all_rows, "inpaint");
  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(median_rows.size(), 3u);
  std::vector<double> restored;
  for (const auto& row : rows) {
    EXPECT_NEAR(num(row, "delta_ssim"), num(row, "ssim_restored") - num(row, "ssim_damaged"), 1e-9);
    EXPECT_NEAR(num(row, "delta_psnr"), num(row, "psnr_restored") - num(row, "psnr_damaged"), 1e-9);
    EXPECT_NEAR(num(row, "ssim_restored"),
                (num(row, "ssim_restored_R") + num(row, "ssim_restored_G") + num(row, "ssim_restored_B")) / 3, 1e-9);
    restored.push_back(num(row, "ssim_restored"));
  }
  // the summary is the mean and population SD of the rows
  const Stat s = mean_sd(restored);
  EXPECT_NEAR(num(summary[0], "ssim_restored_mean"), s.mean, 1e-9);
  EXPECT_NEAR(num(summary[0], "ssim_restored_sd"), s.sd, 1e-9);

  // recompute the first image's scores here, from the same model and the same damaged sample
  const std::unique_ptr<RestorationModel> model = load_restoration_model((run / "model.safetensors").string());
  const data::RestorationDataset ds = test_dataset(images(), data::Task::DUST, 16);
  for (int64_t i = 0; i < 3; ++i) {
    const data::Sample sample = ds.get(i, 0);
    const auto& row = rows[size_t(i)];
    ASSERT_EQ(row.at("image"), sample.name);
    EXPECT_NEAR(num(row, "ssim_damaged"), data::ssim(sample.input, sample.target), 1e-10);
    EXPECT_NEAR(num(row, "psnr_damaged"), data::psnr(sample.input, sample.target), 1e-8);
    NoGradGuard no_grad;
    const Tensor pred = clamp01(model->predict(Variable(sample.input.unsqueeze(0))).data().select(0, 0));
    const Tensor pred_clean = clamp01(model->predict(Variable(sample.clean.unsqueeze(0))).data().select(0, 0));
    EXPECT_NEAR(num(row, "ssim_restored"), data::ssim(pred, sample.target), 1e-6);
    EXPECT_NEAR(num(row, "psnr_restored"), data::psnr(pred, sample.target), 1e-4);
    EXPECT_NEAR(num(row, "ssim_clean_in"), data::ssim(pred_clean, sample.target), 1e-6);
    EXPECT_NEAR(num(row, "ssim_restored_G"), data::ssim_per_channel(pred, sample.target)[1], 1e-6);
    EXPECT_NEAR(num(row, "psnr_damaged_B"), data::psnr_per_channel(sample.input, sample.target)[2], 1e-8);
    // the baselines, recomputed: the median of the input, and the fill of the model's change mask
    EXPECT_NEAR(num(median_rows[size_t(i)], "ssim_restored"),
                data::ssim(data::median_filter3x3(sample.input), sample.target), 1e-9);
    EXPECT_NEAR(num(median_rows[size_t(i)], "ssim_clean_in"),
                data::ssim(data::median_filter3x3(sample.clean), sample.target), 1e-9);
    const Tensor mask = RestorationModel::change_mask(sample.input.unsqueeze(0), pred.unsqueeze(0)).select(0, 0);
    EXPECT_NEAR(num(inpaint_rows[size_t(i)], "ssim_restored"),
                data::ssim(data::inpaint_diffusion(sample.input, data::hole_from_mask(mask)), sample.target), 1e-6);
  }
}

TEST_F(EvalCli, TwoNegativeModelsMakeOneReportWithBothRows) {
  const fs::path full = make_run("full", negative_config("cross_channel"), 3);
  const fs::path plain = make_run("plain", negative_config("cross_channel_plain"), 4);
  const fs::path out = root_ / "neg_report";
  const test::CommandResult r =
      test::run_filmgrad("eval " + full.string() + " " + plain.string() + " --data " + images().string() +
                         " --size 16 --out " + out.string() + " --examples 1 --limit 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto summary = rows_of(read_csv(out / "summary.csv"), "network");
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[0].at("model"), "full");
  EXPECT_EQ(summary[0].at("network"), "cross_channel");
  EXPECT_EQ(summary[1].at("model"), "plain");
  EXPECT_EQ(summary[1].at("network"), "cross_channel_plain");
  EXPECT_EQ(summary[0].at("images"), "2");  // --limit
  const auto all_rows = read_csv(out / "per_image.csv");
  ASSERT_EQ(all_rows.size(), 16u);  // 2 models x 2 images x (the network and 3 baselines)
  for (const auto& row : all_rows) {
    EXPECT_NEAR(num(row, "delta_ssim"), num(row, "ssim_restored") - num(row, "ssim_damaged"), 1e-9);
    // one channel scored, the blue one
    EXPECT_NEAR(num(row, "ssim_restored_B"), num(row, "ssim_restored"), 1e-12);
    EXPECT_EQ(row.count("ssim_restored_R"), 0u);
  }
  const auto rows = rows_of(all_rows, "network");
  ASSERT_EQ(rows.size(), 4u);
  // the damaged baseline is the same for both models (same images, same fixed damage)
  EXPECT_EQ(rows[0].at("ssim_damaged"), rows[2].at("ssim_damaged"));
  // and it is the SSIM of the damaged blue channel against the clean one
  const data::RestorationDataset ds = test_dataset(images(), data::Task::NEGATIVE, 16);
  const data::Sample s0 = ds.get(0, 0);
  EXPECT_NEAR(num(rows[0], "ssim_damaged"), data::ssim(s0.input.narrow(0, 2, 1), s0.target), 1e-10);
  EXPECT_NEAR(num(rows[0], "psnr_damaged"), data::psnr(s0.input.narrow(0, 2, 1), s0.target), 1e-8);

  const std::string html = slurp(out / "report.html");
  for (const char* want : {"Table 1", "Proposed model with mask", "full (cross_channel)", "plain (cross_channel_plain)",
                           "damaged input (no restoration)"})
    EXPECT_NE(html.find(want), std::string::npos) << want;
  EXPECT_NE(r.out.find("full"), std::string::npos);
  EXPECT_NE(r.out.find("plain"), std::string::npos);
}

TEST_F(EvalCli, BadInputIsOneLineAndLeavesTheOldReport) {
  const fs::path dust = make_run("dust", dust_config(), 1);
  const fs::path neg = make_run("neg", negative_config("cross_channel_no_mask"), 2);
  const fs::path out = root_ / "out";
  fs::create_directories(out);
  std::ofstream(out / "report.html") << "old report";
  const std::string data = " --data " + images().string();

  struct Case {
    std::string args;
    int status;
    std::string says;
  };
  const fs::path not_ours = root_ / "plain.safetensors";
  {
    SafeTensors st;
    st.tensors["weight"] = Tensor::zeros({2});
    save_safetensors(not_ours.string(), st);
  }
  std::ofstream(root_ / "garbage.safetensors") << "this is not a safetensors file";
  const fs::path a_file = root_ / "a_file";
  std::ofstream(a_file) << "x";
  const std::vector<Case> cases = {
      {"eval " + (root_ / "missing").string() + data + " --out " + out.string(), 2, "does not exist"},
      {"eval " + (root_ / "images").string() + data + " --out " + out.string(), 2, "model.safetensors"},
      {"eval " + not_ours.string() + data + " --split " + dust.string() + " --out " + out.string(), 1,
       "not a filmgrad checkpoint"},
      {"eval " + (root_ / "garbage.safetensors").string() + data + " --split " + dust.string() + " --out " +
           out.string(),
       1, "garbage.safetensors"},
      {"eval " + dust.string() + " " + neg.string() + data + " --out " + out.string(), 2, "one task"},
      {"eval " + dust.string() + data + " --out " + (a_file / "sub").string(), 1, "not a folder"},
      {"eval " + dust.string() + data + " --out " + a_file.string(), 1, "is a file"},
      {"eval " + dust.string() + data + " --bogus 3", 2, "unknown option '--bogus'"},
      {"eval " + data, 2, "at least one"},
      {"eval " + dust.string(), 2, "--data"},
      {"eval " + dust.string() + data + " --size 18 --out " + out.string(), 2, "not a multiple of 4"},
      {"eval " + dust.string() + data + " --size 8 --out " + out.string(), 2, "too small"},
      {"eval " + dust.string() + data + " --device tpu --out " + out.string(), 2, "--device"},
      {"eval " + dust.string() + " --data " + (root_ / "nope").string(), 2, "does not exist"},
      {"eval " + not_ours.string() + data + " --out " + out.string(), 2, "--split"},
  };
  for (const Case& c : cases) {
    const test::CommandResult r = test::run_filmgrad(c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.out;
    EXPECT_EQ(test::count_lines(r.out), 1) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << "\n" << r.out;
  }
  EXPECT_EQ(slurp(out / "report.html"), "old report");
  EXPECT_FALSE(fs::exists(out / "summary.csv"));
  EXPECT_FALSE(fs::exists(dust / "eval"));
}

TEST(Evaluate, MeanAndPopulationSdOverFiniteValues) {
  const Stat s = mean_sd({1.0, 3.0, INFINITY, NAN});
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(s.skipped, 2);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.sd, 1.0);
  EXPECT_TRUE(std::isnan(mean_sd({}).mean));
}

TEST(Evaluate, PaperRowsMatchTheConfiguration) {
  ModelConfig c;
  c.loss = "model3";
  ASSERT_NE(paper_figure(c), nullptr);
  EXPECT_EQ(paper_figure(c)->values, (std::vector<double>{0.880, 0.050, 0.980, 0.020}));
  c.loss = "mae";
  EXPECT_EQ(paper_figure(c), nullptr);
  c.task = "negative";
  c.model = "cross_channel_no_mask";
  ASSERT_NE(paper_figure(c), nullptr);
  EXPECT_EQ(paper_figure(c)->values, (std::vector<double>{33.75, 0.9702}));
  EXPECT_EQ(paper_table("negative").size(), 3u);
  EXPECT_EQ(paper_table("dust").size(), 4u);
}

}  // namespace
}  // namespace fg::apps
