// The shared command-line parser of args.h.
#include "apps/args.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace fg::apps {

ArgParser::ArgParser(std::string command, std::vector<OptionSpec> options)
    : command_(std::move(command)), options_(std::move(options)) {}

bool ArgParser::wants_help(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

const OptionSpec* ArgParser::find(const std::string& flag) const {
  for (const OptionSpec& o : options_)
    if (o.flag == flag) return &o;
  return nullptr;
}

void ArgParser::parse(int argc, char** argv, int first) {
  parse_impl(argc, argv, first, nullptr);
}

std::vector<std::string> ArgParser::parse_with_positionals(int argc, char** argv, int first) {
  std::vector<std::string> positionals;
  parse_impl(argc, argv, first, &positionals);
  return positionals;
}

void ArgParser::parse_impl(int argc, char** argv, int first, std::vector<std::string>* positionals) {
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if (positionals != nullptr && a == "--") {
      for (++i; i < argc; ++i) positionals->push_back(argv[i]);
      break;
    }
    const OptionSpec* spec = find(a);
    if (spec == nullptr) {
      if (a.rfind("-", 0) == 0) throw UsageError("unknown option '" + a + "' for " + command_);
      if (positionals != nullptr) {
        positionals->push_back(a);
        continue;
      }
      throw UsageError("unexpected argument '" + a + "' for " + command_ + " (options start with --)");
    }
    if (given_.count(a)) throw UsageError("option " + a + " is given twice");
    std::vector<std::string> vals;
    for (int k = 0; k < spec->values; ++k) {
      if (i + 1 >= argc) {
        throw UsageError(a +
                         (spec->values == 1 ? " needs a value" : " needs " + std::to_string(spec->values) + " values"));
      }
      vals.push_back(argv[++i]);
    }
    given_[a] = std::move(vals);
  }
}

bool ArgParser::has(const std::string& flag) const {
  return given_.count(flag) != 0;
}

std::string ArgParser::text(const std::string& flag, const std::string& fallback) const {
  auto it = given_.find(flag);
  if (it == given_.end() || it->second.empty()) return fallback;
  return it->second[0];
}

std::string ArgParser::required(const std::string& flag) const {
  if (!has(flag)) throw UsageError(command_ + " needs " + flag);
  const std::string v = text(flag);
  if (v.empty()) throw UsageError(flag + " needs a non-empty value");
  return v;
}

const std::vector<std::string>& ArgParser::values(const std::string& flag) const {
  static const std::vector<std::string> none;
  auto it = given_.find(flag);
  return it == given_.end() ? none : it->second;
}

int64_t ArgParser::integer_value(const std::string& flag, const std::string& v, int64_t min_value) const {
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  const std::string what =
      min_value == 0 ? "a non-negative integer" : "an integer of at least " + std::to_string(min_value);
  if (v.empty() || *end != '\0' || errno == ERANGE || n < min_value)
    throw UsageError(flag + " needs " + what + ", got '" + v + "'");
  return int64_t(n);
}

int64_t ArgParser::integer(const std::string& flag, int64_t fallback, int64_t min_value) const {
  if (!has(flag)) return fallback;
  return integer_value(flag, text(flag), min_value);
}

uint64_t ArgParser::seed(const std::string& flag, uint64_t fallback) const {
  if (!has(flag)) return fallback;
  const std::string v = text(flag);
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || v[0] == '-' || *end != '\0' || errno == ERANGE)
    throw UsageError(flag + " needs a non-negative integer, got '" + v + "'");
  return uint64_t(n);
}

double ArgParser::positive_number(const std::string& flag, double fallback) const {
  if (!has(flag)) return fallback;
  const std::string v = text(flag);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !std::isfinite(x) || x <= 0)
    throw UsageError(flag + " needs a positive number, got '" + v + "'");
  return x;
}

void require_readable_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) throw UsageError(what + " '" + path + "' does not exist");
  if (fs::is_directory(st)) throw UsageError(what + " '" + path + "' is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(what + " '" + path + "' cannot be read: " + std::strerror(errno));
}

void require_output_folder(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path folder = fs::path(path).parent_path();
  if (folder.empty()) folder = ".";
  std::error_code ec;
  const fs::file_status st = fs::status(folder, ec);
  FG_CHECK(fs::exists(st),
           "cannot write '" << path << "': the folder '" << folder.string() << "' does not exist; create it first");
  FG_CHECK(fs::is_directory(st), "cannot write '" << path << "': '" << folder.string() << "' is not a folder");
  FG_CHECK(::access(folder.c_str(), W_OK) == 0,
           "cannot write '" << path << "': the folder '" << folder.string() << "' is not writable");
  FG_CHECK(!fs::is_directory(fs::status(path, ec)), "cannot write '" << path << "': it is a folder");
}

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

void parse_damage_frame(const std::string& text, int64_t* min, int64_t* max) {
  const auto number = [&](const std::string& part) -> int64_t {
    char* end = nullptr;
    errno = 0;
    const long long v = part.empty() ? 0 : std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || errno != 0 || v < 1 || v > (int64_t(1) << 20))
      throw UsageError("--damage-frame takes a frame size in pixels, N or N:M (e.g. 256 or 128:768), got '" + text +
                       "'");
    return int64_t(v);
  };
  const size_t colon = text.find(':');
  *min = number(text.substr(0, colon));
  *max = colon == std::string::npos ? *min : number(text.substr(colon + 1));
  if (*max < *min) throw UsageError("--damage-frame N:M needs N <= M, got '" + text + "'");
}

}  // namespace fg::apps
