// Example 3: train the TinyUNet (models/tiny_unet.h) for a few Adam steps on one fixed batch and check that the
// loss falls: the whole loop a user writes - forward, loss, zero_grad, backward, step. The task is to undo a
// fixed corruption (the target image with noise added); one batch is memorised, which is what a few steps can show.
// Exits non-zero when the loss does not fall to under half its first value.
#include <cstdio>

#include "autograd/ops.h"
#include "models/tiny_unet.h"
#include "nn/optim.h"

int main() {
  fg::Generator gen(7);
  const int64_t N = 2, H = 16, W = 16;
  fg::Tensor clean = fg::Tensor::empty({N, 3, H, W});
  fg::uniform_(clean, gen, -1.0, 1.0);
  fg::Tensor noise = fg::Tensor::empty({N, 3, H, W});
  fg::normal_(noise, gen, 0.0, 0.3);
  // No input requires a gradient, so this add records no graph: input is a plain tensor in a Variable.
  const fg::Variable target(clean), input = fg::add(target, fg::Variable(noise));

  fg::models::TinyUNet net(gen, /*in_channels=*/3, /*out_channels=*/3, /*width=*/8);
  net.train();
  fg::nn::AdamOptions opt;
  opt.lr = 3e-3;
  fg::nn::Adam adam(net.parameters(), opt);
  std::printf("TinyUNet: %lld parameters\n", static_cast<long long>(net.num_parameters()));

  double first = 0, last = 0;
  const int steps = 30;
  for (int step = 0; step < steps; ++step) {
    const fg::Variable pred = net(input);
    const fg::Variable loss = fg::mse_loss(pred, target);
    adam.zero_grad();
    loss.backward();
    adam.step();
    last = loss.item();
    if (step == 0) first = last;
    if (step % 5 == 0 || step == steps - 1) std::printf("step %2d  mse %.5f\n", step, last);
  }
  // Half is a loose bar: at this learning rate the loss here falls well below it within 30 steps, and a broken
  // gradient (wrong sign, lost path) leaves it near or above its first value.
  const bool ok = last < 0.5 * first;
  std::printf("train_tiny_unet: %s (first %.5f, last %.5f)\n", ok ? "the loss fell" : "FAILED, the loss did not fall",
              first, last);
  return ok ? 0 : 1;
}
