// What every fuzz target shares: the answer a target accepts from the code under test. Bad input must be refused
// with an fg::Error (UsageError is one) whose message is one line; everything else is a finding that libFuzzer
// reports with the input that caused it: a crash, a sanitizer report, an InternalError (a broken invariant),
// std::bad_alloc (an allocation the header checks should have refused), any other exception, or an fg::Error
// whose message spans several lines (it would break the "filmgrad: error: ..." line).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tensor/error.h"

namespace fg::fuzz {

[[noreturn]] inline void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "FUZZ FINDING: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Runs f; an fg::Error with a one-line message is an accepted refusal.
template <typename F>
void refusal_allowed(F&& f) {
  try {
    f();
  } catch (const fg::Error& e) {
    const char* msg = e.what();
    if (msg[0] == '\0') finding("an fg::Error with an empty message", "");
    if (std::strpbrk(msg, "\n\r") != nullptr) finding("an fg::Error message of more than one line", msg);
  }
}

inline std::string as_string(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace fg::fuzz
