#!/usr/bin/python3
"""Writes tests/golden/data.safetensors: PyTorch's answers for the resizes of data/resize.h.

Run with Debian's Python, which has python3-torch (1.13):

    /usr/bin/python3 tools/make_data_fixtures.py

Every case is one (C, H, W) image and what PyTorch makes of it, computed in f64:
  <case>.x   (C, H, W) the input; values rounded to f32 so the f32 path sees the same data
  <case>.y   (C, h, w) the answer:
     op "bilinear": F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False)  (no antialias)
     op "area":     F.adaptive_avg_pool2d(x, (h, w)) with H and W integer multiples of h and w, where it is the
                    mean of each block, which is what resize_area must give
     op "resize":   data/resize.h's resize(): area along a shrinking axis, bilinear along a growing one, built here
                    from the two ops above (bilinear to (H, w) when only W grows, then the block mean to (h, w);
                    the two 1-D passes commute, both being linear and acting on different axes)
     op "augment":  data/augment.h's apply_augment(x, params, lighting), computed the way fastai v1 computes it:
                    the grid linspace(-1, 1, n) per axis as (x, y); the symmetric warp's homography solved from
                    _find_coeffs' 8x8 system (torch.linalg.solve) and applied to the grid; then the affine matrix
                    I @ flip @ zoom (get_transforms' order) applied to the warped grid; F.grid_sample(bilinear,
                    padding_mode='reflection', align_corners=True: fastai v1's grid assumes PyTorch < 1.3's
                    corner-aligned sampling); then, when lighting is on, sigmoid((logit(clamp(x, 1e-7, 1 - 1e-7))
                    + logit(change)) * scale). A separate implementation from the C++ one, in PyTorch's terms.
The file's __metadata__ maps each case name to a JSON string: {"op", "out_h", "out_w", "what"} for resizes;
{"op": "augment", "what", "lighting", "flip", "warp", "warp_x", "warp_y", "warp_x_bottom", "warp_y_right", "zoom",
"zoom_scale", "zoom_row", "zoom_col", "brightness", "brightness_change", "contrast", "contrast_scale"} (flags as 0/1,
field names as in data::AugmentParams) for augmentations. Keys starting with "_" describe the file (format,
generator, torch version).

Each case draws from its own generator seeded from its name (make_golden.case_generator's rule), so the file is the
same bytes on every run. The safetensors writer is make_golden.write_golden, imported, not rewritten.
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import case_generator, write_golden  # noqa: E402  (exits with a hint when torch is missing)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "data.safetensors")
FORMAT = "filmgrad-golden-data-1"
MAX_BYTES = 200 * 1024

torch.set_num_threads(1)


def image(name, c, h, w):
    """Uniform values in [0, 1), rounded to f32, as f64."""
    g = case_generator(name)
    return torch.rand((c, h, w), generator=g, dtype=torch.float64).to(torch.float32).to(torch.float64)


def bilinear(x, h, w):
    return F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def area(x, h, w):
    assert x.shape[1] % h == 0 and x.shape[2] % w == 0, ("area cases need integer factors", x.shape, h, w)
    return F.adaptive_avg_pool2d(x[None], (h, w))[0]


def resize(x, h, w):
    """resize(): area where the axis shrinks, bilinear where it grows (each 1-D pass alone, then the other)."""
    _, H, W = x.shape
    y = x
    if h > H or w > W:  # the growing axes first, by bilinear (a no-op along an axis that keeps or shrinks its size)
        y = bilinear(y, h if h > H else H, w if w > W else W)
    return area(y, h, w)


_ORIG = [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]


def find_coeffs(orig, targ):
    """fastai's _find_coeffs: the 8 coefficients of the homography taking each targ point to its orig point."""
    rows = []
    for (tx, ty), (ox, oy) in zip(targ, orig):
        rows.append([tx, ty, 1, 0, 0, 0, -ox * tx, -ox * ty])
        rows.append([0, 0, 0, tx, ty, 1, -oy * tx, -oy * ty])
    a = torch.tensor(rows, dtype=torch.float64)
    b = torch.tensor(orig, dtype=torch.float64).view(8)
    return torch.linalg.solve(a, b)


