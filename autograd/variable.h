// Reverse-mode autograd. A Variable wraps a Tensor and, when it was computed from Variables that require
// gradients (and grad mode is on), the Node that computed it. backward() walks the graph in reverse
// topological order, accumulating gradients; leaves accumulate into grad(). Saved tensors are released after
// backward unless retain_graph is true, and a second backward through a released graph is an error.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fg {

class Node;

struct VariableImpl {
  Tensor data;
  Tensor grad;  // undefined until a backward reaches this leaf
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  // Leaves only: called by backward() once this leaf's grad() holds everything the current backward adds to it
  // (after the last node that feeds it has run), while the rest of the graph is still to run. Data-parallel
  // training (dist/ddp.h) starts reducing a gradient here. Not called by grad(), which leaves grad() alone.
  std::function<void()> grad_ready_hook;
};

class Variable {
 public:
  Variable() = default;  // undefined (used for an absent optional input such as a bias)
  explicit Variable(Tensor data, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& data() const;
  // Replaces the data of a leaf in place (optimizers, loading weights). Shape and dtype must match.
  void set_data(const Tensor& t) const;
  const Tensor& grad() const;  // undefined if none yet
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the gradient (grad() becomes undefined)
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool r) const;  // leaves only
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const { return !impl_ || !impl_->grad_fn; }
  Variable detach() const;  // same data, no graph

  // grad defaults to ones (the variable must then hold a single element).
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

  // Shorthands for data().
  const Shape& shape() const { return data().shape(); }
  int64_t size(int64_t d) const { return data().size(d); }
  int64_t dim() const { return data().dim(); }
  int64_t numel() const { return data().numel(); }
  DType dtype() const { return data().dtype(); }
  double item() const { return data().item(); }

  VariableImpl* impl() const { return impl_.get(); }
  bool same(const Variable& o) const { return impl_ == o.impl_; }

 private:
  friend Variable make_variable_with_grad_fn(Tensor data, std::shared_ptr<Node> fn);
  std::shared_ptr<VariableImpl> impl_;
};

// One step of the graph: the backward of one op. Each op defines a subclass that saves what its backward needs.
class Node {
 public:
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Given the gradient of the op's output (always contiguous, same shape as the output), returns one gradient per input (same order as `inputs`, same shape as
  // each input's data). An undefined Tensor means "no gradient for this input".
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  // Frees saved tensors once backward has run (unless the graph is retained).
  virtual void release_saved() {}

  std::vector<Variable> inputs;  // set by make_result
  bool released = false;
};

// Grad mode (thread-local). NoGradGuard turns recording off for its scope.
bool grad_mode_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any defined input requires a gradient.
bool any_requires_grad(const std::vector<Variable>& inputs);

// Wraps an op's output. If any_requires_grad(inputs), node->inputs = inputs and the result records node;
// otherwise the node is dropped and the result is a plain Variable. The node may be null when no input needs grad.
Variable make_result(Tensor out, std::shared_ptr<Node> node, std::vector<Variable> inputs);

// Computes gradients of `output` (a single element unless grad_output is given) with respect to `inputs` and
// returns them, without touching the inputs' grad() fields. Used by the gradient checker.
std::vector<Tensor> grad(const Variable& output, const std::vector<Variable>& inputs,
                         const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace fg
