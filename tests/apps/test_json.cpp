// The JSON reader and writer of checkpoints' metadata and the metrics log (apps/json.h): strings round-trip, \u
// escapes are read strictly (they once went through strtoul, so "\uzzzz" read as a NUL byte and "\u12zz" as 0x12),
// surrogate pairs become one 4-byte UTF-8 character, and malformed text is an fg::Error naming its offset.
#include <gtest/gtest.h>

#include <string>

#include "apps/json.h"
#include "tensor/error.h"

namespace {

using fg::apps::Json;
using fg::apps::json_quote;
using fg::apps::parse_json;

std::string read_string(const std::string& literal) {
  const Json j = parse_json(literal);
  EXPECT_EQ(j.kind, Json::STRING) << literal;
  return j.text;
}

void expect_malformed(const std::string& text, const std::string& what) {
  try {
    parse_json(text);
    ADD_FAILURE() << "accepted: " << text;
  } catch (const fg::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("malformed JSON at offset"), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  }
}

TEST(Json, StringsRoundTripThroughQuote) {
  for (const std::string& s : {std::string(""), std::string("plain"), std::string("quote \" backslash \\ slash /"),
                              std::string("tab\tnewline\nreturn\r"), std::string("\x01\x1f control", 10),
                              std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\x9e")}) {
    EXPECT_EQ(read_string(json_quote(s)), s);
  }
}

TEST(Json, UnicodeEscapesBecomeUtf8) {
  EXPECT_EQ(read_string("\"\\u0041\\u00e9\\u20AC\""), "A\xc3\xa9\xe2\x82\xac");
  // U+1F39E (film frames) as the surrogate pair other writers (Python's json.dumps) produce.
  EXPECT_EQ(read_string("\"\\ud83c\\udf9e\""), "\xf0\x9f\x8e\x9e");
  EXPECT_EQ(read_string("\"\\uD83C\\uDF9E!\""), "\xf0\x9f\x8e\x9e!");
}

TEST(Json, MalformedUnicodeEscapesAreErrors) {
  expect_malformed("\"\\uzzzz\"", "4 hex digits");
  expect_malformed("\"\\u12zz\"", "4 hex digits");
  expect_malformed("\"\\u+123\"", "4 hex digits");
  expect_malformed("\"\\u 123\"", "4 hex digits");
  expect_malformed("\"\\u12", "short");
  expect_malformed("\"\\ud83c\"", "lone high surrogate");
  expect_malformed("\"\\ud83cx\"", "lone high surrogate");
  expect_malformed("\"\\ud83c\\u0041\"", "not followed by a low one");
  expect_malformed("\"\\udf9e\"", "lone low surrogate");
}

TEST(Json, ObjectsKeepTheirFieldsAndNumbersTheirText) {
  const Json j = parse_json("{\"seed\": 18446744073709551615, \"lr\": 3e-3, \"name\": \"a\\u0062\", \"x\": [1, null]}");
  ASSERT_EQ(j.kind, Json::OBJECT);
  ASSERT_NE(j.find("seed"), nullptr);
  EXPECT_EQ(j.find("seed")->text, "18446744073709551615");
  EXPECT_EQ(j.find("lr")->text, "3e-3");
  EXPECT_EQ(j.find("name")->text, "ab");
  ASSERT_EQ(j.find("x")->items.size(), 2u);
  EXPECT_EQ(j.find("x")->items[1].kind, Json::NUL);
  EXPECT_EQ(j.find("missing"), nullptr);
  expect_malformed("{\"a\": 1,}", "");
  expect_malformed("[1, 2", "");
}

}  // namespace
