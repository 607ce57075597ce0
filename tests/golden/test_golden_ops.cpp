// Every op of autograd/ops.h against PyTorch 1.13, from tests/golden/ops.safetensors (written by
// tools/make_golden.py; see docs/golden.md). The cases come from the file: each metadata entry names a case, its op
// family, its op, its inputs, the inputs whose gradients are stored and the op's parameters. For each case the
// op is rebuilt from that entry, run forward, compared with PyTorch's output, run backward with PyTorch's upstream
// gradient, and every stored input gradient (and side output, such as batch norm's running statistics) compared.
//
// Each case runs three ways: f64 with contiguous inputs, f64 with every input and the upstream gradient made
// non-contiguous (transposed in memory, every other element used, NaN in the gaps so a wrong stride reads NaN),
// and f32 with contiguous inputs. A case whose op has no handler here, whose family has no TEST, or whose stored
// tensors are not all compared fails: nothing in the file is skipped silently.
//
// Tolerances. f64: |got - ref| <= 1e-10 + 1e-8 |ref| everywhere; the cases are small (at most a few hundred terms
// per sum), so an honest f64 implementation differs from PyTorch's only in summation order, around 1e-15. f32:
// the inputs are rounded to f32 and the result compared with the f64 answer, so the error is the f32 rounding of
// the inputs carried through the op plus the op's own f32 arithmetic: 1e-6 + 1e-4 |ref| (see tolerance()).
//
// Set FG_GOLDEN_VERBOSE=1 to print one line per case with the largest errors seen in each mode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"
#include "tests/support/test_util.h"

namespace fg {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// A small JSON reader for the metadata entries (objects, arrays, strings, numbers, booleans, null).

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  bool has(const std::string& key) const { return kind == Kind::Object && object.count(key) != 0; }
  const Json& at(const std::string& key) const {
    FG_CHECK(kind == Kind::Object, "golden metadata: looked up '" << key << "' in something that is not an object");
    auto it = object.find(key);
    FG_CHECK(it != object.end(), "golden metadata: missing key '" << key << "'");
    return it->second;
  }
};

class JsonReader {
 public:
  explicit JsonReader(const std::string& text) : s_(text) {}

  Json parse() {
    Json v = value();
    skip_space();
    FG_CHECK(pos_ == s_.size(), "golden metadata: trailing characters at " << pos_ << " in: " << s_);
    return v;
  }

 private:
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    skip_space();
    FG_CHECK(pos_ < s_.size(), "golden metadata: unexpected end of: " << s_);
    return s_[pos_];
  }
  void expect(char c) {
    FG_CHECK(peek() == c, "golden metadata: expected '" << c << "' at " << pos_ << " in: " << s_);
    ++pos_;
  }
  bool literal(const char* word) {
    const size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Json value() {
    Json v;
    const char c = peek();
    if (c == '{') {
      v.kind = Json::Kind::Object;
      ++pos_;
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        FG_CHECK(peek() == '"', "golden metadata: expected a key at " << pos_ << " in: " << s_);
        std::string key = string_body();
        expect(':');
        v.object[key] = value();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Kind::Array;
      ++pos_;
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.array.push_back(value());
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::Kind::String;
      v.string = string_body();
      return v;
    }
    if (literal("true")) {
      v.kind = Json::Kind::Bool;
      v.boolean = true;
      return v;
    }
    if (literal("false")) {
      v.kind = Json::Kind::Bool;
      return v;
    }
    if (literal("null")) return v;
    const char* begin = s_.c_str() + pos_;
    char* end = nullptr;
    v.number = std::strtod(begin, &end);
    FG_CHECK(end != begin, "golden metadata: unexpected '" << c << "' at " << pos_ << " in: " << s_);
    v.kind = Json::Kind::Number;
    pos_ += size_t(end - begin);
    return v;
  }

  std::string string_body() {
    expect('"');
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        FG_CHECK(pos_ < s_.size(), "golden metadata: unterminated escape in: " << s_);
        const char e = s_[pos_++];
        switch (e) {
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'r':
            c = '\r';
            break;
          case 'b':
            c = '\b';
            break;
          case 'f':
            c = '\f';
            break;
          case 'u': {
            FG_CHECK(pos_ + 4 <= s_.size(), "golden metadata: short \\u escape in: " << s_);
            const long code = std::strtol(s_.substr(pos_, 4).c_str(), nullptr, 16);
            FG_CHECK(code < 128, "golden metadata: non-ASCII \\u escape in: " << s_);
            c = char(code);
            pos_ += 4;
            break;
          }
          default:
            c = e;  // \" \\ \/
        }
      }
      out.push_back(c);
    }
    expect('"');
    return out;
  }

  const std::string& s_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// The cases in the file.

