// ActivationRecorder: names every module called through operator() by its path, in call order, with output
// shapes and own parameter counts; keeps outputs only when asked; does not nest.
#include <gtest/gtest.h>

#include "models/tiny_unet.h"
#include "nn/recorder.h"

namespace fg {
namespace {

TEST(ActivationRecorder, NamesShapesAndParameterCounts) {
  Generator gen(1);
  nn::Sequential net;
  net.push_back(std::make_shared<nn::Conv2d>(gen, 3, 4, 3, 1, 1));
  net.push_back(std::make_shared<nn::ReLU>());
  auto inner = std::make_shared<nn::Sequential>();
  inner->push_back(std::make_shared<nn::Conv2d>(gen, 4, 2, 1));
  net.push_back(inner);
  const Variable x(Tensor::zeros({1, 3, 5, 5}));
  std::vector<nn::LayerRecord> recs;
  {
    nn::ActivationRecorder rec(net, /*keep_outputs=*/true);
    net(x);
    recs = rec.records();
  }
  ASSERT_EQ(recs.size(), 5u);  // 0, 1, 2.0, 2, root - children finish before their parents
  EXPECT_EQ(recs[0].name, "0");
  EXPECT_EQ(recs[0].type_name, "Conv2d");
  EXPECT_EQ(recs[0].output_shape, (Shape{1, 4, 5, 5}));
  EXPECT_EQ(recs[0].own_parameters, 3 * 4 * 9 + 4);
  EXPECT_EQ(recs[1].name, "1");
  EXPECT_EQ(recs[1].own_parameters, 0);
  EXPECT_EQ(recs[2].name, "2.0");
  EXPECT_EQ(recs[2].output_shape, (Shape{1, 2, 5, 5}));
  EXPECT_EQ(recs[3].name, "2");
  EXPECT_EQ(recs[4].name, "");
  EXPECT_TRUE(recs[2].output.defined());
  // after the recorder is gone, nothing records and a new one may start
  net(x);
  EXPECT_EQ(nn::ActivationRecorder::active(), nullptr);
}

TEST(ActivationRecorder, SeesEveryLayerOfAModelAndDoesNotNest) {
  Generator gen(2);
  models::TinyUNet net(gen, 3, 3, 2);
  nn::ActivationRecorder rec(net);
  net(Variable(Tensor::zeros({1, 3, 8, 8})));
  int convs = 0;
  for (const auto& r : rec.records()) convs += r.type_name == "Conv2d";
  EXPECT_EQ(convs, 10);
  EXPECT_FALSE(rec.records()[0].output.defined());  // outputs are not kept unless asked
  EXPECT_THROW(nn::ActivationRecorder second(net), Error);
}

}  // namespace
}  // namespace fg
