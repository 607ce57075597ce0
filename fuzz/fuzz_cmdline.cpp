// Fuzz target: the command-line parsers (apps/args.h and what reads a command's options), never a command itself.
// The input is a command line, one argument per line, starting with the subcommand:
//   train ...            parse_train_command_line (apps/train.h): every option read and checked into
//                        TrainOptions, which validate() must then accept; nothing is trained or written
//   inspect|forward ...  the model options they share (apps/model_options.h)
//   anything else        ArgParser on its own, with positionals and options of 0 to 3 values, then every
//                        number reader on every value
#include <cstdint>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/model_options.h"
#include "apps/train.h"
#include "fuzz/fuzz_util.h"

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t nl = text.find('\n', start);
    const size_t end = nl == std::string::npos ? text.size() : nl;
    out.push_back(text.substr(start, end - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

void parse_generic(int argc, char** argv) {
  fg::apps::ArgParser args("fuzz",
                           {{"--switch", 0}, {"--n"}, {"--seed"}, {"--x"}, {"--pair", 2}, {"--triple", 3}, {"-o"}});
  args.parse_with_positionals(argc, argv, 2);
  for (const char* flag : {"--n", "--seed", "--x", "-o"}) {
    fg::fuzz::refusal_allowed([&] { args.integer(flag, 0, 0); });
    fg::fuzz::refusal_allowed([&] { args.integer(flag, 0, 1); });
    fg::fuzz::refusal_allowed([&] { args.seed(flag, 0); });
    fg::fuzz::refusal_allowed([&] { args.positive_number(flag, 1.0); });
    fg::fuzz::refusal_allowed([&] { args.required(flag); });
  }
  for (const char* flag : {"--pair", "--triple"})
    for (const std::string& v : args.values(flag)) fg::fuzz::refusal_allowed([&] { args.integer_value(flag, v, -5); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words = split_lines(fg::fuzz::as_string(data, size));
  words.insert(words.begin(), "filmgrad");
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  const int argc = int(words.size());
  if (argc < 2 || fg::apps::ArgParser::wants_help(argc, argv.data(), 2)) return 0;
  const std::string command = words[1];
  fg::fuzz::refusal_allowed([&] {
    if (command == "train") {
      fg::apps::parse_train_command_line(argc, argv.data()).options.validate();
    } else if (command == "inspect" || command == "forward") {
      fg::apps::ArgParser args(command, fg::apps::model_option_specs());
      args.parse(argc, argv.data(), 2);
      fg::apps::read_model_options(args);
    } else {
      parse_generic(argc, argv.data());
    }
  });
  return 0;
}