struct GoldenCase {
  std::string name, family, op;
  std::vector<std::string> inputs, grads, extras;
  Json params;
};

std::vector<std::string> string_list(const Json& j) {
  std::vector<std::string> out;
  for (const Json& e : j.array) out.push_back(e.string);
  return out;
}

const SafeTensors& golden_file() {
  return test::golden("ops");
}

// Metadata keys starting with '_' describe the file (format, generator, torch version); all others are cases.
const std::vector<GoldenCase>& all_cases() {
  static const std::vector<GoldenCase> cases = [] {
    std::vector<GoldenCase> out;
    for (const auto& [key, text] : golden_file().metadata) {
      if (!key.empty() && key[0] == '_') continue;
      const Json j = JsonReader(text).parse();
      GoldenCase c;
      c.name = key;
      c.family = j.at("family").string;
      c.op = j.at("op").string;
      c.inputs = string_list(j.at("inputs"));
      c.grads = string_list(j.at("grads"));
      if (j.has("extras")) c.extras = string_list(j.at("extras"));
      c.params = j.at("params");
      out.push_back(std::move(c));
    }
    return out;
  }();
  return cases;
}

// The families with a TEST below; a case of any other family fails EveryCaseHasAHandler.
const std::set<std::string> kFamilies = {"elementwise", "view",   "reduce", "activation", "dropout",       "cast",
                                         "conv",        "linear", "pool",   "pad",        "pixel_shuffle", "upsample",
                                         "batch_norm",  "loss",   "gram",   "ssim",       "self_attention"};

// ---------------------------------------------------------------------------------------------------------------
// Running one case.

struct Mode {
  const char* label;
  DType dtype;
  bool noncontiguous;
};
const Mode kModes[] = {{"f64", DType::F64, false}, {"f64 strided", DType::F64, true}, {"f32", DType::F32, false}};

struct Tolerance {
  double atol, rtol;
};

Tolerance tolerance(const Mode& m) {
  if (m.dtype == DType::F64) return {1e-10, 1e-8};
  // f32 inputs are the f64 inputs rounded (relative error 6e-8), carried through the op, plus the op's own f32
  // arithmetic. The largest errors seen are ~1e-5 absolute on values of ~100 (exp, BCE with logits of 700) and
  // ~6e-6 on self-attention gradients of order 1-10, i.e. below 1e-6 relative: rtol 1e-4 leaves a wide margin
  // for other summation orders; atol 1e-6 covers values near zero.
  return {1e-6, 1e-4};
}

// A copy of t whose elements sit transposed in memory (2+ dims) with a gap after each element (NaN-filled), so
// that an op which ignores strides reads NaN.
Tensor noncontiguous_copy(const Tensor& t) {
  if (t.numel() <= 1) return t.clone();
  Shape storage_shape = t.shape();
  const size_t nd = storage_shape.size();
  if (nd >= 2) std::swap(storage_shape[nd - 1], storage_shape[nd - 2]);
  storage_shape[nd - 1] *= 2;
  Tensor big = Tensor::full(storage_shape, std::numeric_limits<double>::quiet_NaN(), t.dtype());
  Tensor view = big.slice(-1, 0, storage_shape[nd - 1], 2);
  if (nd >= 2) view = view.transpose(-1, -2);
  view.copy_(t);
  return view;
}

