// Tiled inference: runs a network over an image of any size in tiles, so memory is bounded by the tile, not the
// image (SPEC C: "restore any size image ... tiled so memory stays bounded").
//
// The image is covered by tiles of at most tile x tile pixels whose origins lie on multiples of `multiple` (so
// pooling and strided layers see the same grid as on the whole image); adjacent tiles overlap by
// 2 * margin + ramp pixels. A tile's output is weighted 0 within `margin` pixels of each of its edges that lies
// inside the image (where the tile's zero padding differs from the real neighbourhood), rises linearly over the
// next `ramp` pixels to 1, and is 1 elsewhere and along the image's own borders; the result is the weighted mean.
// So for a convolutional network whose receptive-field radius is at most `margin` and whose layers are aligned
// to `multiple`, the tiled result equals the untiled one up to float rounding; for anything else (global
// self-attention, BatchNorm in training mode) the seams are feathered over `ramp` pixels.
// Images whose sides are not multiples of `multiple` are padded by reflection to the next multiple for the model
// and cropped back. An image that fits in one tile is run as one tile: exactly fn(padded image).
//
// The plan, per axis (rows and columns alike): the side L is padded to Lp, the next multiple of `multiple`
// (reflection without repeating the edge pixel, as PyTorch's 'reflect', folded again if the pad is longer than the
// side). The tile side is t = min(tile rounded down to the multiple, Lp). If Lp <= t there is one tile at 0;
// otherwise the origins are 0, s, 2s, ... with the stride s = the largest multiple of `multiple` that is at most
// t - 2 * margin - ramp, and the last tile is placed flush with the padded end (origin Lp - t). A tile's weight at
// its pixel j (0-based) is the product of a start factor and an end factor; for an inner start edge the factor is
// 0 for j < margin, (j - margin + 0.5) / ramp for margin <= j < margin + ramp, 1 after (likewise from the end);
// for an edge on the image's border it is 1. The 2-D weight is the row weight times the column weight, so the
// weight sums are separable and no weight plane is stored: memory is the output, one tile and its result.
// Two tiles that overlap by exactly 2 * margin + ramp have weights that sum to 1 across the seam.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "tensor/tensor.h"

namespace fg::data {

struct TileOptions {
  int64_t tile = 512;     // the largest tile side; rounded down to a multiple of `multiple`
  int64_t margin = 32;    // discarded at inner tile edges
  int64_t ramp = 32;      // feathering width
  int64_t multiple = 32;  // the model's size multiple (32 Dynamic U-Net, 16 cross-channel, 4 TinyUNet)
};

// (C_in, h, w) f32 CPU tile, h and w multiples of `multiple` -> (C_out, h, w) f32 (any device is copied back).
using TileFunction = std::function<Tensor(const Tensor& tile)>;

// image: (C_in, H, W) f32 CPU -> (out_channels, H, W) f32 CPU. on_tile(done, total) reports progress (may be
// empty). Throws fg::Error for bad options (tile < multiple, 2 * margin + ramp >= tile) or when fn returns a wrong
// shape.
Tensor run_tiled(const Tensor& image, const TileFunction& fn, int64_t out_channels, const TileOptions& options,
                 const std::function<void(int64_t, int64_t)>& on_tile = {});

// How many tiles run_tiled will use (for progress bars and estimates). Checks the options like run_tiled.
int64_t count_tiles(int64_t H, int64_t W, const TileOptions& options);

// The tile origins along one side of `length` pixels, in order (see "The plan" above). run_tiled visits the tiles
// row by row: for each row origin, every column origin. Also throws when the stride would be smaller than
// `multiple` (tile too small for 2 * margin + ramp plus one multiple).
std::vector<int64_t> tile_origins(int64_t length, const TileOptions& options);

}  // namespace fg::data
