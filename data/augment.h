// Data augmentation of SPEC B ("Training"), fastai v1's get_transforms as the dissertation used it, applied to
// train and validation images (never to test images):
//   horizontal flip      p 0.5
//   symmetric warp       p 0.75, four magnitudes, each uniform in (-0.25, 0.25) (fastai draws four, see below)
//   zoom                 p 0.75, scale uniform in (1, 1.5), centre row/col fraction uniform in (0, 1)
//   brightness           p 0.75, change uniform in (0.25, 0.75)  (0.5 leaves the image as it is)
//   contrast             p 0.75, scale log-uniform in (0.5, 2.0)  (1 leaves the image as it is)
// Definitions (fastai v1 vision/transform.py and vision/image.py):
//   brightness: y = sigmoid(logit(x) + logit(change)); contrast: y = sigmoid(logit(x) * scale), where logit clamps
//   x to [1e-7, 1 - 1e-7] first (fastai's logit_; so 0 and 1 stay finite). Both act on every channel. fastai
//   applies them to one logit image, brightness first: y = sigmoid((logit(x) + logit(change)) * scale) when both
//   are on (not two rounds of clamping). Without either, pixel values are left exactly as the geometry gave them.
//   symmetric warp (_symmetric_warp) with magnitudes m = (m0, m1, m2, m3): the perspective transform that moves
//   the corners of the normalised square [-1, 1]^2, as (x, y) with y down,
//     (-1, -1) -> (-1 - m3, -1 - m1)   (-1, 1) -> (-1 - m2, 1 + m1)
//     ( 1, -1) -> ( 1 + m3, -1 - m0)   ( 1, 1) -> ( 1 + m2, 1 + m0)
//   i.e. m3 widens the top edge, m2 the bottom edge, m1 lengthens the left edge, m0 the right edge. As in fastai
//   (_do_perspective_warp, _find_coeffs), output point u samples the source at H(u), where H is the homography
//   taking the moved corners back to the square's corners (so content at a corner appears at its moved place).
//   zoom by s about (row, col) (_zoom): output coordinate u maps to source u / s + (1 - 1 / s) * (2 c - 1) in
//   normalised [-1, 1] coordinates, c = col for x and row for y. flip (_flip_affine): x -> -x.
//   Geometry is resampled once, composed in fastai's order: the warp (a coord transform, order 4) acts on the grid
//   first, then the affine matrix flip @ zoom (order 5), so source = flip(zoom(warp(u))); bilinear, with
//   reflection padding (fastai's default padding_mode='reflection'), output the same size as the input. Lighting
//   (order 8) comes after the resampling.
// Choices where fastai v1 is ambiguous or where this file deliberately differs:
//   - Normalised coordinates put -1 and +1 on the centres of the first and last pixels (fastai's grid is
//     linspace(-1, 1, n), sampled with PyTorch < 1.3's grid_sample, i.e. align_corners=True). Reflection is about
//     those centres. Under PyTorch >= 1.3 fastai v1's identity grid is resampled with align_corners=False, a
//     slight unintended zoom; that is not reproduced, so a flip is an exact mirror and no geometry is no change.
//   - A coordinate within 1e-9 pixel of an integer is snapped to it, so exact maps (flips) copy pixels exactly.
//   - When no geometric transform is on, the image is not resampled at all (as in fastai).
//   - The random numbers come from fg::Generator, not Python's random module (draw_augment lists the words).
// A pair (damaged input and clean target, or clean image and mask) is augmented identically by drawing the
// parameters once (draw_augment) and applying them to each image (apply_augment).
#pragma once
#include <cstdint>

#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg::data {

struct AugmentOptions {
  double p_flip = 0.5;
  double p_warp = 0.75, warp_magnitude = 0.25;
  double p_zoom = 0.75, max_zoom = 1.5;
  double p_brightness = 0.75, brightness_lo = 0.25, brightness_hi = 0.75;
  double p_contrast = 0.75, contrast_lo = 0.5, contrast_hi = 2.0;
};

// What one draw decided; a field is used only when its flag is set.
struct AugmentParams {
  bool flip = false;
  bool warp = false;
  // The four magnitudes of _symmetric_warp, each in (-warp_magnitude, warp_magnitude); (warp_x, warp_y) move the
  // top-left corner to (-1 - warp_x, -1 - warp_y). In fastai's m: warp_x = m3 (top edge), warp_y = m1 (left edge),
  // warp_x_bottom = m2, warp_y_right = m0. warp_x_bottom == warp_x and warp_y_right == warp_y is a plain scaling
  // by (1 + warp_x, 1 + warp_y) about the centre.
  double warp_x = 0.0, warp_y = 0.0;
  double warp_x_bottom = 0.0, warp_y_right = 0.0;
  bool zoom = false;
  double zoom_scale = 1.0, zoom_row = 0.5, zoom_col = 0.5;  // scale in [1, max_zoom); row, col fractions in [0, 1)
  bool brightness = false;
  double brightness_change = 0.5;
  bool contrast = false;
  double contrast_scale = 1.0;

  bool is_identity() const { return !flip && !warp && !zoom && !brightness && !contrast; }
};

// Draws every decision from gen (always the same number of draws, whatever is decided, so the stream that follows
// does not depend on the outcome). Options are checked (probabilities in [0, 1], ranges ordered): fg::Error.
// Exactly one gen.reserve(kAugmentDraws): 14 words, u_k = philox_uniform01(word k), used as
//   0 flip (u < p_flip)   1 warp (u < p_warp)   2-5 m0..m3 = warp_magnitude * (2 u - 1)
//   6 zoom   7 scale = 1 + (max_zoom - 1) u   8 row = u   9 col = u
//   10 brightness   11 change = lo + (hi - lo) u   12 contrast   13 scale = exp(log lo + (log hi - log lo) u)
// Fields whose flag is off keep their identity values (so is_identity() and equality describe what is applied).
// Option limits: probabilities in [0, 1]; warp_magnitude in [0, 1) (at -1 an edge of the warped square collapses
// to a point and the perspective degenerates); max_zoom >= 1; 0 < brightness_lo <= brightness_hi < 1 (logit(change)
// must be finite); 0 < contrast_lo <= contrast_hi.
constexpr int kAugmentDraws = 14;
AugmentParams draw_augment(const AugmentOptions& options, Generator& gen);

// chw: (C, H, W) f32 in [0, 1] -> the augmented (C, H, W) f32. `lighting` false applies only the geometry (for
// masks, which must move with the image but keep their values). Bad params (|warp| >= 1, zoom_scale <= 0,
// brightness_change outside (0, 1), contrast_scale <= 0, not finite) throw fg::Error.
Tensor apply_augment(const Tensor& chw, const AugmentParams& params, bool lighting = true);

// Where output pixel (row, col) of an H x W image samples the source under params' geometry, in source pixel
// coordinates (row, col) before reflection. row and col may be fractional or outside the image (to follow a
// corner of the warped square). The map apply_augment uses; exposed for tests and for moving point annotations.
struct SourcePoint {
  double row = 0.0, col = 0.0;
};
SourcePoint augment_source_point(const AugmentParams& params, int64_t H, int64_t W, double row, double col);

}  // namespace fg::data