class CaseContext {
 public:
  CaseContext(const GoldenCase& c, const Mode& mode) : case_(c), mode_(mode) {
    for (const std::string& in : c.inputs) {
      Tensor t = stored(in).to(mode.dtype).clone();
      if (mode.noncontiguous) t = noncontiguous_copy(t);
      const bool needs_grad = std::find(c.grads.begin(), c.grads.end(), in) != c.grads.end();
      vars_[in] = Variable(t, needs_grad);
    }
  }

  const GoldenCase& golden_case() const { return case_; }
  Tensor stored(const std::string& suffix) const { return golden_file().get(case_.name + "." + suffix); }

  bool has(const std::string& input) const { return vars_.count(input) != 0; }
  // A required input.
  const Variable& var(const std::string& input) const {
    auto it = vars_.find(input);
    FG_CHECK(it != vars_.end(), "golden case " << case_.name << ": the handler needs input '" << input
                                               << "', which the file does not list");
    return it->second;
  }
  // An optional input (a bias, an affine weight): undefined when the case leaves it out.
  Variable optional(const std::string& input) const { return has(input) ? var(input) : Variable(); }
  // State the op updates in place (batch norm's running statistics): a fresh contiguous tensor in the mode's dtype,
  // or undefined when the case leaves it out.
  Tensor buffer(const std::string& input) const {
    if (!has(input)) return Tensor();
    return stored(input).to(mode_.dtype).clone();
  }
  // All inputs, in the file's order (concat).
  std::vector<Variable> all_inputs() const {
    std::vector<Variable> out;
    for (const std::string& in : case_.inputs) out.push_back(var(in));
    return out;
  }

  const Json& param(const std::string& key) const { return case_.params.at(key); }
  double real(const std::string& key) const { return param(key).number; }
  int64_t integer(const std::string& key) const { return to_int(param(key), key); }
  bool flag(const std::string& key) const {
    FG_CHECK(param(key).kind == Json::Kind::Bool, "golden case " << case_.name << ": '" << key << "' is not a bool");
    return param(key).boolean;
  }
  std::vector<int64_t> integers(const std::string& key) const {
    std::vector<int64_t> out;
    for (const Json& e : param(key).array) out.push_back(to_int(e, key));
    return out;
  }
  const std::string& text(const std::string& key) const { return param(key).string; }

  // A side output, compared with "<case>.<name>" after the forward.
  void side_output(const std::string& name, const Tensor& t) { side_outputs_.emplace_back(name, t); }
  const std::vector<std::pair<std::string, Tensor>>& side_outputs() const { return side_outputs_; }

 private:
  int64_t to_int(const Json& j, const std::string& key) const {
    FG_CHECK(j.kind == Json::Kind::Number && j.number == std::floor(j.number),
             "golden case " << case_.name << ": '" << key << "' is not an integer");
    return int64_t(j.number);
  }

  const GoldenCase& case_;
  Mode mode_;
  std::map<std::string, Variable> vars_;
  std::vector<std::pair<std::string, Tensor>> side_outputs_;
};

using Handler = std::function<Variable(CaseContext&)>;

