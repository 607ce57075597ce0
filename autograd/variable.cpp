// Variable, grad mode and the backward engine.
//
// The engine: collect the nodes reachable from the output's grad_fn (iteratively, so deep networks do not
// overflow the stack), order them so every node runs after all the nodes that feed gradient into it, then run
// each node's backward once with the sum of the gradients it received. Leaves accumulate (+=) into grad().
#include "autograd/variable.h"

#include <unordered_map>
#include <unordered_set>

#include "kernels/elementwise.h"

namespace fg {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_mode_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

Variable::Variable(Tensor data, bool requires_grad) : impl_(std::make_shared<VariableImpl>()) {
  FG_ASSERT(data.defined(), "a Variable needs a defined tensor");
  impl_->data = std::move(data);
  if (requires_grad) set_requires_grad(true);
}

const Tensor& Variable::data() const {
  FG_ASSERT(impl_, "use of an undefined Variable");
  return impl_->data;
}

void Variable::set_data(const Tensor& t) const {
  FG_ASSERT(impl_, "use of an undefined Variable");
  FG_CHECK(t.shape() == impl_->data.shape() && t.dtype() == impl_->data.dtype(),
           "set_data: " << t.str() << " does not match the variable's " << impl_->data.str());
  impl_->data = t;
}

const Tensor& Variable::grad() const {
  FG_ASSERT(impl_, "use of an undefined Variable");
  return impl_->grad;
}

void Variable::set_grad(const Tensor& g) const {
  FG_ASSERT(impl_, "use of an undefined Variable");
  FG_CHECK(!g.defined() || g.shape() == impl_->data.shape(),
           "set_grad: gradient " << g.str() << " does not match the variable " << impl_->data.str());
  impl_->grad = g;
}

void Variable::zero_grad() const {
  if (impl_) impl_->grad = Tensor();
}

void Variable::set_requires_grad(bool r) const {
  FG_ASSERT(impl_, "use of an undefined Variable");
  FG_CHECK(is_leaf(), "requires_grad can only be changed on a leaf variable; use detach() for a new leaf");
  FG_CHECK(!r || dtype_is_floating(impl_->data.dtype()),
           "only floating-point variables can require gradients, this one is " << dtype_name(impl_->data.dtype()));
  impl_->requires_grad = r;
}

const std::shared_ptr<Node>& Variable::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl_ ? impl_->grad_fn : none;
}

Variable Variable::detach() const { return Variable(data(), false); }

Variable make_variable_with_grad_fn(Tensor data, std::shared_ptr<Node> fn) {
  Variable v(std::move(data), false);
  v.impl_->requires_grad = true;
  v.impl_->grad_fn = std::move(fn);
  return v;
}

bool any_requires_grad(const std::vector<Variable>& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Variable& v : inputs)
    if (v.defined() && v.requires_grad()) return true;
  return false;
}

Variable make_result(Tensor out, std::shared_ptr<Node> node, std::vector<Variable> inputs) {
  if (!node || !any_requires_grad(inputs)) return Variable(std::move(out));
  node->inputs = std::move(inputs);
  return make_variable_with_grad_fn(std::move(out), std::move(node));
}

namespace {

// Nodes reachable from root, in an order where every node comes before the nodes it sends gradient to.
std::vector<Node*> topological_order(Node* root) {
  std::unordered_map<Node*, int> pending;  // how many consumers still have to run before a node may run
  std::vector<Node*> stack = {root};
  std::unordered_set<Node*> seen = {root};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Variable& in : n->inputs) {
      Node* next = in.defined() ? in.grad_fn().get() : nullptr;
      if (!next) continue;
      ++pending[next];
      if (seen.insert(next).second) stack.push_back(next);
    }
  }
  std::vector<Node*> order;
  std::vector<Node*> ready = {root};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    order.push_back(n);
    for (const Variable& in : n->inputs) {
      Node* next = in.defined() ? in.grad_fn().get() : nullptr;
      if (next && --pending[next] == 0) ready.push_back(next);
    }
  }
  return order;
}

// A leaf's grad() is owned: the first gradient is copied (it may alias a saved tensor or another gradient), later
// ones are added in place.
void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g.clone();
  } else {
    kernels::add_(slot, g);
  }
}

// A gradient on its way to a node. The first one is kept as it is (no copy: most activations receive exactly
// one gradient, and backward functions never modify the gradient they are given); a second one is added into a
// new tensor, after which the slot owns its buffer and later ones are added in place.
struct GradSlot {
  Tensor g;
  bool owned = false;
  void add(const Tensor& more) {
    if (!g.defined()) {
      g = more;
    } else if (owned) {
      kernels::add_(g, more);
    } else {
      g = kernels::add(g, more);
      owned = true;
    }
  }
};

