// The JSON reader and writer of json.h.
#include "apps/json.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tensor/error.h"

namespace fg::apps {

namespace {

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : s_(text) {}

  Json parse() {
    Json v = value(0);
    skip_space();
    FG_CHECK(i_ == s_.size(), "unexpected text after the JSON value at offset " << i_);
    return v;
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("malformed JSON at offset " + std::to_string(i_) + ": " + what);
  }
  bool consume(const char* word) {
    const size_t n = std::char_traits<char>::length(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }

  Json value(int depth) {
    if (depth > 32) fail("nested too deeply");
    skip_space();
    if (i_ >= s_.size()) fail("the text ends where a value should be");
    Json v;
    const char c = s_[i_];
    if (c == '{') {
      v.kind = Json::OBJECT;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        return v;
      }
      for (;;) {
        skip_space();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a field name");
        std::string key = string_body();
        skip_space();
        if (i_ >= s_.size() || s_[i_] != ':') fail("expected ':'");
        ++i_;
        v.fields.emplace_back(std::move(key), value(depth + 1));
        skip_space();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') {
          ++i_;
          return v;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.kind = Json::ARRAY;
      ++i_;
      skip_space();
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        return v;
      }
      for (;;) {
        v.items.push_back(value(depth + 1));
        skip_space();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') {
          ++i_;
          return v;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      v.kind = Json::STRING;
      v.text = string_body();
      return v;
    }
    if (consume("true")) {
      v.kind = Json::BOOL;
      v.boolean = true;
      return v;
    }
    if (consume("false")) {
      v.kind = Json::BOOL;
      return v;
    }
    if (consume("null")) return v;
    const size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' || s_[i_] == '+' ||
                              s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
      ++i_;
    if (i_ == start) fail("unexpected character");
    v.kind = Json::NUMBER;
    v.text = s_.substr(start, i_ - start);
    return v;
  }

  std::string string_body() {
    ++i_;  // the opening quote
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unfinished escape");
      c = s_[i_++];
      switch (c) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned code = hex4();
          // A code point beyond the Basic Multilingual Plane is a UTF-16 surrogate pair: \uD8xx\uDCxx.
          if (code >= 0xD800 && code <= 0xDBFF) {
            if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') fail("lone high surrogate \\u escape");
            i_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("a high surrogate \\u escape not followed by a low one");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code <= 0xDFFF) {
            fail("lone low surrogate \\u escape");
          }
          append_utf8(code, &out);
          break;
        }
        default:
          fail("unknown escape");
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }

  // The 4 hex digits of a \u escape, strictly (no sign, no spaces, no fewer).
  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    unsigned code = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_ + k];
      unsigned d;
      if (h >= '0' && h <= '9') {
        d = unsigned(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        d = unsigned(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        d = unsigned(h - 'A' + 10);
      } else {
        fail("bad \\u escape (4 hex digits expected)");
      }
      code = code * 16 + d;
    }
    i_ += 4;
    return code;
  }
  static void append_utf8(unsigned code, std::string* out) {
    if (code < 0x80) {
      *out += char(code);
    } else if (code < 0x800) {
      *out += char(0xC0 | (code >> 6));
      *out += char(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      *out += char(0xE0 | (code >> 12));
      *out += char(0x80 | ((code >> 6) & 0x3F));
      *out += char(0x80 | (code & 0x3F));
    } else {
      *out += char(0xF0 | (code >> 18));
      *out += char(0x80 | ((code >> 12) & 0x3F));
      *out += char(0x80 | ((code >> 6) & 0x3F));
      *out += char(0x80 | (code & 0x3F));
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace

Json parse_json(const std::string& text) { return JsonParser(text).parse(); }

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// Shortest text that reads back as the same double; JSON has no NaN or infinity, so those become null.
std::string json_number(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  return buf;
}

std::string json_serialize(const Json& v) {
  switch (v.kind) {
    case Json::NUL:
      return "null";
    case Json::BOOL:
      return v.boolean ? "true" : "false";
    case Json::NUMBER:
      return v.text;
    case Json::STRING:
      return json_quote(v.text);
    case Json::ARRAY: {
      std::string out = "[";
      for (size_t i = 0; i < v.items.size(); ++i) out += (i ? "," : "") + json_serialize(v.items[i]);
      return out + "]";
    }
    case Json::OBJECT: {
      std::string out = "{";
      for (size_t i = 0; i < v.fields.size(); ++i)
        out += (i ? "," : "") + json_quote(v.fields[i].first) + ":" + json_serialize(v.fields[i].second);
      return out + "}";
    }
  }
  return "null";
}

}  // namespace fg::apps
