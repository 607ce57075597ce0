// `filmgrad synth` as a user runs it: the three output folders with one file per sample at the asked size (or the
// images' own sizes with --size 0), negatives keeping R and G, the same files on every run, --count,
// --samples-per-image and --format, an output folder inside the input folder not read back as input, and every kind
// of bad input refused with one line and the right exit status, leaving existing files alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/image_io.h"
#include "tests/support/test_util.h"

namespace {

namespace fs = std::filesystem;
using fg::test::run_filmgrad;

class Synth : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("fg_cli_synth_" + std::to_string(getpid()));
    fs::remove_all(root_);
    in_ = root_ / "photos";
    fs::create_directories(in_ / "sub");
    write(in_ / "a.png", 3, 40, 52, 1);
    write(in_ / "b.png", 1, 37, 33, 2);      // grey
    write(in_ / "sub/c.png", 4, 34, 45, 3);  // RGBA, in a subfolder
  }
  void TearDown() override { fs::remove_all(root_); }

  static void write(const fs::path& p, int64_t C, int64_t H, int64_t W, uint64_t seed, int depth = 8) {
    const fg::Tensor t = fg::test::random_tensor({C, H, W}, seed, fg::DType::F32, 0.0, 1.0);
    fg::data::write_image(p.string(), fg::data::make_image(t, depth));
  }
  static std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  static int count_files(const fs::path& dir) {
    int n = 0;
    if (!fs::exists(dir)) return 0;
    for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
    return n;
  }
  // One line "filmgrad: error: ..." containing `part`.
  static void expect_one_line_error(const fg::test::CommandResult& r, int status, const std::string& part) {
    EXPECT_EQ(r.status, status) << r.out;
    EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;
    EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(part), std::string::npos) << r.out;
  }
  std::string q(const fs::path& p) const { return "'" + p.string() + "'"; }

  fs::path root_, in_;
};

TEST_F(Synth, WritesThreeFoldersAtTheAskedSize) {
  const fs::path out = root_ / "out";
  const fg::test::CommandResult r = run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 32");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("wrote 3 samples"), std::string::npos) << r.out;
  for (const char* name : {"a", "b", "sub/c"}) {
    const fg::data::Image d = fg::data::read_image((out / "damaged" / (std::string(name) + ".png")).string());
    const fg::data::Image c = fg::data::read_image((out / "clean" / (std::string(name) + ".png")).string());
    const fg::data::Image m = fg::data::read_image((out / "mask" / (std::string(name) + ".png")).string());
    EXPECT_EQ(d.pixels.shape(), (fg::Shape{3, 32, 32})) << name;
    EXPECT_EQ(c.pixels.shape(), (fg::Shape{3, 32, 32})) << name;
    EXPECT_EQ(m.pixels.shape(), (fg::Shape{1, 32, 32})) << name;
  }
  EXPECT_EQ(count_files(out), 9);
  // The same command gives the same bytes.
  const fs::path out2 = root_ / "out2";
  ASSERT_EQ(run_filmgrad("synth " + q(in_) + " -o " + q(out2) + " --size 32 --workers 0").status, 0);
  for (const char* f : {"damaged/a.png", "clean/b.png", "mask/sub/c.png"})
    EXPECT_EQ(read_bytes(out / f), read_bytes(out2 / f)) << f;
  // Another seed, other damage.
  const fs::path out3 = root_ / "out3";
  ASSERT_EQ(run_filmgrad("synth " + q(in_) + " --out " + q(out3) + " --size 32 --seed 4").status, 0);
  EXPECT_NE(read_bytes(out / "damaged/a.png"), read_bytes(out3 / "damaged/a.png"));
  EXPECT_EQ(read_bytes(out / "clean/a.png"), read_bytes(out3 / "clean/a.png"));
}

TEST_F(Synth, SizeZeroKeepsEachImageWhole) {
  const fs::path out = root_ / "full";
  const fg::test::CommandResult r = run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 0 --task negative");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::pair<const char*, fg::Shape> expect[] = {{"a", {3, 40, 52}}, {"b", {3, 37, 33}}, {"sub/c", {3, 34, 45}}};
  for (const auto& [name, shape] : expect) {
    const fg::data::Image d = fg::data::read_image((out / "damaged" / (std::string(name) + ".png")).string());
    const fg::data::Image c = fg::data::read_image((out / "clean" / (std::string(name) + ".png")).string());
    const fg::data::Image m = fg::data::read_image((out / "mask" / (std::string(name) + ".png")).string());
    EXPECT_EQ(d.pixels.shape(), shape) << name;
    EXPECT_EQ(c.pixels.shape(), shape) << name;
    EXPECT_EQ(m.pixels.shape(), (fg::Shape{1, shape[1], shape[2]})) << name;
    // Negatives: damaged/ holds (R, G, B_damaged), with R and G exactly the clean ones.
    EXPECT_EQ(d.pixels.slice(0, 0, 2).to_vector(), c.pixels.slice(0, 0, 2).to_vector()) << name;
  }
}