// Runs the backward pass. With `capture` set, gradients for those leaves/variables are returned instead of being
// accumulated into grad().
std::vector<Tensor> run_backward(const Variable& output, const Tensor& grad_output, bool retain_graph,
                                 const std::vector<Variable>* capture) {
  FG_CHECK(output.defined() && output.requires_grad(),
           "backward: the output does not require a gradient (no input required one, or grad mode was off)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    FG_CHECK(output.numel() == 1, "backward: the output has " << output.numel()
                                                              << " elements; pass a gradient or reduce it to one");
    seed = Tensor::ones(output.shape(), output.dtype(), output.data().device());
  }
  FG_CHECK(seed.shape() == output.shape(), "backward: gradient " << seed.str() << " does not match output "
                                                                 << output.data().str());
  std::vector<Tensor> captured(capture ? capture->size() : 0);
  auto capture_index = [&](const VariableImpl* impl) -> int {
    if (!capture) return -1;
    for (size_t i = 0; i < capture->size(); ++i)
      if ((*capture)[i].impl() == impl) return int(i);
    return -1;
  };

  if (output.is_leaf()) {
    const int ci = capture_index(output.impl());
    if (ci >= 0) accumulate(captured[size_t(ci)], seed);
    else if (!capture) accumulate(output.impl()->grad, seed);
    if (!capture && output.impl()->grad_ready_hook) output.impl()->grad_ready_hook();
    return captured;
  }
  Node* root = output.grad_fn().get();
  const std::vector<Node*> order = topological_order(root);
  // For leaves with a grad_ready_hook: how many nodes of this graph still have to run before the leaf's gradient
  // is complete. Counted over every reachable node (one that receives no gradient still counts, and is passed).
  std::unordered_map<VariableImpl*, int> hooked_uses;
  if (!capture) {
    for (Node* node : order)
      for (const Variable& in : node->inputs)
        if (in.defined() && in.is_leaf() && in.impl()->grad_ready_hook) ++hooked_uses[in.impl()];
  }
  const auto leaf_inputs_done = [&](Node* node) {
    if (hooked_uses.empty()) return;
    for (const Variable& in : node->inputs) {
      if (!in.defined() || !in.is_leaf()) continue;
      const auto h = hooked_uses.find(in.impl());
      if (h != hooked_uses.end() && --h->second == 0 && in.impl()->grad.defined()) in.impl()->grad_ready_hook();
    }
  };
  std::unordered_map<Node*, GradSlot> grads;
  grads[root].add(seed);
  {
    const int ci = capture_index(output.impl());
    if (ci >= 0) captured[size_t(ci)] = seed.clone();
  }
  for (Node* node : order) {
    auto it = grads.find(node);
    if (it == grads.end()) {  // nothing flowed into this node
      leaf_inputs_done(node);
      continue;
    }
    FG_CHECK(!node->released, "backward through the graph a second time (" << node->name()
                                                                           << "): pass retain_graph=true the first time");
    // Every backward receives a contiguous gradient, so kernels need not handle strided upstream gradients.
    const Tensor g = it->second.g.contiguous();
    grads.erase(it);
    std::vector<Tensor> in_grads = node->backward(g);
    FG_ASSERT(in_grads.size() == node->inputs.size(),
              node->name() << " returned " << in_grads.size() << " gradients for " << node->inputs.size() << " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Variable& in = node->inputs[i];
      if (!in.defined() || !in.requires_grad() || !in_grads[i].defined()) continue;
      FG_ASSERT(in_grads[i].shape() == in.shape(), node->name() << " gave gradient " << in_grads[i].str()
                                                                << " for input " << i << " of shape " << shape_str(in.shape()));
      const int ci = capture_index(in.impl());
      if (ci >= 0) accumulate(captured[size_t(ci)], in_grads[i]);
      if (in.grad_fn()) {
        grads[in.grad_fn().get()].add(in_grads[i]);
      } else if (!capture) {
        accumulate(in.impl()->grad, in_grads[i]);
      }
    }
    if (!retain_graph) {
      node->release_saved();
      node->released = true;
    }
    leaf_inputs_done(node);
  }
  return captured;
}

}  // namespace

void Variable::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph, nullptr);
}

std::vector<Tensor> grad(const Variable& output, const std::vector<Variable>& inputs, const Tensor& grad_output,
                         bool retain_graph) {
  return run_backward(output, grad_output, retain_graph, &inputs);
}

}  // namespace fg
