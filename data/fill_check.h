// Which of a classical fill's changes to keep (`filmgrad restore --fill classical`, docs/restore.md).
//
// Dust, hairs and scratches block light of every colour alike: where a speck of grey level v covers a pixel of
// colour c with opacity a, the scan shows d = (1 - a) c + a v, the same a in each channel. A fill f of the hole a
// damage mask marks is an estimate of c, so each filled pixel gives three estimates of a, one per channel:
//   a_ch = (d_ch - f_ch) / (v - f_ch),   v = kLight or kDark (the component's change is brighter or darker overall).
// Over a real speck the three agree; where the mask marked texture (the false alarms of a detector: an edge, a
// bright stripe of a coloured pattern) the change the fill makes is not a blend towards grey, and they disagree.
// neutral_spread() measures the disagreement of one 8-connected component of the hole: the spread max - min of the
// three estimates, averaged over its pixels weighted by each pixel's largest change max_ch |d_ch - f_ch| (pixels
// the fill hardly changes say nothing), divided by the component's mean |a| (so it is relative: a faint speck and
// an opaque one score alike). neutral_components() keeps the components whose spread is at most max_spread.
//
// What it costs: a component that is real damage on a colour the estimate handles badly (v - f near zero: a light
// speck on white, whose change is then small anyway) may be dropped; measured on the demo's own test pieces
// (docs/training.md, "Keeping only neutral fills"), 0.2 keeps nearly all of the damage's gain and drops most of
// the false alarms.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fg::data {

inline constexpr double kNeutralLight = 0.95;  // the grey level of a light speck (synthetic dust: 0.9 to 1)
inline constexpr double kNeutralDark = 0.05;   // and of a dark one (0 to 0.1)
inline constexpr double kNeutralMaxSpread = 0.2;

// damaged, filled: (3, H, W) contiguous f32 CPU planes, as data; pixels: indices y * W + x of one component.
// 0 when the fill changes none of them.
double neutral_spread(const float* damaged, const float* filled, int64_t plane, const std::vector<int64_t>& pixels);

// damaged, filled: (3, H, W) f32 CPU, the same size; hole: (H, W) or (1, H, W) f32 CPU, the hole where > 0.5.
// Returns the (1, H, W) f32 hole (1 / 0) without its 8-connected components whose neutral_spread exceeds
// max_spread. fg::Error naming the problem for bad shapes or types.
Tensor neutral_components(const Tensor& damaged, const Tensor& filled, const Tensor& hole,
                          double max_spread = kNeutralMaxSpread);

}  // namespace fg::data
