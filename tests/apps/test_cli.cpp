// The filmgrad program as a user meets it: help, bad usage (exit 2, one line), an unwritable output folder
// (exit 1, one line, nothing written), and a short demo run that writes its sample grid.
#include <gtest/gtest.h>

#include "tests/support/test_util.h"
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

TEST(Cli, HelpAndVersion) {
  const fg::test::CommandResult h = fg::test::run_filmgrad("--help");
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("usage: filmgrad"), std::string::npos);
  EXPECT_EQ(fg::test::run_filmgrad("demo --help").status, 0);
  const char* wino = std::getenv("FG_CPU_WINOGRAD");
  const std::string wino_value = wino ? wino : "";
  unsetenv("FG_CPU_WINOGRAD");
  const fg::test::CommandResult v = fg::test::run_filmgrad("version");
  EXPECT_EQ(v.status, 0);
  EXPECT_NE(v.out.find("filmgrad"), std::string::npos);
}

// `filmgrad version` run with the environment variable `name` set to `value` (unset when null), the variable
// restored afterwards.
fg::test::CommandResult version_with(const char* name, const char* value) {
  const char* saved = std::getenv(name);
  const std::string saved_value = saved ? saved : "";
  if (value) {
    setenv(name, value, 1);
  } else {
    unsetenv(name);
  }
  const fg::test::CommandResult r = fg::test::run_filmgrad("version");
  if (saved) {
    setenv(name, saved_value.c_str(), 1);
  } else {
    unsetenv(name);
  }
  return r;
}

// `filmgrad version` names the CPU GEMM kernels and convolution algorithms it picked (kernels/cpu/gemm.h,
// kernels/conv2d.h); a bad FG_CPU_KERNELS is one line and exit 1 before any work.
TEST(Cli, VersionNamesTheCpuKernelsAndRejectsABadSelection) {
  const fg::test::CommandResult v = version_with("FG_CPU_WINOGRAD", nullptr);
  EXPECT_EQ(v.status, 0);
  EXPECT_NE(v.out.find("cpu gemm: "), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("cpu conv2d: winograd F(2x2,3x3)"), std::string::npos) << v.out;
  const fg::test::CommandResult off = version_with("FG_CPU_WINOGRAD", "0");
  EXPECT_NE(off.out.find("cpu conv2d: im2col + gemm (winograd turned off by FG_CPU_WINOGRAD=0)"), std::string::npos)
      << off.out;
  const fg::test::CommandResult bad_wino = version_with("FG_CPU_WINOGRAD", "off");
  EXPECT_EQ(bad_wino.status, 1) << bad_wino.out;
  EXPECT_EQ(fg::test::count_lines(bad_wino.out), 1) << bad_wino.out;
  EXPECT_EQ(bad_wino.out.rfind("filmgrad: error: FG_CPU_WINOGRAD='off' is not 0 or 1", 0), 0u) << bad_wino.out;
  const fg::test::CommandResult bad = version_with("FG_CPU_KERNELS", "sse9");
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_EQ(fg::test::count_lines(bad.out), 1) << bad.out;
  EXPECT_EQ(bad.out.rfind("filmgrad: error: FG_CPU_KERNELS='sse9'", 0), 0u) << bad.out;
}

TEST(Cli, BadUsageIsOneLineAndExitStatus2) {
  for (const char* args : {"", "frobnicate", "demo --bogus", "demo --steps", "demo --steps ten", "demo --steps -3"}) {
    const fg::test::CommandResult r = fg::test::run_filmgrad(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.out;
    if (std::string(args).empty()) continue;  // no command: the usage text is printed
    EXPECT_EQ(fg::test::count_lines(r.out), 1) << args << ": " << r.out;
    EXPECT_EQ(r.out.rfind("filmgrad: error: ", 0), 0u) << r.out;
  }
}

TEST(Cli, UnwritableOutputFolderIsAClearError) {
  if (geteuid() == 0) {
    // root may write anywhere; use a path under a regular file instead, which nobody can create
    const std::string file = std::filesystem::temp_directory_path() / ("fg_cli_file_" + std::to_string(getpid()));
    std::ofstream(file) << "x";
    const fg::test::CommandResult r = fg::test::run_filmgrad("demo --steps 1 --out " + file + "/sub");
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;
    EXPECT_NE(r.out.find("cannot create the output folder"), std::string::npos) << r.out;
    std::filesystem::remove(file);
    return;
  }
  const fg::test::CommandResult r = fg::test::run_filmgrad("demo --steps 1 --out /proc/fg_cannot_exist");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_EQ(fg::test::count_lines(r.out), 1) << r.out;
}

TEST(Cli, ShortDemoTrainsAndWritesItsGrid) {
  const auto dir = std::filesystem::temp_directory_path() / ("fg_cli_demo_" + std::to_string(getpid()));
  const fg::test::CommandResult r = fg::test::run_filmgrad("demo --steps 60 --out " + dir.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("held-out PSNR"), std::string::npos) << r.out;
  std::ifstream in(dir / "samples.ppm", std::ios::binary);
  std::string magic;
  int w = 0, h = 0, maxval = 0;
  in >> magic >> w >> h >> maxval;
  EXPECT_EQ(magic, "P6");
  EXPECT_EQ(maxval, 255);
  EXPECT_EQ(w, 3 * 128 + 2 * 4);  // three 32 px images scaled x4 with 4 px gaps
  EXPECT_EQ(h, 4 * 128 + 3 * 4);
  in.get();
  const std::string pixels((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(pixels.size(), size_t(w) * size_t(h) * 3);
  std::filesystem::remove_all(dir);
}

}  // namespace