const std::map<std::string, Handler>& handlers() {
  static const std::map<std::string, Handler> table = {
      // elementwise
      {"add", [](CaseContext& c) { return add(c.var("a"), c.var("b")); }},
      {"sub", [](CaseContext& c) { return sub(c.var("a"), c.var("b")); }},
      {"mul", [](CaseContext& c) { return mul(c.var("a"), c.var("b")); }},
      {"div", [](CaseContext& c) { return div(c.var("a"), c.var("b")); }},
      {"neg", [](CaseContext& c) { return neg(c.var("x")); }},
      {"add_scalar", [](CaseContext& c) { return add_scalar(c.var("x"), c.real("s")); }},
      {"mul_scalar", [](CaseContext& c) { return mul_scalar(c.var("x"), c.real("s")); }},
      {"pow_scalar", [](CaseContext& c) { return pow_scalar(c.var("x"), c.real("p")); }},
      {"sqrt", [](CaseContext& c) { return fg::sqrt(c.var("x")); }},
      {"exp", [](CaseContext& c) { return fg::exp(c.var("x")); }},
      {"log", [](CaseContext& c) { return fg::log(c.var("x")); }},
      {"abs", [](CaseContext& c) { return fg::abs(c.var("x")); }},
      // views
      {"reshape", [](CaseContext& c) { return reshape(c.var("x"), c.integers("shape")); }},
      {"flatten", [](CaseContext& c) { return flatten(c.var("x"), c.integer("start_dim"), c.integer("end_dim")); }},
      {"permute", [](CaseContext& c) { return permute(c.var("x"), c.integers("dims")); }},
      {"transpose", [](CaseContext& c) { return transpose(c.var("x"), c.integer("a"), c.integer("b")); }},
      {"expand", [](CaseContext& c) { return expand(c.var("x"), c.integers("shape")); }},
      {"slice",
       [](CaseContext& c) {
         return slice(c.var("x"), c.integer("dim"), c.integer("start"), c.integer("end"), c.integer("step"));
       }},
      {"concat", [](CaseContext& c) { return concat(c.all_inputs(), c.integer("dim")); }},
      // reductions
      {"sum", [](CaseContext& c) { return sum(c.var("x"), c.integers("dims"), c.flag("keepdim")); }},
      {"mean", [](CaseContext& c) { return mean(c.var("x"), c.integers("dims"), c.flag("keepdim")); }},
      // activations
      {"relu", [](CaseContext& c) { return relu(c.var("x")); }},
      {"leaky_relu", [](CaseContext& c) { return leaky_relu(c.var("x"), c.real("negative_slope")); }},
      {"sigmoid", [](CaseContext& c) { return sigmoid(c.var("x")); }},
      {"tanh", [](CaseContext& c) { return fg::tanh(c.var("x")); }},
      {"sigmoid_range", [](CaseContext& c) { return sigmoid_range(c.var("x"), c.real("lo"), c.real("hi")); }},
      {"softmax", [](CaseContext& c) { return softmax(c.var("x"), c.integer("dim")); }},
      // dropout: only the deterministic settings (eval, p = 0) are in the file
      {"dropout",
       [](CaseContext& c) {
         Generator gen(7);
         return dropout(c.var("x"), c.real("p"), c.flag("training"), gen);
       }},
      {"dropout2d",
       [](CaseContext& c) {
         Generator gen(7);
         return dropout2d(c.var("x"), c.real("p"), c.flag("training"), gen);
       }},
      {"cast", [](CaseContext& c) { return cast(c.var("x"), dtype_from_name(c.text("dtype"))); }},
      // convolution and matrix products
      {"conv2d",
       [](CaseContext& c) {
         Conv2dParams p;
         p.stride_h = c.integer("stride_h");
         p.stride_w = c.integer("stride_w");
         p.pad_h = c.integer("pad_h");
         p.pad_w = c.integer("pad_w");
         p.dilation_h = c.integer("dilation_h");
         p.dilation_w = c.integer("dilation_w");
         return conv2d(c.var("x"), c.var("w"), c.optional("b"), p);
       }},
      {"conv1d",
       [](CaseContext& c) {
         return conv1d(c.var("x"), c.var("w"), c.optional("b"), c.integer("stride"), c.integer("padding"),
                       c.integer("dilation"));
       }},
      {"linear", [](CaseContext& c) { return linear(c.var("x"), c.var("w"), c.optional("b")); }},
      {"matmul", [](CaseContext& c) { return matmul(c.var("a"), c.var("b")); }},
      {"bmm", [](CaseContext& c) { return bmm(c.var("a"), c.var("b")); }},
      // pooling, padding, resampling
      {"max_pool2d",
       [](CaseContext& c) {
         return max_pool2d(c.var("x"), c.integer("kernel"), c.integer("stride"), c.integer("padding"));
       }},
      {"avg_pool2d",
       [](CaseContext& c) {
         return avg_pool2d(c.var("x"), c.integer("kernel"), c.integer("stride"), c.integer("padding"),
                           c.flag("count_include_pad"));
       }},
      {"replication_pad2d",
       [](CaseContext& c) {
         return replication_pad2d(c.var("x"), c.integer("left"), c.integer("right"), c.integer("top"),
                                  c.integer("bottom"));
       }},
      {"zero_pad2d",
       [](CaseContext& c) {
         return zero_pad2d(c.var("x"), c.integer("left"), c.integer("right"), c.integer("top"), c.integer("bottom"));
       }},
      {"pixel_shuffle", [](CaseContext& c) { return pixel_shuffle(c.var("x"), c.integer("r")); }},
      {"pixel_unshuffle", [](CaseContext& c) { return pixel_unshuffle(c.var("x"), c.integer("r")); }},
      {"upsample_nearest2d",
       [](CaseContext& c) { return upsample_nearest2d(c.var("x"), c.integer("out_h"), c.integer("out_w")); }},
      // batch norm: the running statistics are updated in place and compared after the forward
      {"batch_norm",
       [](CaseContext& c) {
         Tensor running_mean = c.buffer("running_mean");
         Tensor running_var = c.buffer("running_var");
         Variable y = batch_norm(c.var("x"), c.optional("weight"), c.optional("bias"), running_mean, running_var,
                                 c.flag("training"), c.real("momentum"), c.real("eps"));
         if (running_mean.defined()) c.side_output("running_mean_after", running_mean);
         if (running_var.defined()) c.side_output("running_var_after", running_var);
         return y;
       }},
      // losses and image statistics
      {"mse_loss", [](CaseContext& c) { return mse_loss(c.var("pred"), c.var("target")); }},
      {"l1_loss", [](CaseContext& c) { return l1_loss(c.var("pred"), c.var("target")); }},
      {"bce_with_logits", [](CaseContext& c) { return bce_with_logits(c.var("logits"), c.var("target")); }},
      {"gram_matrix", [](CaseContext& c) { return gram_matrix(c.var("x")); }},
      {"ssim",
       [](CaseContext& c) { return ssim(c.var("img1"), c.var("img2"), c.integer("window_size"), c.real("sigma")); }},
      {"self_attention",
       [](CaseContext& c) {
         return self_attention(c.var("x"), c.var("wq"), c.var("wk"), c.var("wv"), c.var("gamma"));
       }},
  };
  return table;
}

