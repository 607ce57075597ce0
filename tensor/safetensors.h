// The safetensors format: 8-byte little-endian header length N, N bytes of JSON header, then raw little-endian
// tensor data. The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the start of the data) plus an optional "__metadata__" map of strings to strings.
//
// Loading validates every field and refuses, with a message naming the file and the field: a file shorter than
// its header, a header that is not valid JSON or is larger than 100 MB, an unknown dtype, a negative shape, offsets
// that are out of order, overlap, leave holes, run past the end or disagree with dtype x shape, duplicate names.
// Saving is deterministic (tensors sorted by name, header padded with spaces to a multiple of 8) and atomic
// (written to PATH.tmp-XXXX, flushed, then renamed), so a file saved, loaded and saved again is byte-identical.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fg {

struct SafeTensors {
  std::map<std::string, Tensor> tensors;  // CPU tensors, contiguous
  std::map<std::string, std::string> metadata;

  const Tensor& get(const std::string& name) const;  // throws fg::Error naming the missing tensor
  bool has(const std::string& name) const { return tensors.count(name) != 0; }
};

SafeTensors load_safetensors(const std::string& path);
SafeTensors parse_safetensors(const std::string& bytes, const std::string& source_name = "<memory>");
std::string serialize_safetensors(const SafeTensors& st);
void save_safetensors(const std::string& path, const SafeTensors& st);

// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename. Throws fg::Error with the
// reason (for example a full disk) and leaves any previous file at `path` untouched.
void write_file_atomic(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);  // throws fg::Error when missing or unreadable

}  // namespace fg
