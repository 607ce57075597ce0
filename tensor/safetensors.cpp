// safetensors read and write, with a small strict JSON reader for the header (objects, arrays, strings,
// integers; that is all the format uses).
#include "tensor/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

namespace fg {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

// ---- JSON ----
struct Json {
  enum Kind { OBJECT, ARRAY, STRING, NUMBER } kind = OBJECT;
  std::vector<std::pair<std::string, Json>> object;  // keeps order; duplicates detected while parsing
  std::vector<Json> array;
  std::string string;
  std::string number;  // the literal text, validated as an integer where one is expected
};

class JsonReader {
 public:
  JsonReader(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  Json parse_document() {
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the header's JSON object");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(source_ + ": corrupt safetensors header (" + why + " at byte " + std::to_string(pos_) +
                "); the file is damaged or not a safetensors file");
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  char peek() {
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end of header");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  Json parse_value(int depth) {
    if (depth > 8) fail("nesting too deep");
    const char c = peek();
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      Json v;
      v.kind = Json::STRING;
      v.string = parse_string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      Json v;
      v.kind = Json::NUMBER;
      const size_t start = pos_;
      if (s_[pos_] == '-') ++pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) fail("non-integer number");
      v.number = s_.substr(start, pos_ - start);
      if (v.number == "-" || v.number.empty()) fail("bad number");
      return v;
    }
    fail("unexpected character");
  }
  Json parse_object(int depth) {
    Json v;
    v.kind = Json::OBJECT;
    std::set<std::string> keys;
    expect('{');
    if (peek() == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      if (peek() != '"') fail("expected a key");
      std::string key = parse_string();
      if (!keys.insert(key).second) fail("duplicate key '" + key + "'");
      expect(':');
      v.object.emplace_back(std::move(key), parse_value(depth + 1));
      const char c = peek();
      ++pos_;
      if (c == '}') return v;
      if (c != ',') fail("expected ',' or '}'");
    }
  }
  Json parse_array(int depth) {
    Json v;
    v.kind = Json::ARRAY;
    expect('[');
    if (peek() == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      v.array.push_back(parse_value(depth + 1));
      const char c = peek();
      ++pos_;
      if (c == ']') return v;
      if (c != ',') fail("expected ',' or ']'");
    }
  }
  std::string parse_string() {
    expect('"');
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (pos_ + 4 > s_.size()) fail("short \\u escape");
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            const char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9') cp |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f') cp |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') cp |= unsigned(h - 'A' + 10);
            else fail("bad \\u escape");
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) fail("surrogate \\u escapes are not supported");
          if (cp < 0x80) {
            out += char(cp);
          } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
          } else {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: fail("bad escape");
      }
    }
  }

  const std::string& s_;
  const std::string& source_;
  size_t pos_ = 0;
};

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
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

// safetensors dtype strings <-> ours.
const char* st_dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
  }
  return "?";
}

bool st_dtype_from_name(const std::string& s, DType& out) {
  for (DType dt : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8}) {
    if (s == st_dtype_name(dt)) {
      out = dt;
      return true;
    }
  }
  return false;
}

uint64_t parse_u64(const Json& v, const std::string& source, const std::string& what) {
  if (v.kind != Json::NUMBER || v.number[0] == '-' || v.number.size() > 18)
    throw Error(source + ": " + what + " must be a non-negative integer below 10^18; the file is corrupt");
  return std::stoull(v.number);
}

}  // namespace

const Tensor& SafeTensors::get(const std::string& name) const {
  auto it = tensors.find(name);
  FG_CHECK(it != tensors.end(), "tensor '" << name << "' is not in the file (it has " << tensors.size()
                                           << " tensors); check the name or the file");
  return it->second;
}

