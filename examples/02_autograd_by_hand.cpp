// Example 2: autograd on a tiny expression, checked against the gradient derived by hand.
//   f(a, b) = sum_i [ tanh(a_i b_i) + exp(a_i) / b_i ]
//   df/da_i = b_i (1 - tanh^2(a_i b_i)) + exp(a_i) / b_i        (a appears twice: the two paths add up)
//   df/db_i = a_i (1 - tanh^2(a_i b_i)) - exp(a_i) / b_i^2
// Walk-through: docs/internals/02_autograd.md. Exits non-zero when the engine and the hand disagree.
#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/ops.h"

int main() {
  const std::vector<double> av = {0.3, -1.2, 0.8}, bv = {1.5, 0.7, -2.0};
  fg::Variable a(fg::Tensor::from_vector(av, {3}, fg::DType::F64), /*requires_grad=*/true);
  fg::Variable b(fg::Tensor::from_vector(bv, {3}, fg::DType::F64), /*requires_grad=*/true);

  // Each op records a Node holding what its backward needs; f.grad_fn() is the last one (the sum).
  fg::Variable f = fg::sum(fg::tanh(a * b) + fg::exp(a) / b);
  std::printf("f = %.12f, recorded by %s\n", f.item(), f.grad_fn()->name());
  f.backward(fg::Tensor(), /*retain_graph=*/true);

  const std::vector<double> ga = a.grad().to_vector(), gb = b.grad().to_vector();
  int failures = 0;
  double f_hand = 0;
  for (size_t i = 0; i < av.size(); ++i) {
    const double t = std::tanh(av[i] * bv[i]), e = std::exp(av[i]);
    f_hand += t + e / bv[i];
    const double da = bv[i] * (1 - t * t) + e / bv[i];
    const double db = av[i] * (1 - t * t) - e / (bv[i] * bv[i]);
    // Engine and hand compute the same f64 expressions in different orders: they agree to a few ulps, far
    // inside 1e-12 relative (values here are of order 1).
    const bool ok =
        std::abs(ga[i] - da) <= 1e-12 * (1 + std::abs(da)) && std::abs(gb[i] - db) <= 1e-12 * (1 + std::abs(db));
    std::printf("%s i=%zu  df/da engine %+.15f hand %+.15f   df/db engine %+.15f hand %+.15f\n", ok ? "ok  " : "FAIL",
                i, ga[i], da, gb[i], db);
    failures += ok ? 0 : 1;
  }
  if (std::abs(f.item() - f_hand) > 1e-12 * (1 + std::abs(f_hand))) {
    std::printf("FAIL f: engine %.15f hand %.15f\n", f.item(), f_hand);
    ++failures;
  }

  // A second backward through the retained graph accumulates (+=) into the leaves' grad(): it doubles.
  f.backward();
  const std::vector<double> ga2 = a.grad().to_vector();
  for (size_t i = 0; i < av.size(); ++i) {
    if (std::abs(ga2[i] - 2 * ga[i]) > 1e-12 * (1 + std::abs(ga[i]))) {
      std::printf("FAIL accumulation at %zu: %.15f after two backwards, %.15f after one\n", i, ga2[i], ga[i]);
      ++failures;
    }
  }
  // The graph was released by that backward (no retain_graph): a third one is an error that says what to do.
  try {
    f.backward();
    std::printf("FAIL a backward through a released graph did not throw\n");
    ++failures;
  } catch (const fg::Error& e) {
    std::printf("ok    a third backward is refused: %s\n", e.what());
  }
  std::printf("%s\n", failures ? "autograd_by_hand: FAILED" : "autograd_by_hand: engine == hand");
  return failures ? 1 : 0;
}
