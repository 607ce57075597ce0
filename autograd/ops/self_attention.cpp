// The SAGAN / fastai self-attention block as one differentiable op (declared in autograd/ops.h). One graph node:
// the forward and the backward are the kernels of kernels/self_attention.h, so the graph holds f, g, h and the
// (B, N, N) attention map once instead of the dozen intermediates a composition of bmm/softmax/conv1d would keep.
#include "kernels/self_attention.h"

#include <memory>

#include "autograd/ops.h"
#include "tensor/error.h"

namespace fg {

namespace {

// fastai builds q, k, v as conv1d with kernel size 1, so a weight is either the matrix (Co, C) or (Co, C, 1).
// Returns the matrix view (no copy).
Tensor weight_matrix(const Tensor& w, const char* name, const char* rows, const Shape& x_shape) {
  FG_CHECK(w.dim() == 2 || (w.dim() == 3 && w.size(2) == 1),
           "self_attention: " << name << " must be (" << rows << ", C) or (" << rows << ", C, 1) for x "
                              << shape_str(x_shape) << ", got " << shape_str(w.shape()));
  return w.dim() == 2 ? w : w.select(2, 0);
}

class SelfAttentionBackward : public Node {
 public:
  const char* name() const override { return "SelfAttentionBackward"; }

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const kernels::SelfAttentionGrads d =
        kernels::self_attention_backward(grad_output.reshape(x.shape()), x, wq, wk, wv, gamma, saved);
    auto wanted = [&](size_t k, const Tensor& t, const Shape& shape) {
      return inputs[k].requires_grad() ? t.view(shape) : Tensor();
    };
    return {wanted(0, d.dx, x_shape), wanted(1, d.dwq, wq_shape), wanted(2, d.dwk, wk_shape),
            wanted(3, d.dwv, wv_shape), wanted(4, d.dgamma, gamma.shape())};
  }

  void release_saved() override {
    x = wq = wk = wv = gamma = Tensor();
    saved = kernels::SelfAttentionForward();
  }

  Tensor x;                                     // (B, C, N), the input as the kernels see it
  Tensor wq, wk, wv;                            // (Ck, C), (Ck, C), (C, C)
  Tensor gamma;                                 // one element
  kernels::SelfAttentionForward saved;          // f, g, h, beta (out dropped)
  Shape x_shape, wq_shape, wk_shape, wv_shape;  // the shapes the caller gave, for the gradients
};

}  // namespace

Variable self_attention(const Variable& x, const Variable& wq, const Variable& wk, const Variable& wv,
                        const Variable& gamma) {
  FG_CHECK(x.defined() && wq.defined() && wk.defined() && wv.defined() && gamma.defined(),
           "self_attention: x, wq, wk, wv and gamma must all be defined (the block has no optional input)");
  const Tensor& xt = x.data();
  FG_CHECK(xt.dim() >= 3, "self_attention: x must be (B, C, H, W), got " << shape_str(xt.shape()));
  const int64_t B = xt.size(0), C = xt.size(1);
  const Tensor wq_m = weight_matrix(wq.data(), "wq", "Ck", xt.shape());
  const Tensor wk_m = weight_matrix(wk.data(), "wk", "Ck", xt.shape());
  const Tensor wv_m = weight_matrix(wv.data(), "wv", "C", xt.shape());
  FG_CHECK(wq_m.size(1) == C && wk_m.shape() == wq_m.shape(),
           "self_attention: wq and wk must both be (Ck, " << C << ") for x " << shape_str(xt.shape()) << " with " << C
                                                          << " channels, got " << shape_str(wq.shape()) << " and "
                                                          << shape_str(wk.shape()));
  FG_CHECK(wv_m.size(0) == C && wv_m.size(1) == C, "self_attention: wv must be (C, C) = ("
                                                       << C << ", " << C << ") for x " << shape_str(xt.shape())
                                                       << ", got " << shape_str(wv.shape()));
  FG_CHECK(gamma.numel() == 1,
           "self_attention: gamma must be a single learnable scalar of shape (1), got " << shape_str(gamma.shape()));

  int64_t N = 1;
  for (int64_t d = 2; d < xt.dim(); ++d) N *= xt.size(d);
  const Tensor x3 = xt.reshape({B, C, N});
  kernels::SelfAttentionForward fwd = kernels::self_attention_forward(x3, wq_m, wk_m, wv_m, gamma.data());
  const Tensor out = fwd.out.view(xt.shape());

  std::shared_ptr<SelfAttentionBackward> node;
  if (any_requires_grad({x, wq, wk, wv, gamma})) {
    node = std::make_shared<SelfAttentionBackward>();
    node->x = x3;
    node->wq = wq_m;
    node->wk = wk_m;
    node->wv = wv_m;
    node->gamma = gamma.data();
    fwd.out = Tensor();
    node->saved = std::move(fwd);
    node->x_shape = xt.shape();
    node->wq_shape = wq.shape();
    node->wk_shape = wk.shape();
    node->wv_shape = wv.shape();
  }
  return make_result(out, node, {x, wq, wk, wv, gamma});
}

}  // namespace fg
