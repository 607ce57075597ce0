// The demo of demo.h. The damage model is a small stand-in for the dissertation's "dustify" (SPEC.md B): soft dark
// and light specks of random size plus one thin light scratch per image.
#include "apps/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "autograd/ops.h"
#include "models/tiny_unet.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tensor/philox.h"
#include "tensor/safetensors.h"

namespace fg::apps {

namespace {

constexpr int64_t kSize = 32, kTrain = 1024, kTest = 64, kBatch = 8;

// Uniform numbers from a Philox stream, one at a time (data generation is tiny; clarity over speed).
struct Uniform {
  Generator gen;
  double operator()(double lo = 0.0, double hi = 1.0) {
    const uint64_t first = gen.reserve(1);
    return lo + (hi - lo) * double(philox_uniform01(gen.word(first, 0)));
  }
};

// Clean images: a colour gradient plus a few flat discs and rectangles. x: (n, 3, S, S) in [0, 1].
Tensor make_clean(Uniform& u, int64_t n) {
  Tensor t = Tensor::empty({n, 3, kSize, kSize});
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    float* img = p + i * 3 * kSize * kSize;
    for (int64_t c = 0; c < 3; ++c) {
      const double a = u(0.2, 0.8), bx = u(-0.3, 0.3), by = u(-0.3, 0.3);
      for (int64_t y = 0; y < kSize; ++y)
        for (int64_t x = 0; x < kSize; ++x)
          img[(c * kSize + y) * kSize + x] = float(std::clamp(a + bx * x / kSize + by * y / kSize, 0.0, 1.0));
    }
    for (int shape = 0; shape < 3; ++shape) {
      const double cx = u(0, kSize), cy = u(0, kSize), r = u(3, 9), col[3] = {u(), u(), u()};
      const bool disc = u() < 0.5;
      for (int64_t y = 0; y < kSize; ++y)
        for (int64_t x = 0; x < kSize; ++x) {
          const bool inside = disc ? (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r
                                   : std::abs(x - cx) < r && std::abs(y - cy) < r * 0.6;
          if (inside)
            for (int64_t c = 0; c < 3; ++c) img[(c * kSize + y) * kSize + x] = float(col[c]);
        }
    }
  }
  return t;
}

// Dust and a scratch, blended with soft edges so that no hard boundary gives them away.
Tensor damage(Uniform& u, const Tensor& clean) {
  Tensor t = clean.clone();
  float* p = t.data<float>();
  const int64_t n = t.size(0);
  auto blend = [&](float* img, int64_t x, int64_t y, double alpha, double value) {
    if (x < 0 || y < 0 || x >= kSize || y >= kSize || alpha <= 0) return;
    alpha = std::min(alpha, 1.0);
    for (int64_t c = 0; c < 3; ++c) {
      float& v = img[(c * kSize + y) * kSize + x];
      v = float((1 - alpha) * v + alpha * value);
    }
  };
  for (int64_t i = 0; i < n; ++i) {
    float* img = p + i * 3 * kSize * kSize;
    const int specks = int(u(4, 10));
    for (int s = 0; s < specks; ++s) {
      const double cx = u(0, kSize), cy = u(0, kSize), r = u(0.6, 1.8), value = u() < 0.5 ? u(0.0, 0.1) : u(0.9, 1.0);
      for (int64_t y = int64_t(cy - r - 1); y <= int64_t(cy + r + 1); ++y)
        for (int64_t x = int64_t(cx - r - 1); x <= int64_t(cx + r + 1); ++x)
          blend(img, x, y, r + 0.5 - std::hypot(x - cx, y - cy), value);
    }
    const double angle = u(0, M_PI), ox = u(0, kSize), oy = u(0, kSize);
    for (double s = -kSize; s < kSize; s += 0.5) {
      const double x = ox + s * std::cos(angle), y = oy + s * std::sin(angle);
      blend(img, int64_t(std::lround(x)), int64_t(std::lround(y)), 0.8, 0.97);
    }
  }
  return t;
}

double psnr(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector_f32(), y = b.to_vector_f32();
  double se = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::clamp(double(x[i]), 0.0, 1.0) - double(y[i]);
    se += d * d;
  }
  return 10.0 * std::log10(1.0 / std::max(se / double(x.size()), 1e-12));
}

// Rows of (damaged | restored | clean), each image scaled x4 by pixel repetition, as a binary PPM.
void write_grid(const std::string& path, const std::vector<Tensor>& columns, int64_t rows) {
  const int64_t z = 4, gap = 4, cell = kSize * z;
  const int64_t width = int64_t(columns.size()) * (cell + gap) - gap, height = rows * (cell + gap) - gap;
  std::string bytes = "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
  const size_t header = bytes.size();
  bytes.resize(header + size_t(width * height * 3), char(255));
  for (int64_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < columns.size(); ++c) {
      const float* img = columns[c].data<float>() + r * 3 * kSize * kSize;
      for (int64_t y = 0; y < cell; ++y)
        for (int64_t x = 0; x < cell; ++x)
          for (int64_t ch = 0; ch < 3; ++ch) {
            const float v = std::clamp(img[(ch * kSize + y / z) * kSize + x / z], 0.0f, 1.0f);
            const int64_t px = int64_t(c) * (cell + gap) + x, py = r * (cell + gap) + y;
            bytes[header + size_t((py * width + px) * 3 + ch)] = char(std::lround(v * 255));
          }
    }
  write_file_atomic(path, bytes);
}

}  // namespace

