// Shared test helpers; see test_util.h.
#include "tests/support/test_util.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "data/image_io.h"
#include "tensor/philox.h"

namespace fg::test {

Tensor random_tensor(const Shape& shape, uint64_t seed, DType dtype, double lo, double hi) {
  Tensor t = Tensor::empty(shape, dtype);
  Generator gen(seed);
  uniform_(t, gen, lo, hi);
  return t;
}

Tensor random_normal(const Shape& shape, uint64_t seed, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  Generator gen(seed);
  normal_(t, gen);
  return t;
}

double nmse(const Tensor& ref, const Tensor& got) {
  const std::vector<double> a = ref.to_vector(), b = got.to_vector();
  double err = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err += (a[i] - b[i]) * (a[i] - b[i]);
    norm += a[i] * a[i];
  }
  if (norm == 0) return err;
  return err / norm;
}

::testing::AssertionResult all_close(const Tensor& ref, const Tensor& got, double atol, double rtol) {
  if (ref.shape() != got.shape())
    return ::testing::AssertionFailure() << "shape mismatch: expected " << shape_str(ref.shape()) << ", got "
                                         << shape_str(got.shape());
  const std::vector<double> a = ref.to_vector(), b = got.to_vector();
  const Shape strides = contiguous_strides(ref.shape());
  int bad = 0;
  double worst = 0;
  std::ostringstream os;
  for (size_t i = 0; i < a.size(); ++i) {
    bool ok;
    if (std::isnan(a[i]) || std::isnan(b[i])) ok = std::isnan(a[i]) && std::isnan(b[i]);
    else if (std::isinf(a[i]) || std::isinf(b[i])) ok = a[i] == b[i];
    else ok = std::abs(a[i] - b[i]) <= atol + rtol * std::abs(a[i]);
    if (ok) continue;
    if (!std::isnan(a[i]) && !std::isnan(b[i])) worst = std::max(worst, std::abs(a[i] - b[i]));
    if (bad < 5) {
      os << "\n  at [";
      int64_t rem = int64_t(i);
      for (size_t d = 0; d < strides.size(); ++d) {
        os << (d ? ", " : "") << rem / strides[d];
        rem %= strides[d];
      }
      os << "]: expected " << a[i] << ", got " << b[i];
    }
    ++bad;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << a.size() << " elements differ (atol " << atol << ", rtol "
                                       << rtol << ", worst |diff| " << worst << "; NMSE " << nmse(ref, got) << ")"
                                       << os.str();
}

::testing::AssertionResult grad_ok(const std::function<Variable(const std::vector<Variable>&)>& f,
                                   const std::vector<Tensor>& inputs, std::vector<bool> requires_grad,
                                   GradCheckOptions options) {
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) xs.push_back(t.to(DType::F64));
  const GradCheckResult r = gradcheck(f, xs, options, std::move(requires_grad));
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "gradient check failed: " << r.message;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

CommandResult run_filmgrad(const std::string& args) {
  const std::string cmd = std::string(FG_BINARY_DIR) + "/filmgrad " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed for: " + cmd};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string source_path(const std::string& relative) {
#ifdef FG_SOURCE_DIR
  return std::string(FG_SOURCE_DIR) + "/" + relative;
#else
  return relative;
#endif
}

const SafeTensors& golden(const std::string& name) {
  static std::map<std::string, SafeTensors> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  const std::string path = source_path("tests/golden/" + name + ".safetensors");
  try {
    return cache.emplace(name, load_safetensors(path)).first->second;
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (regenerate the golden files with: /usr/bin/python3 tools/make_golden.py)");
  }
}

void write_wave_photos(const std::string& dir, int count) {
  for (int i = 0; i < count; ++i) {
    Tensor img = Tensor::empty({3, 40, 48});
    float* p = img.data<float>();
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 40; ++y)
        for (int x = 0; x < 48; ++x)
          p[(c * 40 + y) * 48 + x] =
              float(0.5 + 0.4 * std::sin(0.1 * (c + 1) * x + 0.7 * i + 0.05 * (i % 5 - 2) * y + c));
    char name[32];
    std::snprintf(name, sizeof name, "img%02d.png", i);
    data::write_image(dir + "/" + name, data::make_image(img));
  }
}

}  // namespace fg::test
