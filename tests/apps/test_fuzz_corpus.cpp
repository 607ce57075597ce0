// The fuzz targets' committed corpus (fuzz/corpus/<target>/: the seeds and every input a fuzzer found a bug with,
// named regression-*) replayed through the same entry points as the targets in fuzz/, in the normal build and
// without clang: each input is accepted or refused with a one-line fg::Error, never anything else. And the
// escaping that keeps messages on one line (tensor/error.h), which the first fuzz runs showed was missing: a
// name read from a file, an argument or a PNG chunk type holding a newline or a carriage return made the message
// of the error that quoted it span several lines.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/json.h"
#include "apps/model_options.h"
#include "apps/task.h"
#include "apps/train.h"
#include "data/image_io.h"
#include "fuzz/checkpoint_net.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace fs = std::filesystem;

namespace fg {
namespace {

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "" when f returns or throws an fg::Error with a one-line message; otherwise what went wrong.
std::string problem_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string m = e.what();
    if (m.empty()) return "an empty message";
    if (m.find_first_of("\n\r") != std::string::npos) return "a message of several lines: " + m;
  } catch (const std::exception& e) {
    return std::string("an exception that is not an fg::Error: ") + e.what();
  }
  return "";
}

std::vector<fs::path> corpus(const std::string& target) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(test::source_path("fuzz/corpus/" + target)))
    if (e.is_regular_file()) files.push_back(e.path());
  return files;
}

void replay(const std::string& target, const std::function<void(const std::string&)>& entry) {
  const std::vector<fs::path> files = corpus(target);
  EXPECT_FALSE(files.empty()) << "fuzz/corpus/" << target << " is empty";
  for (const fs::path& f : files) {
    const std::string bytes = bytes_of(f);
    EXPECT_EQ(problem_of([&] { entry(bytes); }), "") << f;
  }
}

TEST(FuzzCorpus, Image) {
  replay("image", [](const std::string& bytes) {
    data::ImageLimits limits;
    limits.max_side = 2048;
    limits.max_decoded_bytes = int64_t(1) << 24;
    data::decode_image(bytes, "fuzz", limits);
  });
}

TEST(FuzzCorpus, Safetensors) {
  replay("safetensors", [](const std::string& bytes) { parse_safetensors(bytes, "fuzz.safetensors"); });
}

TEST(FuzzCorpus, Checkpoint) {
  const fs::path dir = fs::temp_directory_path() / ("fg_fuzz_corpus_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "last.safetensors").string();
  replay("checkpoint", [&](const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    for (const std::function<void()>& f :
         std::vector<std::function<void()>>{[&] { nn::read_checkpoint_info(path); },
                                            [&] {
                                              auto net = fuzz::make_checkpoint_net();
                                              nn::AdamW opt(net->parameters(), nn::AdamWOptions());
                                              nn::load_checkpoint(path, *net, &opt, fuzz::kCheckpointModel);
                                            },
                                            [&] {
                                              auto net = fuzz::make_checkpoint_net();
                                              nn::load_weights(path, *net, /*strict=*/false);
                                            },
                                            [&] { apps::read_run_options(dir.string()).validate(); }}) {
      const std::string p = problem_of(f);
      if (!p.empty()) throw std::runtime_error(p);
    }
  });
  fs::remove_all(dir);
}

TEST(FuzzCorpus, Json) {
  replay("json", [](const std::string& text) {
    for (const std::function<void()>& f : std::vector<std::function<void()>>{
             [&] { apps::parse_json(text); }, [&] { apps::ModelConfig::from_json(text); },
             [&] { apps::TrainOptions::from_json(text).validate(); }}) {
      const std::string p = problem_of(f);
      if (!p.empty()) throw std::runtime_error(p);
    }
  });
}

TEST(FuzzCorpus, CommandLine) {
  replay("cmdline", [](const std::string& text) {
    std::vector<std::string> words = {"filmgrad"};
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
      words.push_back(text.substr(start, nl - start));
    words.push_back(text.substr(start));
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    const int argc = int(words.size());
    if (words[1] == "train") {
      apps::parse_train_command_line(argc, argv.data()).options.validate();
    } else if (words[1] == "inspect" || words[1] == "forward") {
      apps::ArgParser args(words[1], apps::model_option_specs());
      args.parse(argc, argv.data(), 2);
      apps::read_model_options(args);
    } else {
      apps::ArgParser args(words[1], {{"-o"}, {"--n"}, {"--pair", 2}});
      args.parse_with_positionals(argc, argv.data(), 2);
    }
  });
}

// The inputs the fuzzers found, each refused with one line that shows the control character as an escape.
TEST(FuzzCorpus, ControlCharactersInMessagesAreEscaped) {
  EXPECT_EQ(std::string(Error("a\nb\r\tc\x1b[31m\x7f").what()), "a\\nb\\r\\tc\\x1b[31m\\x7f");
  EXPECT_EQ(std::string(Error(Error("x\ny").what()).what()), "x\\ny");  // escaping twice changes nothing
  EXPECT_EQ(std::string(apps::UsageError("bad\n").what()), "bad\\n");

  const std::string json = bytes_of(test::source_path("fuzz/corpus/json/regression-control-characters-in-a-name"));
  const std::string m1 = test::error_of([&] { apps::ModelConfig::from_json(json); });
  EXPECT_NE(m1.find("the model 'dynamic\\r\\x00\\x00\\x00t'"), std::string::npos) << m1;

  const std::string png =
      bytes_of(test::source_path("fuzz/corpus/image/regression-control-characters-in-a-png-chunk-type"));
  const std::string m2 = test::error_of([&] { data::decode_image(png, "x.png"); });
  EXPECT_NE(m2.find("PNG chunk not known"), std::string::npos) << m2;
  EXPECT_EQ(m2.find_first_of("\n\r"), std::string::npos) << m2;

  const std::string cmd = test::error_of([] {
    std::string a0 = "filmgrad", a1 = "train", a2 = "--out", a3 = "run", a4 = "\r-unfroxen-epochs";
    char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data(), nullptr};
    apps::parse_train_command_line(5, argv);
  });
  EXPECT_NE(cmd.find("'\\r-unfroxen-epochs'"), std::string::npos) << cmd;
}

}  // namespace
}  // namespace fg
