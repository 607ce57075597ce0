// Damage synthesis for both papers: what turns clean photographs into training pairs. Deterministic: the same
// Generator state gives the same damage, bit for bit, on every machine.
//
// 1. Old negatives (SPEC A; seeds/000 section 4.2), on the blue channel only:  O = M * N + (1 - M) * I
//    with I the clean blue channel, M a soft mask in [0, 1] and N the damage content.
//    Masks, both free-form:
//      STROKES  polylines of random width (VCNet's free-form strokes): a few strokes, each a chain of segments
//               with random angle changes and lengths, drawn with round caps and joints;
//      CIRCLES  circle clusters: random circles of reasonable radius; random points inside each become the centres
//               of smaller circles; repeated for a few generations;
//    then Gaussian-smoothed (sigma NegativeDamageOptions::smooth_sigma) so no hard edge gives the damage away.
//    Contents N: GREY (one constant level), IMPULSE (50 % salt-and-pepper: each pixel 0 or 1 with probability
//    1/4 each, the clean value otherwise), PATCH (the blue channel of a patch of another natural image).
//    O is computed in f32 as std::fma(M, N, (1 - M) * I), so it is the same whether or not a compiler would fuse
//    the expression (and exactly I where M = 0, exactly N where M = 1).
//
// 2. Dust and scratches (SPEC B "dustify"; seeds/004). An overlay is two planes (alpha, value), both (H, W) in
//    [0, 1]: where alpha is 1 the pixel becomes `value` on every channel; damaged = (1 - alpha) * clean + alpha *
//    value. The procedural generator draws, at the overlay's own resolution: dust specks of varied size and softness
//    (many small, few large), hairs and fibres (thin smooth random curves), long thin near-vertical scratches, and
//    blotches (irregular soft stains); each element light or dark. Each image gets two overlays (SPEC: "two random
//    patches"), each cropped from a larger generated sheet, warped, and inverted with probability 0.5, then
//    blended in turn. The pattern differs per resolution: the sheet is drawn from (seed, image size, index) so
//    that the 64, 128 and 256 px stages of progressive resizing see different dust. Sizes follow the frame (the
//    whole picture an image or crop belongs to; DustSynthesizer::apply's frame_short_side), not the crop.
//    An overlay folder replaces the generator: each image there is dust on a dark background (alpha = its
//    luminance, value 1), or, when it has an alpha channel, alpha = that channel and value = its luminance.
//    Blends are computed in f32 as std::fma(alpha, value, (1 - alpha) * clean), like the negatives' O.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/philox.h"
#include "tensor/tensor.h"

