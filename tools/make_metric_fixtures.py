#!/usr/bin/python3
"""Writes tests/golden/metrics.safetensors: scikit-image's SSIM and PSNR for small image pairs, the oracle for
data/metrics.h (the evaluation metrics, not the pytorch-ssim training loss).

Run with Debian's Python after installing Debian's scikit-image:

    apt-get install python3-skimage
    /usr/bin/python3 tools/make_metric_fixtures.py

Every case is a pair of (C, H, W) images x, y and the numbers skimage gives for them:
  <case>.x, <case>.y            (C, H, W) the images; values are rounded to f32 so the f32 path sees the same data
  <case>.ssim                   () structural_similarity(x, y, gaussian_weights=True, sigma=sigma,
                                   use_sample_covariance=False, data_range=data_range, channel_axis=0,
                                   win_size=win_size)  (win_size None unless the case sets it)
  <case>.ssim_per_channel       (C,) the same call on each (H, W) channel alone
  <case>.psnr                   () peak_signal_noise_ratio(x, y, data_range=data_range) over the whole image
  <case>.psnr_per_channel       (C,) the same on each channel; +inf where the channel is identical
The file's __metadata__ maps each case name to a JSON string {"sigma", "win_size" (null: derived from sigma),
"data_range", "what"}; keys starting with "_" describe the file (format, generator, skimage/scipy/numpy versions).

Each case draws from its own generator seeded from its name (make_golden.case_generator's rule), so the file is
the same bytes on every run. The safetensors writer is make_golden.serialize, imported, not rewritten.
"""

import json
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import write_golden  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import scipy
    import skimage
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
except ImportError:
    sys.stderr.write("make_metric_fixtures.py needs scikit-image: apt-get install python3-skimage\n"
                     "and then run it with Debian's Python: /usr/bin/python3 tools/make_metric_fixtures.py\n")
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "metrics.safetensors")
FORMAT = "filmgrad-golden-metrics-1"
MAX_BYTES = 300 * 1024


def rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def as_f32_values(a):
    """f64 array whose values are exactly representable in f32."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def smooth(g, c, h, w):
    """A smooth image in [0.05, 0.95]: a few random low-frequency waves and soft blobs per channel."""
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    out = np.zeros((c, h, w))
    for ch in range(c):
        img = np.zeros((h, w))
        for _ in range(3):
            fy, fx = g.uniform(0.02, 0.15, size=2)
            phase = g.uniform(0, 2 * np.pi)
            img += g.uniform(0.3, 1.0) * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        for _ in range(2):
            cy, cx = g.uniform(0, h), g.uniform(0, w)
            s = g.uniform(2.0, 6.0)
            img += g.uniform(-1.0, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
        out[ch] = 0.05 + 0.9 * img
    return out


def damage(g, img, channels=None):
    """A damaged copy: dust specks (light and dark discs), one thin scratch, mild grain; clipped to [0, 1]."""
    out = img.copy()
    c, h, w = img.shape
    channels = range(c) if channels is None else channels
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for ch in channels:
        for _ in range(max(2, h * w // 150)):
            cy, cx, r = g.uniform(0, h), g.uniform(0, w), g.uniform(0.5, 2.0)
            out[ch][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = g.choice([0.0, 1.0])
        col = int(g.integers(0, w))
        out[ch, :, col] = np.clip(out[ch, :, col] + 0.4, 0, 1)
        out[ch] += g.normal(0, 0.02, size=(h, w))
    return np.clip(out, 0.0, 1.0)


def build_cases():
    """name -> (x, y, params). Shapes are (C, H, W)."""
    cases = {}

    def add(name, x, y, what, sigma=1.5, win_size=None, data_range=1.0):
        assert name not in cases and "." not in name and not name.startswith("_"), name
        cases[name] = (as_f32_values(x), as_f32_values(y),
                       {"sigma": sigma, "win_size": win_size, "data_range": data_range, "what": what})

    n = "grey_random_noisy_37x23"
    g = rng(n)
    x = g.uniform(0, 1, size=(1, 37, 23))
    add(n, x, np.clip(x + g.normal(0, 0.1, size=x.shape), 0, 1), "uniform noise image and a noisier copy")

    n = "grey_smooth_damaged_23x37"
    g = rng(n)
    x = smooth(g, 1, 23, 37)
    add(n, x, damage(g, x), "smooth image and a dusty, scratched copy")

    n = "rgb_smooth_damaged_40x32"
    g = rng(n)
    x = smooth(g, 3, 40, 32)
    add(n, x, damage(g, x), "smooth RGB image and a dusty, scratched copy")

    n = "rgb_random_pair_13x16"
    g = rng(n)
    add(n, g.uniform(0, 1, size=(3, 13, 16)), g.uniform(0, 1, size=(3, 13, 16)),
        "two independent uniform images (SSIM near 0, can be negative)")

    n = "rgb_blue_damaged_24x21"
    g = rng(n)
    x = smooth(g, 3, 24, 21)
    add(n, x, damage(g, x, channels=[2]), "only the blue channel damaged: R and G identical (SSIM 1, PSNR inf)")

    n = "grey_min_default_11x11"
    g = rng(n)
    x = smooth(g, 1, 11, 11)
    add(n, x, damage(g, x), "the smallest size the default 11-pixel window allows (one pixel left after the crop)")

    n = "grey_win7_7x7"
    g = rng(n)
    x = g.uniform(0, 1, size=(1, 7, 7))
    add(n, x, np.clip(x + g.normal(0, 0.15, size=x.shape), 0, 1),
        "7x7 with win_size=7: the radius-5 Gaussian reflects more than once; crop 3", win_size=7)

    n = "rgb_win7_9x7"
    g = rng(n)
    x = smooth(g, 3, 9, 7)
    add(n, x, damage(g, x), "9x7 RGB with win_size=7", win_size=7)

    n = "grey_win3_15x12"
    g = rng(n)
    x = smooth(g, 1, 15, 12)
    add(n, x, damage(g, x), "explicit win_size=3: crop 1 while the filter keeps radius 5", win_size=3)

    n = "grey_sigma08_19x17"
    g = rng(n)
    x = smooth(g, 1, 19, 17)
    add(n, x, damage(g, x), "sigma 0.8: radius int(3.5*0.8+0.5)=3, window 7", sigma=0.8)

    n = "grey_constant_vs_smooth_14x18"
    g = rng(n)
    add(n, np.full((1, 14, 18), 0.5), smooth(g, 1, 14, 18), "a constant image against a smooth one")

    n = "rgb_identical_17x19"
    g = rng(n)
    x = g.uniform(0, 1, size=(3, 17, 19))
    add(n, x, x.copy(), "identical images: SSIM 1, PSNR inf")

    n = "rgb_range255_12x14"
    g = rng(n)
    x = smooth(g, 3, 12, 14)
    add(n, np.round(x * 255), np.round(damage(g, x) * 255), "8-bit values as floats with data_range 255",
        data_range=255.0)
    return cases


def skimage_answers(x, y, p):
    kw = dict(gaussian_weights=True, sigma=p["sigma"], use_sample_covariance=False, data_range=p["data_range"])
    if p["win_size"] is not None:
        kw["win_size"] = p["win_size"]
    whole = structural_similarity(x, y, channel_axis=0, **kw)
    per_channel = np.array([structural_similarity(x[c], y[c], **kw) for c in range(x.shape[0])])
    assert abs(whole - per_channel.mean()) < 1e-15, (whole, per_channel)
    with np.errstate(divide="ignore"):  # identical images: mse 0, PSNR +inf, which is the answer we store
        psnr = peak_signal_noise_ratio(x, y, data_range=p["data_range"])
        psnr_pc = np.array([peak_signal_noise_ratio(x[c], y[c], data_range=p["data_range"])
                            for c in range(x.shape[0])])
    return {"ssim": np.array(whole), "ssim_per_channel": per_channel, "psnr": np.array(psnr),
            "psnr_per_channel": psnr_pc}


def main():
    tensors = {}
    meta = {"_format": FORMAT, "_generator": "tools/make_metric_fixtures.py",
            "_skimage_version": skimage.__version__, "_scipy_version": scipy.__version__,
            "_numpy_version": np.__version__}
    cases = build_cases()
    for name, (x, y, p) in cases.items():
        tensors[name + ".x"] = x
        tensors[name + ".y"] = y
        for k, v in skimage_answers(x, y, p).items():
            tensors[name + "." + k] = np.asarray(v, dtype=np.float64)
        meta[name] = json.dumps(p, sort_keys=True)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}

    blob = write_golden(OUT_PATH, tensors, meta, max_bytes=MAX_BYTES)

    print("wrote %s: %d cases, %d tensors, %d bytes (scikit-image %s, scipy %s)" %
          (os.path.relpath(OUT_PATH, ROOT), len(cases), len(tensors), len(blob), skimage.__version__,
           scipy.__version__))
    for name in cases:
        t = {k: tensors[name + "." + k] for k in ("ssim", "ssim_per_channel", "psnr", "psnr_per_channel")}
        print("  %-32s %-12s ssim %.6f per channel %s  psnr %.3f per channel %s" % (
            name, tuple(tensors[name + ".x"].shape), t["ssim"].item(),
            np.array2string(t["ssim_per_channel"].numpy(), precision=4),
            t["psnr"].item(), np.array2string(t["psnr_per_channel"].numpy(), precision=2)))


if __name__ == "__main__":
    main()
