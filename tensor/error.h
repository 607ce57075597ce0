// Errors. A user-caused problem throws fg::Error with a one-line message that says what was wrong and what to
// do. A broken internal invariant (a programmer error) throws fg::InternalError through FG_ASSERT, so tests can
// catch it and the command-line tools can report it instead of aborting.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace fg {

// `text` with its control characters written as escapes (\n, \r, \t, \xNN), so that it prints on one line.
inline std::string one_line(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

// Messages quote what the user gave (file names, arguments, names and values read from damaged files), which may
// hold newlines or terminal control codes; they are escaped here, once for every message, so that each stays the
// one line "filmgrad: error: ..." promises.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(one_line(what)) {}
};

class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

}  // namespace fg

// FG_CHECK(cond, "message " << value): throw fg::Error when cond is false.
#define FG_CHECK(cond, msg)                         \
  do {                                              \
    if (!(cond)) {                                  \
      std::ostringstream fg_check_os_;              \
      fg_check_os_ << msg;                          \
      throw ::fg::Error(fg_check_os_.str());        \
    }                                               \
  } while (0)

// FG_ASSERT(cond, "message"): an internal invariant; names the file and line.
#define FG_ASSERT(cond, msg)                                                                  \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::ostringstream fg_assert_os_;                                                       \
      fg_assert_os_ << "internal error at " << __FILE__ << ":" << __LINE__ << ": " << #cond   \
                    << ": " << msg;                                                           \
      throw ::fg::InternalError(fg_assert_os_.str());                                         \
    }                                                                                         \
  } while (0)
