// A small JSON reader and writer for what filmgrad stores as JSON: the model description and training options in
// every checkpoint's metadata, and the metrics log. Numbers keep the text they were written with, so integers
// (seeds, steps) read back exactly; json_number writes the shortest text that reads back as the same double.
// \u escapes are read strictly (4 hex digits; surrogate pairs for code points beyond the Basic Multilingual Plane;
// a lone surrogate is an error) into UTF-8; NaN/Infinity are not JSON (json_number writes them as null).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace fg::apps {

struct Json {
  enum Kind { NUL, BOOL, NUMBER, STRING, ARRAY, OBJECT } kind = NUL;
  bool boolean = false;
  std::string text;  // STRING: the value; NUMBER: the number as written (integers read back exactly)
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;

  const Json* find(const std::string& key) const {
    for (const auto& f : fields)
      if (f.first == key) return &f.second;
    return nullptr;
  }
};

// Parses one JSON value (the whole text); throws fg::Error "malformed JSON at offset N: what" otherwise.
Json parse_json(const std::string& text);

std::string json_quote(const std::string& s);  // a JSON string literal, quotes included
std::string json_number(double x);             // shortest round-tripping text; null for NaN and infinities
std::string json_serialize(const Json& v);     // compact, fields in their order

}  // namespace fg::apps