// Largest |got - ref| over the finite elements compared (for the verbose report).
struct ErrorStats {
  double max_abs = 0.0;
};

// Compares one tensor; `what` names it in the message. Shapes must match exactly (PyTorch's shape is part of the
// semantics); when only the shape differs the message also says whether the values agree.
::testing::AssertionResult compare(const std::string& what, const Tensor& ref, const Tensor& got, Tolerance tol,
                                   ErrorStats& stats) {
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": filmgrad returned no tensor";
  Tensor got64 = got.to(DType::F64).contiguous();
  const std::vector<double> r = ref.to_vector(), g = got64.to_vector();
  if (r.size() == g.size()) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (std::isfinite(r[i]) && std::isfinite(g[i])) stats.max_abs = std::max(stats.max_abs, std::fabs(g[i] - r[i]));
    }
  }
  if (got.shape() != ref.shape()) {
    std::string values = "the element counts differ";
    if (r.size() == g.size()) {
      values = test::all_close(ref.reshape(got.shape()), got64, tol.atol, tol.rtol) ? "the values agree"
                                                                                    : "the values differ too";
    }
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(got.shape()) << ", PyTorch "
                                         << shape_str(ref.shape()) << " (" << values << ")";
  }
  ::testing::AssertionResult close = test::all_close(ref, got64, tol.atol, tol.rtol);
  if (!close) {
    return ::testing::AssertionFailure() << what << " differs from PyTorch (atol " << tol.atol << ", rtol " << tol.rtol
                                         << ", max abs error " << stats.max_abs << "): " << close.message();
  }
  return ::testing::AssertionSuccess();
}

struct ModeResult {
  bool ok = true;
  std::vector<std::string> failures;
  ErrorStats output, grads;
};