namespace fg::data {

// ---- 1. old negatives ----

enum class MaskShape { STROKES, CIRCLES };
enum class DamageContent { GREY, IMPULSE, PATCH };

struct NegativeDamageOptions {
  double p_strokes = 0.5;  // otherwise circle clusters
  // Contents: GREY, IMPULSE, PATCH with these relative weights (PATCH falls back to GREY without another image).
  double w_grey = 1.0, w_impulse = 1.0, w_patch = 1.0;
  double smooth_sigma = 1.5;  // pixels, at 256 px; scaled with the image's shorter side / 256; cut at 4 sigma
  // The fraction of the image the unsmoothed mask covers; it lands in range whenever the range holds a whole
  // number of pixels. The Gaussian blur (mirror padding) keeps the mask's sum, so the mean of M is this fraction
  // too, up to rounding. smooth_sigma = 0 returns the binary mask itself.
  double min_coverage = 0.02, max_coverage = 0.25;
};

struct NegativeDamage {
  Tensor damaged_blue;  // (1, H, W)
  Tensor mask;          // (1, H, W) in [0, 1], the M of O = M N + (1 - M) I
  MaskShape shape = MaskShape::STROKES;
  DamageContent content = DamageContent::GREY;
};

// Masks on their own ((1, H, W) f32 in [0, 1], already smoothed).
Tensor make_stroke_mask(int64_t H, int64_t W, Generator& gen, const NegativeDamageOptions& options = {});
Tensor make_circle_mask(int64_t H, int64_t W, Generator& gen, const NegativeDamageOptions& options = {});

// rgb: (3, H, W) f32 in [0, 1], the clean image. other: (C, H2, W2) another image for PATCH content (any size of at
// least H x W after resizing is handled; undefined: PATCH becomes GREY). Only the blue channel is damaged.
NegativeDamage damage_negative(const Tensor& rgb, const Tensor& other, Generator& gen,
                               const NegativeDamageOptions& options = {});

// ---- 2. dust and scratches ----

struct DustOptions {
  int overlays_per_image = 2;
  double density = 1.0;  // scales the number of specks, hairs, scratches and blotches
  double p_invert = 0.5;
  double p_dark = 0.5;  // the share of elements drawn dark rather than light (before any inversion)
  double warp_magnitude = 0.25;
  double sheet_scale = 2.0;  // the generated sheet is this many times the image's size; overlays are crops of it
                             // (a folder image is scaled so its shorter side is this many times the longer side)
  // Overlay folder only: the memory kept for overlay images decoded and resized to the sizes in use (least recently
  // used dropped first).
  int64_t overlay_cache_mb = 256;
};

struct Overlay {
  Tensor alpha;  // (H, W) in [0, 1]
  Tensor value;  // (H, W) in [0, 1]
};

// One procedural overlay of H x W (specks, hairs, scratches, blotches), drawn from gen.
Overlay make_dust_overlay(int64_t H, int64_t W, Generator& gen, const DustOptions& options = {});

// damaged = (1 - alpha) * clean + alpha * value on every channel. clean: (C, H, W); the overlay H x W.
Tensor blend_overlay(const Tensor& clean, const Overlay& overlay);

struct DustDamage {
  Tensor damaged;  // (C, H, W), same as the clean image's shape
  Tensor mask;     // (1, H, W): the combined alpha, 1 - prod(1 - alpha_k), what --mask and the evaluation compare with
};

class DustSynthesizer {
 public:
  // overlay_dir empty: the procedural generator. Otherwise every image in the folder (PNG, JPEG, TIFF, ...; read
  // lazily, cached, thread-safe) is a source of overlay patches; a folder with no images throws fg::Error.
  explicit DustSynthesizer(const DustOptions& options = {}, const std::string& overlay_dir = "");
  ~DustSynthesizer();
  DustSynthesizer(const DustSynthesizer&) = delete;
  DustSynthesizer& operator=(const DustSynthesizer&) = delete;

  // clean: (C, H, W) f32 in [0, 1] (C = 1 or 3). `pattern_seed` selects the pattern family; the resolution is mixed
  // in here, so the same seed at another size gives other dust. The draw is otherwise from gen.
  // Overlay k (k = 0 .. overlays_per_image - 1) comes from the sheet seeded by mix(pattern_seed, H, W, k): the
  // procedural sheet's content, or, with a folder, which of its images is used. Where the patch lies in the sheet,
  // its warp and flips, and the inversion are drawn from gen.
  // frame_short_side: the shorter side, in pixels, of the whole picture this image is part of (0: the image's own).
  // Procedural dust is sized relative to the frame, as dust on film is a fixed fraction of the frame: a crop of a
  // 512 px rendering gets specks, hairs and scratches of the pixel sizes the whole 512 px image would get, not
  // ones shrunk to the crop (element sizes in units of frame_short_side / 256 pixels; counts per area of the crop
  // itself). Overlay folders are not rescaled by it (their sheets already follow the image).
  DustDamage apply(const Tensor& clean, uint64_t pattern_seed, Generator& gen, double frame_short_side = 0) const;
  // The overlays apply blends, in order, for an H x W image (the same draws: from the same gen state, apply
  // blends exactly these, with blend_overlay's formula, and its mask is 1 - prod over k of (1 - alpha_k)).
  std::vector<Overlay> draw_overlays(int64_t H, int64_t W, uint64_t pattern_seed, Generator& gen,
                                     double frame_short_side = 0) const;
  const DustOptions& options() const { return options_; }

 private:
  DustOptions options_;
  struct OverlayFolder;
  std::unique_ptr<OverlayFolder> folder_;
};

}  // namespace fg::data