int run_demo(const DemoOptions& opt) {
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  FG_CHECK(!ec, "cannot create the output folder '" << opt.out_dir << "': " << ec.message());
  Uniform u{Generator(opt.seed)};
  const Tensor train_clean = make_clean(u, kTrain), test_clean = make_clean(u, kTest);
  const Tensor train_damaged = damage(u, train_clean), test_damaged = damage(u, test_clean);

  Generator init(opt.seed + 1000);
  models::TinyUNet net(init, 3, 3, 8);
  nn::AdamOptions ao;
  ao.lr = 3e-3;
  nn::Adam adam(net.parameters(), ao);
  nn::OneCycleOptions oc;  // fastai's one-cycle, as the dissertation trains
  oc.lr_max = 1e-2;
  oc.total_steps = std::max<int64_t>(opt.steps, 1);
  const nn::OneCycleSchedule schedule(oc);
  std::printf("filmgrad demo: TinyUNet (%lld parameters) learns to remove dust from %lld synthetic %lldx%lld images\n",
              (long long)net.num_parameters(), (long long)kTrain, (long long)kSize, (long long)kSize);
  // The network predicts a correction to the damaged image: restored = damaged + net(damaged).
  auto restore = [&](const Tensor& damaged) {
    const Variable d(damaged);
    return add(d, net.forward(d));
  };
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < opt.steps; ++step) {
    const int64_t first = (step * kBatch) % kTrain;
    const Tensor xb = train_damaged.narrow(0, first, kBatch), yb = train_clean.narrow(0, first, kBatch);
    net.train();
    schedule.apply(adam, step);
    Variable loss = mse_loss(restore(xb), Variable(yb));
    FG_CHECK(std::isfinite(loss.item()), "the loss became " << loss.item() << " at step " << step
                                                            << "; try a smaller learning rate or another --seed");
    adam.zero_grad();
    loss.backward();
    adam.step();
    if (step % 50 == 0 || step + 1 == opt.steps)
      std::printf("  step %4lld  loss %.5f\n", (long long)step, loss.item());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  net.eval();
  Tensor restored;
  {
    NoGradGuard ng;
    restored = restore(test_damaged).data();
  }
  const double before = psnr(test_damaged, test_clean), after = psnr(restored, test_clean);
  const std::string grid = (std::filesystem::path(opt.out_dir) / "samples.ppm").string();
  write_grid(grid, {test_damaged, restored, test_clean}, 4);
  std::printf("trained %lld steps in %.1f s (%.1f images/s)\n", (long long)opt.steps, seconds,
              double(opt.steps * kBatch) / std::max(seconds, 1e-9));
  std::printf("held-out PSNR: damaged %.2f dB -> restored %.2f dB\n", before, after);
  std::printf("samples (damaged | restored | clean): %s\n", grid.c_str());
  return 0;
}

}  // namespace fg::apps