ModeResult run_case(const GoldenCase& gc, const Mode& mode) {
  ModeResult result;
  auto fail = [&](const std::string& message) {
    result.ok = false;
    result.failures.push_back(message);
  };
  auto check = [&](const ::testing::AssertionResult& r) {
    if (!r) fail(r.message());
  };
  auto handler = handlers().find(gc.op);
  if (handler == handlers().end()) {
    fail("no handler for op '" + gc.op + "'");
    return result;
  }
  const Tolerance tol = tolerance(mode);
  try {
    CaseContext ctx(gc, mode);
    Variable out = handler->second(ctx);
    if (!out.defined()) {
      fail("the op returned an undefined Variable");
      return result;
    }
    const Tensor y_ref = ctx.stored("y");
    check(compare("output", y_ref, out.data(), tol, result.output));

    std::set<std::string> produced;
    for (const auto& [name, t] : ctx.side_outputs()) {
      produced.insert(name);
      ErrorStats ignored;
      check(compare(name, ctx.stored(name), t, tol, ignored));
    }
    for (const std::string& name : gc.extras) {
      if (!produced.count(name)) fail("side output '" + name + "' is in the file but the handler gave none");
    }

    std::vector<Variable> wrt;
    for (const std::string& in : gc.grads) wrt.push_back(ctx.var(in));
    if (wrt.empty()) return result;
    if (!out.requires_grad()) {
      fail("the output does not require a gradient although inputs do");
      return result;
    }
    // The upstream gradient in the output's dtype (a cast's output may be f16) and shape (a shape mismatch was
    // reported above; the gradients are still checked).
    Tensor gy = ctx.stored("gy");
    if (gy.numel() != out.numel()) {
      fail("cannot run backward: the output has " + std::to_string(out.numel()) + " elements, PyTorch's " +
           std::to_string(gy.numel()));
      return result;
    }
    gy = gy.reshape(out.shape()).to(out.dtype()).clone();
    if (mode.noncontiguous) gy = noncontiguous_copy(gy);
    const std::vector<Tensor> grads = grad(out, wrt, gy);
    if (grads.size() != wrt.size()) {
      fail("fg::grad returned " + std::to_string(grads.size()) + " gradients for " + std::to_string(wrt.size()) +
           " inputs");
      return result;
    }
    for (size_t i = 0; i < wrt.size(); ++i) {
      const std::string& in = gc.grads[i];
      if (!grads[i].defined()) {
        fail("no gradient for input '" + in + "'");
        continue;
      }
      if (grads[i].dtype() != wrt[i].dtype()) {
        fail("gradient of '" + in + "' has dtype " + dtype_name(grads[i].dtype()) + ", the input " +
             dtype_name(wrt[i].dtype()));
      }
      check(compare("gradient of '" + in + "'", ctx.stored("g" + in), grads[i], tol, result.grads));
    }
  } catch (const std::exception& e) {
    fail(std::string("threw: ") + e.what());
  }
  return result;
}

bool verbose() {
  const char* v = std::getenv("FG_GOLDEN_VERBOSE");
  return v && *v && std::string(v) != "0";
}

void run_family(const std::string& family) {
  ASSERT_TRUE(kFamilies.count(family)) << family;
  int n = 0, passed = 0;
  for (const GoldenCase& gc : all_cases()) {
    if (gc.family != family) continue;
    ++n;
    bool all_ok = true;
    std::ostringstream line;
    line << "[ golden   ] " << gc.name;
    for (const Mode& mode : kModes) {
      const ModeResult r = run_case(gc, mode);
      all_ok = all_ok && r.ok;
      for (const std::string& f : r.failures) {
        ADD_FAILURE() << "golden case " << gc.name << " (" << gc.op << ", " << mode.label << "): " << f;
      }
      char buf[160];
      std::snprintf(buf, sizeof buf, " | %s %s y %.1e g %.1e", mode.label, r.ok ? "ok" : "FAIL", r.output.max_abs,
                    r.grads.max_abs);
      line << buf;
    }
    if (all_ok) ++passed;
    if (verbose() || !all_ok) std::printf("%s\n", line.str().c_str());
  }
  std::printf("[ golden   ] %s: %d of %d cases agree with PyTorch in f64, f64 strided and f32\n", family.c_str(),
              passed, n);
  EXPECT_GT(n, 0) << "the golden file has no case of family '" << family << "'";
}