def fastai_augment(x, p, lighting):
    """fastai v1's pipeline for one image: coord (warp), affine (flip @ zoom), grid_sample, lighting."""
    c, h, w = x.shape
    xs = torch.linspace(-1, 1, w) if w > 1 else torch.tensor([-1.0])
    ys = torch.linspace(-1, 1, h) if h > 1 else torch.tensor([-1.0])
    flow = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1).reshape(-1, 2)
    if p["warp"]:
        m0, m1, m2, m3 = p["warp_y_right"], p["warp_y"], p["warp_x_bottom"], p["warp_x"]
        targ = [[-1 - m3, -1 - m1], [-1 - m2, 1 + m1], [1 + m3, -1 - m0], [1 + m2, 1 + m0]]
        coeffs = torch.cat([find_coeffs(_ORIG, targ), torch.ones(1)]).view(3, 3)
        hom = flow @ coeffs[:, :2].t() + coeffs[:, 2]
        flow = hom[:, :2] / hom[:, 2:3]
    m = torch.eye(3)
    if p["flip"]:
        m = m @ torch.tensor([[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    if p["zoom"]:
        s = p["zoom_scale"]
        col_c = (1 - 1 / s) * (2 * p["zoom_col"] - 1)
        row_c = (1 - 1 / s) * (2 * p["zoom_row"] - 1)
        m = m @ torch.tensor([[1 / s, 0, col_c], [0, 1 / s, row_c], [0, 0, 1.0]])
    y = x
    if p["flip"] or p["warp"] or p["zoom"]:
        flow = flow @ m[:2, :2].t() + m[:2, 2]
        y = F.grid_sample(x[None], flow.view(1, h, w, 2), mode="bilinear", padding_mode="reflection",
                          align_corners=True)[0]
    if lighting and (p["brightness"] or p["contrast"]):
        t = y.clamp(1e-7, 1 - 1e-7)
        t = torch.log(t / (1 - t))
        if p["brightness"]:
            ch = p["brightness_change"]
            t = t + math.log(ch / (1 - ch))
        if p["contrast"]:
            t = t * p["contrast_scale"]
        y = torch.sigmoid(t)
    return y


AUGMENT_DEFAULTS = {"flip": 0, "warp": 0, "warp_x": 0.0, "warp_y": 0.0, "warp_x_bottom": 0.0, "warp_y_right": 0.0,
                    "zoom": 0, "zoom_scale": 1.0, "zoom_row": 0.5, "zoom_col": 0.5, "brightness": 0,
                    "brightness_change": 0.5, "contrast": 0, "contrast_scale": 1.0}


def build_cases():
    cases = {}

    def add(name, op, shape, h, w, what):
        assert name not in cases and "." not in name and not name.startswith("_"), name
        x = image(name, *shape)
        y = {"bilinear": bilinear, "area": area, "resize": resize}[op](x, h, w)
        cases[name] = (x, y, {"op": op, "out_h": h, "out_w": w, "what": what})

    add("bilinear_up_3x5x7_to_11x16", "bilinear", (3, 5, 7), 11, 16, "upscaling by non-integer factors")
    add("bilinear_up2_1x4x6_to_8x12", "bilinear", (1, 4, 6), 8, 12, "upscaling by exactly 2")
    add("bilinear_down_2x12x10_to_5x4", "bilinear", (2, 12, 10), 5, 4, "downscaling (sampling, no antialias)")
    add("bilinear_mixed_1x9x6_to_4x13", "bilinear", (1, 9, 6), 4, 13, "rows shrink, columns grow")
    add("bilinear_from_1x1_to_3x4", "bilinear", (2, 1, 1), 3, 4, "a single pixel spread out")
    add("bilinear_4x1_to_1x6", "bilinear", (1, 4, 1), 1, 6, "one output row: source row 0.5 * H - 0.5")
    add("bilinear_same_size_3x7x5", "bilinear", (3, 7, 5), 7, 5, "the same size: the identity")
    add("bilinear_up_large_ratio_1x3x2_to_17x23", "bilinear", (1, 3, 2), 17, 23, "ratios above 5 with clamped edges")

    add("area_3x12x18_to_4x6", "area", (3, 12, 18), 4, 6, "3x3 blocks")
    add("area_1x8x8_to_2x4", "area", (1, 8, 8), 2, 4, "4x2 blocks")
    add("area_2x6x5_to_6x1", "area", (2, 6, 5), 6, 1, "rows kept, each row averaged to one pixel")
    add("area_1x7x9_to_1x1", "area", (1, 7, 9), 1, 1, "the whole image to its mean")
    add("area_3x32x48_to_8x8", "area", (3, 32, 48), 8, 8, "4x6 blocks, unequal factors")

    add("resize_rows_shrink_cols_grow_2x12x5_to_4x9", "resize", (2, 12, 5), 4, 9, "area rows, bilinear columns")
    add("resize_rows_grow_cols_shrink_1x5x16_to_7x4", "resize", (1, 5, 16), 7, 4, "bilinear rows, area columns")
    add("resize_both_shrink_3x10x15_to_5x3", "resize", (3, 10, 15), 5, 3, "area both ways")
    add("resize_both_grow_1x4x3_to_9x10", "resize", (1, 4, 3), 9, 10, "bilinear both ways")

    def add_augment(name, shape, what, lighting=1, **params):
        assert name not in cases and "." not in name and not name.startswith("_"), name
        assert set(params) <= set(AUGMENT_DEFAULTS), params
        p = dict(AUGMENT_DEFAULTS, **params)
        x = image(name, *shape)
        y = fastai_augment(x, p, lighting)
        cases[name] = (x, y, dict(p, op="augment", lighting=lighting, what=what))

    add_augment("augment_flip_3x6x9", (3, 6, 9), "horizontal flip alone", flip=1)
    add_augment("augment_warp_2x11x14", (2, 11, 14), "a perspective warp with four different magnitudes", warp=1,
                warp_x=0.21, warp_y=-0.13, warp_x_bottom=0.05, warp_y_right=0.24)
    add_augment("augment_warp_shrink_1x9x12", (1, 9, 12), "negative magnitudes: sources outside, reflected",
                warp=1, warp_x=-0.25, warp_y=-0.2, warp_x_bottom=-0.22, warp_y_right=-0.1)
    add_augment("augment_zoom_3x10x13", (3, 10, 13), "zoom 1.37 towards (0.2, 0.85)", zoom=1, zoom_scale=1.37,
                zoom_row=0.2, zoom_col=0.85)
    add_augment("augment_all_3x12x16", (3, 12, 16), "flip, warp, zoom, brightness and contrast together", flip=1,
                warp=1, warp_x=-0.17, warp_y=0.09, warp_x_bottom=0.22, warp_y_right=-0.04, zoom=1, zoom_scale=1.45,
                zoom_row=0.7, zoom_col=0.1, brightness=1, brightness_change=0.31, contrast=1, contrast_scale=1.8)
    add_augment("augment_all_geometry_only_1x7x5", (1, 7, 5), "the same kind of draw for a mask: lighting off",
                lighting=0, flip=1, warp=1, warp_x=0.12, warp_y=0.2, warp_x_bottom=-0.19, warp_y_right=0.07, zoom=1,
                zoom_scale=1.2, zoom_row=0.95, zoom_col=0.5, brightness=1, brightness_change=0.7, contrast=1,
                contrast_scale=0.6)
    add_augment("augment_lighting_2x4x5", (2, 4, 5), "brightness and contrast without geometry", brightness=1,
                brightness_change=0.62, contrast=1, contrast_scale=0.55)
    return cases


def main():
    tensors = {}
    meta = {"_format": FORMAT, "_generator": "tools/make_data_fixtures.py", "_torch_version": torch.__version__}
    cases = build_cases()
    for name, (x, y, params) in cases.items():
        tensors[name + ".x"] = x
        tensors[name + ".y"] = y
        meta[name] = json.dumps(params, sort_keys=True)
    blob = write_golden(OUT_PATH, tensors, meta, max_bytes=MAX_BYTES)
    print("wrote %s: %d cases, %d tensors, %d bytes (torch %s)" %
          (os.path.relpath(OUT_PATH, ROOT), len(cases), len(tensors), len(blob), torch.__version__))
    for name, (x, y, params) in cases.items():
        print("  %-44s %-8s %-14s -> %s" % (name, params["op"], tuple(x.shape), tuple(y.shape)))


if __name__ == "__main__":
    main()
