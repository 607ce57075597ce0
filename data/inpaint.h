// Classical inpainting: fills the pixels a damage mask marks from the pixels around them. `filmgrad eval` scores
// it as a baseline beside every network (apps/evaluate.h): the network's own predicted mask, filled by this
// instead of by the network, says how much of the network's gain is finding the damage and how much is
// restoring what lies under it.
//
// inpaint_diffusion: the hole (mask > 0.5) is filled with the harmonic (membrane) interpolant of the pixels around
// it: the solution of Laplace's equation (each hole pixel the mean of its 4 neighbours) with the known pixels as
// boundary values, and zero normal derivative at the image's own edges (a neighbour outside the image is left
// out of the mean). Each channel on its own. Two steps:
//   1. onion peel: rings of hole pixels that touch a known or already filled pixel (8-neighbourhood) get the mean
//      of those, ring by ring from the outside in: a start already close to the solution;
//   2. Gauss-Seidel sweeps (row-major, in place) over the hole until no pixel changes by more than `tolerance` or
//      `max_sweeps` is reached.
// Properties the tests check: known pixels are never changed (bit for bit); a constant image is filled exactly
// (means of equal values, in double, are exact); an affine image (a x + b y + c) is filled to within the
// solver's tolerance (affine functions are harmonic: each pixel is the mean of its 4 neighbours); every filled
// value lies within the range of the known values (a maximum principle: means never leave it).
// A mask with no known pixel at all leaves the image as it is (nothing to fill from).
//
// inpaint_biharmonic: the hole is filled with the thin-plate (biharmonic) interpolant, which carries the gradients
// around the hole into it where the harmonic fill flattens them (a ramp bending at a speck, a soft highlight). The
// discrete problem: with L_s(u) the 5-point Laplacian at pixel s over its in-image neighbours only (sum of the
// neighbours minus their count times u_s, so the image's edges need no rule of their own), minimise the sum of L_s(u)^2
// over every site s whose stencil holds a hole pixel, over the hole's values. Its normal equations, L_h^T L_h u_hole =
// -L_h^T (the known pixels' part of L), are symmetric positive definite as soon as the hole has one known pixel beside
// it, and are solved in double, all channels together. Two hole pixels are coupled when one site's stencil holds both
// (up to two pixels apart, diagonals included), so the hole is split into the components of that 13-pixel neighbourhood
// (8-connectivity would not do: two specks one known pixel apart share a site) and each is solved alone, with memory
// for that component only. A component is solved directly: a Cholesky factorisation of its normal equations in
// row-major order, whose band is about two of the component's rows wide (a few pixels for a scratch of any length,
// twice the width of a blob), exact to rounding in n b^2 / 2 operations. Where that band would hold more than
// direct_max_doubles values (a blob over about 200 pixels across), conjugate gradients with a Jacobi preconditioner
// take over, matrix-free (L, then L^T, over the sites), from a start near the harmonic fill (the onion peel of
// inpaint_diffusion and at most 10 of its Gauss-Seidel sweeps), until the residual is below cg_tolerance times the
// right-hand side's norm or cg_max_iterations have run: CG alone needs thousands of iterations on a blob 100 pixels
// across (the condition number grows with the fourth power of the width), which is why it is only the fallback.
// A biharmonic fill has no maximum principle: it may overshoot the values around the hole (that is what lets it
// continue a gradient). Each filled value is clamped to the range of that channel's known pixels in the whole
// image: a fill stays a valid pixel of the image (restore writes 8/16-bit files), while a peak or valley the
// surroundings point to may still be completed inside the hole.
// Properties the tests check: known pixels bit for bit; any polynomial of degree <= 3 in x and y (its bilaplacian
// is 0, and so is the discrete one) is reproduced in a hole away from the edges to the solver's tolerance, where
// the harmonic fill misses a non-harmonic one such as x^2 + y^2; a constant image is filled exactly; holes at the
// edges and corners and many specks in one image converge, by both solvers, which agree. An all-hole mask leaves the
// image as it is.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace fg::data {

struct InpaintOptions {
  int64_t max_sweeps = 500;  // Gauss-Seidel sweeps at most (thin dust and scratches converge in a few dozen)
  double tolerance = 1e-6;   // stop when the largest change in a sweep is below this
  // inpaint_biharmonic: a component is solved directly (banded Cholesky) when its band holds at most
  // direct_max_doubles values (128 MiB: a blob up to about 200 pixels across), otherwise by conjugate gradients
  // (started from at most 10 of the sweeps above) with this stop.
  int64_t direct_max_doubles = int64_t(1) << 24;
  int64_t cg_max_iterations = 5000;  // specks: tens; a 3-px-wide scratch: a few hundred; a blob 100 px across: 5000
  double cg_tolerance = 1e-10;       // stop when |residual| <= cg_tolerance * |right-hand side|
};

// image: (C, H, W) f32 CPU; mask: (H, W) or (1, H, W) f32 CPU, the hole where > 0.5. Returns a new contiguous
// (C, H, W) f32 tensor. fg::Error naming the problem for bad shapes or types.
Tensor inpaint_diffusion(const Tensor& image, const Tensor& mask, const InpaintOptions& options = {});

// The same contract as inpaint_diffusion, filled biharmonically (above). The classical fill of `filmgrad restore
// --fill classical` and of `filmgrad eval`'s inpaint row.
Tensor inpaint_biharmonic(const Tensor& image, const Tensor& mask, const InpaintOptions& options = {});

// The hole a soft damage mask stands for: 1 where mask > threshold, then dilated by `dilate` pixels (a square
// (2 dilate + 1)^2 neighbourhood), 0 elsewhere; (1, H, W) f32. The dilation takes in the soft rims of specks that
// the threshold leaves out (they would otherwise be kept as known pixels and bleed into the fill).
// mask: (H, W) or (1, H, W) f32 CPU.
Tensor hole_from_mask(const Tensor& mask, double threshold = 0.5, int64_t dilate = 1);

}  // namespace fg::data