// ---------------------------------------------------------------------------------------------------------------
// The file itself: every case runnable, every stored tensor compared by someone.

TEST(GoldenOps, FileDescribesItself) {
  const SafeTensors& f = golden_file();
  ASSERT_TRUE(f.metadata.count("_torch_version")) << "regenerate with /usr/bin/python3 tools/make_golden.py";
  ASSERT_TRUE(f.metadata.count("_format"));
  EXPECT_EQ(f.metadata.at("_format"), "filmgrad-golden-ops-1");
  EXPECT_GE(all_cases().size(), size_t(100));
  for (const auto& [name, t] : f.tensors) EXPECT_EQ(t.dtype(), DType::F64) << name;
}

TEST(GoldenOps, EveryCaseHasAHandler) {
  for (const GoldenCase& gc : all_cases()) {
    EXPECT_TRUE(handlers().count(gc.op)) << "golden case " << gc.name << ": no C++ handler for op '" << gc.op
                                         << "'; add one to handlers() in " << __FILE__;
    EXPECT_TRUE(kFamilies.count(gc.family))
        << "golden case " << gc.name << ": family '" << gc.family << "' has no TEST in " << __FILE__;
  }
}

// Every tensor in the file belongs to a case and is one that run_case compares or feeds in, so a gradient or side
// output added by the script cannot go unchecked.
TEST(GoldenOps, EveryStoredTensorIsUsed) {
  std::set<std::string> expected;
  for (const GoldenCase& gc : all_cases()) {
    for (const std::string& in : gc.inputs) expected.insert(gc.name + "." + in);
    for (const std::string& in : gc.grads) expected.insert(gc.name + ".g" + in);
    for (const std::string& e : gc.extras) expected.insert(gc.name + "." + e);
    expected.insert(gc.name + ".y");
    expected.insert(gc.name + ".gy");
  }
  for (const auto& [name, t] : golden_file().tensors) {
    EXPECT_TRUE(expected.count(name)) << "tensor '" << name << "' belongs to no case the test reads";
  }
  for (const std::string& name : expected) {
    EXPECT_TRUE(golden_file().has(name)) << "the metadata promises tensor '" << name << "' but the file lacks it";
  }
}

TEST(GoldenOps, NoncontiguousCopyIsAView) {
  Tensor t = Tensor::arange(12, DType::F64).reshape({3, 4});
  Tensor v = noncontiguous_copy(t);
  EXPECT_FALSE(v.is_contiguous());
  EXPECT_EQ(v.shape(), t.shape());
  EXPECT_EQ(v.to_vector(), t.to_vector());
}

// ---------------------------------------------------------------------------------------------------------------
// One TEST per op family, so a failure names the family; the case and mode are in each failure message.

TEST(GoldenOps, Elementwise) {
  run_family("elementwise");
}
TEST(GoldenOps, View) {
  run_family("view");
}
TEST(GoldenOps, Reduce) {
  run_family("reduce");
}
TEST(GoldenOps, Activation) {
  run_family("activation");
}
TEST(GoldenOps, Dropout) {
  run_family("dropout");
}
TEST(GoldenOps, Cast) {
  run_family("cast");
}
TEST(GoldenOps, Conv) {
  run_family("conv");
}
TEST(GoldenOps, Linear) {
  run_family("linear");
}
TEST(GoldenOps, Pool) {
  run_family("pool");
}
TEST(GoldenOps, Pad) {
  run_family("pad");
}
TEST(GoldenOps, PixelShuffle) {
  run_family("pixel_shuffle");
}
TEST(GoldenOps, Upsample) {
  run_family("upsample");
}
TEST(GoldenOps, BatchNorm) {
  run_family("batch_norm");
}
TEST(GoldenOps, Loss) {
  run_family("loss");
}
TEST(GoldenOps, Gram) {
  run_family("gram");
}
TEST(GoldenOps, Ssim) {
  run_family("ssim");
}
TEST(GoldenOps, SelfAttention) {
  run_family("self_attention");
}

}  // namespace
}  // namespace fg
