// Fuzz target: safetensors parsing (tensor/safetensors.h). A file that parses must serialize, and what it
// serializes to must parse back to the same tensors and metadata and serialize again to the same bytes (the
// header promises save -> load -> save is byte-identical).
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz/fuzz_util.h"
#include "tensor/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fg::fuzz::finding;
  fg::SafeTensors st;
  bool parsed = false;
  fg::fuzz::refusal_allowed([&] {
    st = fg::parse_safetensors(fg::fuzz::as_string(data, size), "fuzz.safetensors");
    parsed = true;
  });
  if (!parsed) return 0;
  const std::string once = fg::serialize_safetensors(st);
  const fg::SafeTensors back = fg::parse_safetensors(once, "reserialized.safetensors");
  if (back.metadata != st.metadata) finding("the metadata changed in a round trip", "");
  if (back.tensors.size() != st.tensors.size()) finding("the tensor count changed in a round trip", "");
  for (const auto& [name, t] : st.tensors) {
    auto it = back.tensors.find(name);
    if (it == back.tensors.end()) finding("a tensor was lost in a round trip", name);
    const fg::Tensor& u = it->second;
    if (u.shape() != t.shape() || u.dtype() != t.dtype() || u.nbytes() != t.nbytes() ||
        (t.nbytes() > 0 && std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()) != 0))
      finding("a tensor changed in a round trip", name);
  }
  if (fg::serialize_safetensors(back) != once) finding("save -> load -> save is not byte-identical", "");
  return 0;
}
