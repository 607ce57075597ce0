// Fuzz target: the JSON that runs and checkpoints carry (apps/json.h), read as a value, as a model description
// (ModelConfig::from_json, a checkpoint's "config") and as training options (TrainOptions::from_json, what
// --resume reads, then validate()). What parses must serialize to text that parses back to the same value, and
// options that are read and valid must write back to JSON that reads to the same options.
#include <cstdint>
#include <string>

#include "apps/json.h"
#include "apps/task.h"
#include "apps/train.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fg::fuzz::finding;
  const std::string text = fg::fuzz::as_string(data, size);
  fg::fuzz::refusal_allowed([&] {
    const fg::apps::Json v = fg::apps::parse_json(text);
    const std::string once = fg::apps::json_serialize(v);
    std::string twice;
    try {
      twice = fg::apps::json_serialize(fg::apps::parse_json(once));
    } catch (const fg::Error& e) {
      finding("serialized JSON does not parse back", e.what());
    }
    if (twice != once) finding("JSON serialization is not stable", once + " -> " + twice);
  });
  fg::fuzz::refusal_allowed([&] {
    const fg::apps::ModelConfig c = fg::apps::ModelConfig::from_json(text);
    if (fg::apps::ModelConfig::from_json(c.to_json()).to_json() != c.to_json())
      finding("a model description does not round-trip", c.to_json());
  });
  fg::fuzz::refusal_allowed([&] {
    const fg::apps::TrainOptions o = fg::apps::TrainOptions::from_json(text);
    // Only options validate() accepts need to round-trip: JSON has no infinity, so a number that overflows to one
    // ("lr": 1e999) reads, writes back as null and then does not read, but validate() refuses it first.
    o.validate();
    const std::string once = o.to_json();
    std::string twice;
    try {
      twice = fg::apps::TrainOptions::from_json(once).to_json();
    } catch (const fg::Error& e) {
      finding("training options do not read back", e.what());
    }
    if (twice != once) finding("training options do not round-trip", once + " -> " + twice);
  });
  return 0;
}
