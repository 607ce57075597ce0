// safetensors: round trips of every dtype, byte-identical re-save, and every kind of corrupt file refused
// with a message that names the problem.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "tensor/safetensors.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

std::string header_file(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + json + std::string(data_bytes, '\x01');
}

void expect_error_containing(const std::string& bytes, const std::string& needle) {
  try {
    parse_safetensors(bytes, "x.safetensors");
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafeTensors, RoundTripEveryDtypeAndMetadata) {
  SafeTensors st;
  for (DType dt : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::U8})
    st.tensors[std::string("t_") + dtype_name(dt)] = test::random_tensor({2, 3}, 1, DType::F64, 0, 100).to(dt);
  st.tensors["scalar"] = Tensor::scalar(3.0);
  st.tensors["empty"] = Tensor::zeros({0, 4});
  st.tensors["view"] = test::random_tensor({4, 5}, 2).transpose(0, 1);  // saved as its logical contents
  st.metadata["model"] = "dynamic_unet \"quoted\"\n";
  const std::string bytes = serialize_safetensors(st);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  EXPECT_EQ(header_len % 8, 0u);  // the data section starts 8-byte aligned
  const SafeTensors back = parse_safetensors(bytes);
  EXPECT_EQ(back.metadata, st.metadata);
  ASSERT_EQ(back.tensors.size(), st.tensors.size());
  for (const auto& [name, t] : st.tensors) {
    const Tensor& b = back.get(name);
    EXPECT_EQ(b.dtype(), t.dtype()) << name;
    EXPECT_EQ(b.shape(), t.shape()) << name;
    EXPECT_EQ(b.to_vector(), t.to_vector()) << name;
  }
  EXPECT_EQ(serialize_safetensors(back), bytes);  // save -> load -> save is byte-identical
  EXPECT_THROW(back.get("missing"), Error);
}

TEST(SafeTensors, ReadsAHandWrittenFile) {
  // A file as the reference implementation writes it: header padded with spaces, offsets into the data section.
  std::string json = R"({"b":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string bytes = header_file(json, 0);
  const float a[2] = {1.5f, -2.0f};
  const int32_t b[2] = {7, -9};
  bytes.append(reinterpret_cast<const char*>(a), 8);
  bytes.append(reinterpret_cast<const char*>(b), 8);
  const SafeTensors st = parse_safetensors(bytes);
  EXPECT_EQ(st.get("a").to_vector(), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(st.get("b").to_vector(), (std::vector<double>{7, -9}));
}

TEST(SafeTensors, CorruptFilesAreRefusedWithAReason) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_error_containing("abc", "too short");
  expect_error_containing(header_file(ok, 8).substr(0, 20), "runs past the end");
  expect_error_containing(header_file(ok, 4), "truncated");
  expect_error_containing(header_file(ok, 12), "not described by the header");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8), "corrupt");
  expect_error_containing(header_file(R"([1,2])", 0), "JSON object");
  expect_error_containing(header_file(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8), "Q7");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "non-negative");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "out of order");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8), "duplicate");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12), "hole");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "overlap");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8), "unknown field");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "lacks");
  expect_error_containing(header_file(R"({"__metadata__":{"k":1}})", 0), "must be a string");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "non-integer");
  // An empty tensor whose other dimensions multiply past 2^63 (the first fuzz run's finding: its strides overflowed).
  expect_error_containing(
      header_file(R"({"a":{"dtype":"F32","shape":[0,100000000000000000,100000000000000000],"data_offsets":[0,0]}})",
                  0),
      "absurd shape");
  expect_error_containing(header_file(R"({"a":{"dtype":"F32","shape":[100000000,0,100000000],"data_offsets":[0,0]}})", 0),
                          "absurd shape");
  std::string huge(8, '\0');
  huge[4] = 0x10;  // header length 2^36
  expect_error_containing(huge, "exceeds");
}

// The input fuzz_safetensors timed out on: an empty F16 tensor of shape (8000000009, 0, 20), read and saved again.
TEST(SafeTensors, AnEmptyTensorWithAHugeDimensionRoundTrips) {
  const std::string bytes = header_file(R"({"a":{"dtype":"F16","shape":[8000000009,0,20],"data_offsets":[0,0]}})", 0);
  const SafeTensors st = parse_safetensors(bytes);
  EXPECT_EQ(st.get("a").shape(), (Shape{8000000009, 0, 20}));
  const SafeTensors back = parse_safetensors(serialize_safetensors(st));
  EXPECT_EQ(back.get("a").shape(), (Shape{8000000009, 0, 20}));
  EXPECT_EQ(back.get("a").dtype(), DType::F16);
}

TEST(SafeTensors, SaveIsAtomicAndReportsUnwritablePaths) {
  const auto dir = std::filesystem::temp_directory_path() / ("fg_st_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "w.safetensors").string();
  SafeTensors st;
  st.tensors["w"] = Tensor::ones({3});
  save_safetensors(path, st);
  EXPECT_EQ(load_safetensors(path).get("w").to_vector(), (std::vector<double>{1, 1, 1}));
  // no temporary files are left behind
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_THROW(save_safetensors((dir / "no_such_dir" / "x.safetensors").string(), st), Error);
  EXPECT_THROW(load_safetensors((dir / "missing.safetensors").string()), Error);
  std::filesystem::remove_all(dir);
}

TEST(SafeTensors, AFailedWriteLeavesThePreviousFileIntact) {
  // A write that runs out of room part-way: RLIMIT_FSIZE makes write() fail with EFBIG once the file would pass
  // 4 KiB, as a full disk fails with ENOSPC. The old file must survive and no temporary file may remain.
  const auto dir = std::filesystem::temp_directory_path() / ("fg_st_full_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "ckpt.safetensors").string();
  write_file_atomic(path, "previous contents");
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  std::string message;
  try {
    write_file_atomic(path, std::string(1 << 20, 'x'));
  } catch (const Error& e) {
    threw = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_NE(message.find("nothing was changed"), std::string::npos) << message;
  EXPECT_EQ(read_file(path), "previous contents");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fg