TEST_F(Synth, CountSamplesPerImageFormatAndDepth) {
  write(in_ / "deep.png", 3, 30, 30, 4, 16);
  const fs::path out = root_ / "some";
  fg::test::CommandResult r =
      run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 16 --count 5 --samples-per-image 2 --log-every 2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(count_files(out / "damaged"), 5);
  for (const char* f : {"a-s0.png", "a-s1.png", "b-s0.png", "b-s1.png", "deep-s0.png"})
    EXPECT_TRUE(fs::exists(out / "clean" / f)) << f;
  EXPECT_EQ(fg::data::read_image((out / "clean/deep-s0.png").string()).bit_depth, 16);
  EXPECT_EQ(fg::data::read_image((out / "clean/a-s0.png").string()).bit_depth, 8);
  EXPECT_NE(r.out.find("synth: 2/5 samples"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("synth: 4/5 samples"), std::string::npos) << r.out;

  const fs::path jpg = root_ / "jpg";
  r = run_filmgrad("synth " + q(in_) + " -o " + q(jpg) + " --size 16 --format jpg");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(count_files(jpg), 12);
  EXPECT_EQ(fg::data::read_image((jpg / "damaged/deep.jpg").string()).format, "jpeg");
}

TEST_F(Synth, OutputInsideTheInputIsNotReadBack) {
  const fs::path out = in_ / "pairs";
  ASSERT_EQ(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 16").status, 0);
  EXPECT_EQ(count_files(out), 9);
  const fg::test::CommandResult r = run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 16 --overwrite");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("wrote 3 samples"), std::string::npos) << r.out;
  EXPECT_EQ(count_files(out), 9) << "the first run's outputs were taken for inputs";
}

TEST_F(Synth, ExistingOutputsAreKeptWithoutOverwrite) {
  const fs::path out = root_ / "out";
  ASSERT_EQ(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 16").status, 0);
  const std::string before = read_bytes(out / "damaged/a.png");
  const fg::test::CommandResult r = run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 16 --seed 3");
  expect_one_line_error(r, 1, "--overwrite");
  EXPECT_EQ(read_bytes(out / "damaged/a.png"), before);
  ASSERT_EQ(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size 16 --seed 3 --overwrite").status, 0);
  EXPECT_NE(read_bytes(out / "damaged/a.png"), before);
}

TEST_F(Synth, BadInputIsOneLine) {
  const fs::path out = root_ / "out";
  expect_one_line_error(run_filmgrad("synth -o " + q(out)), 2, "input folder");
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " " + q(in_) + " -o " + q(out)), 2, "one input folder");
  expect_one_line_error(run_filmgrad("synth " + q(in_)), 2, "-o");
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --bogus"), 2, "--bogus");
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --task film"), 2, "film");
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --format gif"), 2, "gif");
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(out) + " --size -1"), 2, "--size");
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(in_)), 2, "input folder");
  expect_one_line_error(run_filmgrad("synth " + q(out / "clean") + " -o " + q(out)), 2, "does not exist");
  expect_one_line_error(run_filmgrad("synth " + q(root_ / "missing") + " -o " + q(out)), 2, "does not exist");
  fs::create_directories(root_ / "empty");
  std::ofstream(root_ / "empty" / "readme.txt") << "no images here";
  expect_one_line_error(run_filmgrad("synth " + q(root_ / "empty") + " -o " + q(out)), 1, "no images");
  EXPECT_FALSE(fs::exists(out)) << "nothing is created before the checks pass";
  // The input inside the output's clean/ folder: synth would overwrite its own inputs.
  fs::create_directories(root_ / "o2" / "clean");
  fs::copy(in_ / "a.png", root_ / "o2" / "clean" / "a.png");
  expect_one_line_error(run_filmgrad("synth " + q(root_ / "o2" / "clean") + " -o " + q(root_ / "o2")), 2, "inside");

  // A corrupt image is named, before anything is written.
  std::ofstream(in_ / "zz_broken.png") << "not a png";
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(out)), 1, "zz_broken.png");
  EXPECT_EQ(count_files(out), 0);
  fs::remove(in_ / "zz_broken.png");

  // An output folder that cannot be created (a path under a regular file: refused even for root).
  std::ofstream(root_ / "file") << "x";
  expect_one_line_error(run_filmgrad("synth " + q(in_) + " -o " + q(root_ / "file" / "sub")), 1,
                        "cannot create the output folder");
}

TEST_F(Synth, HelpWorks) {
  const fg::test::CommandResult r = run_filmgrad("synth --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("usage: filmgrad synth IN_DIR -o OUT_DIR"), std::string::npos) << r.out;
}

}  // namespace
