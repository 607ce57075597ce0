// End to end on the CPU: a tiny Conv2d-BatchNorm2d-ReLU-Conv2d network learns a fixed 3x3 box blur of random
// 1x8x8 images with Adam under a one-cycle schedule. The held-out MSE (eval mode) must start above a bound that
// an untrained network does not reach and end below it, within a fixed number of steps.
#include <gtest/gtest.h>

#include <memory>

#include "autograd/ops.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "tests/support/test_util.h"

namespace fg::nn {
namespace {

// The task: y = the 3x3 mean filter of x with zero padding.
Tensor blur(const Tensor& x) {
  const Variable k(Tensor::full({1, 1, 3, 3}, 1.0 / 9.0));
  NoGradGuard no_grad;
  return conv2d(Variable(x), k, Variable(), Conv2dParams::square(1, 1)).data();
}

double eval_mse(Sequential& net, const Tensor& x, const Tensor& y) {
  NoGradGuard no_grad;
  net.eval();
  const double loss = mse_loss(net.forward(Variable(x)), Variable(y)).item();
  net.train();
  return loss;
}

TEST(TrainTiny, ConvNetLearnsABlur) {
  Generator gen(2024);
  Sequential net{std::make_shared<Conv2d>(gen, 1, 8, 3, 1, 1), std::make_shared<BatchNorm2d>(8),
                 std::make_shared<ReLU>(), std::make_shared<Conv2d>(gen, 8, 1, 3, 1, 1)};
  const Tensor x_val = test::random_tensor({32, 1, 8, 8}, 99);
  const Tensor y_val = blur(x_val);

  // The bound: a tenth of what predicting zero costs (the target's mean square, about 0.035).
  const double zero_predictor = mse_loss(Variable(Tensor::zeros(y_val.shape())), Variable(y_val)).item();
  const double bound = 0.1 * zero_predictor;
  const double initial = eval_mse(net, x_val, y_val);
  EXPECT_GT(initial, bound);

  const int64_t steps = 300;
  Adam opt(net.parameters(), {});
  OneCycleOptions oc;
  oc.lr_max = 1e-2;
  oc.total_steps = steps;
  const OneCycleSchedule schedule(oc);
  Generator data_gen(7);
  for (int64_t step = 0; step < steps; ++step) {
    Tensor x = Tensor::empty({16, 1, 8, 8});
    uniform_(x, data_gen, -1.0, 1.0);
    schedule.apply(opt, step);
    opt.zero_grad();
    const Variable loss = mse_loss(net.forward(Variable(x)), Variable(blur(x)));
    loss.backward();
    opt.step();
  }
  const double final_loss = eval_mse(net, x_val, y_val);
  EXPECT_LT(final_loss, bound) << "initial " << initial << ", zero predictor " << zero_predictor;
  EXPECT_LT(final_loss, 0.05 * initial);
  EXPECT_EQ(net.at<BatchNorm2d>(1)->num_batches_tracked(), steps);
}

}  // namespace
}  // namespace fg::nn