SafeTensors parse_safetensors(const std::string& bytes, const std::string& source) {
  FG_CHECK(bytes.size() >= 8, source << ": file is " << bytes.size()
                                     << " bytes, too short for a safetensors header; it is truncated or not safetensors");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  FG_CHECK(header_len <= kMaxHeaderBytes, source << ": header length " << header_len
                                                 << " exceeds 100 MB; the file is corrupt or not safetensors");
  FG_CHECK(header_len <= bytes.size() - 8, source << ": header length " << header_len << " runs past the end of the "
                                                  << bytes.size() << "-byte file; the file is truncated");
  const std::string header = bytes.substr(8, header_len);
  const Json root = JsonReader(header, source).parse_document();
  FG_CHECK(root.kind == Json::OBJECT, source << ": safetensors header must be a JSON object");
  const uint64_t data_size = bytes.size() - 8 - header_len;
  const char* data = bytes.data() + 8 + header_len;

  SafeTensors out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : root.object) {
    if (name == "__metadata__") {
      FG_CHECK(entry.kind == Json::OBJECT, source << ": __metadata__ must be an object of strings");
      for (const auto& [k, v] : entry.object) {
        FG_CHECK(v.kind == Json::STRING, source << ": __metadata__ value for '" << k << "' must be a string");
        out.metadata[k] = v.string;
      }
      continue;
    }
    const std::string where = source + ": tensor '" + name + "'";
    FG_CHECK(entry.kind == Json::OBJECT, where << " must be described by an object");
    const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (const auto& [k, v] : entry.object) {
      if (k == "dtype") dtype = &v;
      else if (k == "shape") shape = &v;
      else if (k == "data_offsets") offsets = &v;
      else throw Error(where + " has an unknown field '" + k + "'; the file is corrupt");
    }
    FG_CHECK(dtype && shape && offsets, where << " lacks dtype, shape or data_offsets; the file is corrupt");
    DType dt;
    FG_CHECK(dtype->kind == Json::STRING && st_dtype_from_name(dtype->string, dt),
             where << " has dtype '" << dtype->string
                   << "', which filmgrad does not read (F32, F64, F16, BF16, I64, I32, U8); convert it first");
    FG_CHECK(shape->kind == Json::ARRAY && shape->array.size() <= 8, where << " has a bad shape");
    Shape s;
    uint64_t numel = 1;
    // The extent counts a zero dimension as 1: a tensor's strides are products of its other dimensions even when
    // it has no elements, so [0, 10^17, 10^17] (no data) would overflow them.
    uint64_t extent = 1;
    for (const Json& d : shape->array) {
      const uint64_t n = parse_u64(d, source, "tensor '" + name + "' shape entry");
      s.push_back(int64_t(n));
      const uint64_t at_least_one = std::max<uint64_t>(n, 1);
      FG_CHECK(extent <= (uint64_t(1) << 48) / at_least_one, where << " has an absurd shape; the file is corrupt");
      extent *= at_least_one;
      numel *= n;
    }
    FG_CHECK(offsets->kind == Json::ARRAY && offsets->array.size() == 2, where << " data_offsets must be [begin, end]");
    const uint64_t begin = parse_u64(offsets->array[0], source, "data_offsets");
    const uint64_t end = parse_u64(offsets->array[1], source, "data_offsets");
    FG_CHECK(begin <= end, where << " has data_offsets [" << begin << ", " << end << "] out of order");
    FG_CHECK(end <= data_size, where << " ends at byte " << end << " but the data section has " << data_size
                                     << " bytes; the file is truncated");
    FG_CHECK(end - begin == numel * dtype_size(dt), where << " has " << (end - begin) << " bytes but dtype "
                                                          << dtype->string << " x shape " << shape_str(s) << " needs "
                                                          << numel * dtype_size(dt));
    ranges.emplace_back(begin, end);
    Tensor t = Tensor::empty(s, dt);
    if (end > begin) std::memcpy(t.raw_data(), data + begin, end - begin);
    out.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (const auto& [b, e] : ranges) {
    FG_CHECK(b >= cursor, source << ": tensors overlap at byte " << b << "; the file is corrupt");
    FG_CHECK(b == cursor, source << ": the data section has a hole at bytes " << cursor << ".." << b
                                 << "; the file is corrupt");
    cursor = e;
  }
  FG_CHECK(cursor == data_size, source << ": " << (data_size - cursor)
                                       << " bytes after the last tensor are not described by the header; the file is corrupt");
  return out;
}

std::string serialize_safetensors(const SafeTensors& st) {
  std::ostringstream h;
  h << "{";
  bool first = true;
  if (!st.metadata.empty()) {
    h << "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& [k, v] : st.metadata) {
      h << (f2 ? "" : ",") << json_escape(k) << ":" << json_escape(v);
      f2 = false;
    }
    h << "}";
    first = false;
  }
  uint64_t offset = 0;
  std::vector<Tensor> ordered;
  for (const auto& [name, t] : st.tensors) {
    FG_CHECK(t.defined(), "cannot save tensor '" << name << "': it is undefined");
    const uint64_t n = t.nbytes();
    h << (first ? "" : ",") << json_escape(name) << ":{\"dtype\":\"" << st_dtype_name(t.dtype()) << "\",\"shape\":[";
    for (int64_t i = 0; i < t.dim(); ++i) h << (i ? "," : "") << t.size(i);
    h << "],\"data_offsets\":[" << offset << "," << offset + n << "]}";
    offset += n;
    first = false;
    ordered.push_back(t.to(Device::cpu()).contiguous());
  }
  h << "}";
  std::string header = h.str();
  while (header.size() % 8 != 0) header += ' ';
  std::string out(8, '\0');
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((len >> (8 * i)) & 0xff);
  out += header;
  out.reserve(out.size() + offset);
  for (const Tensor& t : ordered) out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  FG_CHECK(in.good(), "cannot open '" << path << "': " << std::strerror(errno) << "; check the path");
  std::ostringstream ss;
  ss << in.rdbuf();
  FG_CHECK(!in.bad(), "error while reading '" << path << "'");
  return ss.str();
}

SafeTensors load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, ".tmp-%08x", unsigned(rd()));
  const std::string tmp = path + suffix;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  FG_CHECK(fd >= 0, "cannot write '" << path << "': " << std::strerror(errno)
                                     << "; check that the folder exists and is writable");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error("cannot write '" + path + "': " + std::strerror(err) + " (nothing was changed; free some space)");
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot write '" + path + "': " + std::strerror(err) + " (nothing was changed)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot replace '" + path + "': " + std::strerror(err) + " (nothing was changed)");
  }
}

void save_safetensors(const std::string& path, const SafeTensors& st) {
  write_file_atomic(path, serialize_safetensors(st));
}

}  // namespace fg
