// The command-line conventions every `filmgrad` subcommand shares: options are "--name value" (or "--name" for a
// switch, or "--name v1 v2" for a fixed number of values), each given at most once; "--help"/"-h" anywhere prints
// the subcommand's help. A mistake in the command line, or an input file that is missing or unreadable, is a
// UsageError (exit status 2); every other failure is an fg::Error (exit status 1). Both are reported as one line
// "filmgrad: error: ...".
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/error.h"

namespace fg::apps {

struct UsageError : fg::Error {
  using fg::Error::Error;
};

struct OptionSpec {
  std::string flag;  // "--steps"
  int values = 1;    // how many values follow the flag: 0 for a switch
};

class ArgParser {
 public:
  // `command` names the subcommand in messages ("inspect").
  ArgParser(std::string command, std::vector<OptionSpec> options);

  // True when "--help" or "-h" is among args (then nothing else is checked, so help always works).
  static bool wants_help(int argc, char** argv, int first);

  // Parses argv[first..argc). Throws UsageError for an unknown option, a positional argument, a missing value or
  // an option given twice.
  void parse(int argc, char** argv, int first);
  // The same for commands that take positional arguments ("synth IN_DIR -o OUT"): arguments that are neither an
  // option nor an option's value are returned in order instead of being refused. An argument starting with '-'
  // is always an option; after "--" every argument is positional (for a file named "-x").
  std::vector<std::string> parse_with_positionals(int argc, char** argv, int first);

  bool has(const std::string& flag) const;
  // The value of a one-value option; `fallback` when absent.
  std::string text(const std::string& flag, const std::string& fallback = "") const;
  // The value of a one-value option that must be given (UsageError naming it otherwise).
  std::string required(const std::string& flag) const;
  // All values of an option (empty when absent).
  const std::vector<std::string>& values(const std::string& flag) const;

  // Numbers, checked strictly ("10x" and "" are errors): UsageError saying what was expected.
  int64_t integer(const std::string& flag, int64_t fallback, int64_t min_value) const;
  uint64_t seed(const std::string& flag, uint64_t fallback) const;
  double positive_number(const std::string& flag, double fallback) const;

  // Converts one value of `flag` (for options with several values).
  int64_t integer_value(const std::string& flag, const std::string& value, int64_t min_value) const;

 private:
  const OptionSpec* find(const std::string& flag) const;
  void parse_impl(int argc, char** argv, int first, std::vector<std::string>* positionals);

  std::string command_;
  std::vector<OptionSpec> options_;
  std::map<std::string, std::vector<std::string>> given_;
};

// Checks that `path` names a readable regular file; UsageError ("<what> 'path' does not exist", "... is a
// folder", "... cannot be read: <reason>") otherwise.
void require_readable_file(const std::string& path, const std::string& what);

// Checks that the folder `path` would be written into exists and is a folder; fg::Error otherwise (the caller
// cannot fix that by retyping the command line, so it is a failure, not a usage error).
void require_output_folder(const std::string& path);

// "12,345,678"
std::string with_thousands(int64_t n);

// --damage-frame N or N:M (train, synth): the frame dust is sized for (data::DatasetOptions::damage_frame_min and
// max), N = M for one size. UsageError for anything but positive integers with N <= M.
void parse_damage_frame(const std::string& text, int64_t* min, int64_t* max);

}  // namespace fg::apps
