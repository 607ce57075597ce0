#!/usr/bin/env python3
"""Scores restorations against the clean photographs with scikit-image's SSIM, independently of filmgrad's own
metrics (the way issue 11 measured the demo: gaussian weights, sigma 1.5, data range 1, RGB).

    score_restoration.py PIECES RESTORED RESTORED_CLEAN [--out FILE.md] [--csv FILE.csv] [--label TEXT]

PIECES is a `filmgrad synth` folder (damaged/, clean/, mask/); RESTORED holds `filmgrad restore --mask` of
PIECES/damaged (NAME_restored.png and NAME_restored_mask.png), RESTORED_CLEAN `filmgrad restore` of PIECES/clean.
Rows, each the mean SSIM to the clean photograph over the images, with the share of images it beats the damaged
input on:
  damaged         the input, unchanged (identity)
  restored        the network's restoration
  median3x3       a 3x3 median filter of the damaged image (per channel)
  inpaint         the damaged image with the network's predicted mask (> 0.5) filled by biharmonic inpainting
                  (scikit-image), a classical fill of the same holes the network fills
  clean in        the clean photograph restored by the network (must stay clean)
Needs Debian's python3-skimage (and python3-scipy, python3-pil); no filmgrad code runs here.
"""
import argparse
import os
import sys

try:
    import numpy as np
    from PIL import Image
    from scipy.ndimage import median_filter
    from skimage.metrics import structural_similarity
    from skimage.restoration import inpaint_biharmonic
except ImportError as e:  # one line, what to do
    sys.exit(f"score_restoration: error: {e}; install Debian's python3-skimage python3-scipy python3-pil")

Image.MAX_IMAGE_PIXELS = None


def load(path):
    im = Image.open(path)
    arr = np.asarray(im.convert("RGB") if im.mode not in ("I;16", "I") else im)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return arr.astype(np.float64) / scale


def ssim(a, b):
    return structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0)


def write_picture(a, names, damaged_root, rows=4, side=256):
    """Four images spread over the sorted list (the first, and three evenly after it), each row damaged | restored |
    clean, every tile resized to `side` px on its longer side."""
    picks = [names[int(i * len(names) / rows)] for i in range(min(rows, len(names)))]
    tiles = []
    for rel in picks:
        stem = rel[:-4]
        row = [Image.open(p).convert("RGB") for p in (os.path.join(damaged_root, rel),
                                                        os.path.join(a.restored, stem + a.suffix + ".png"),
                                                        os.path.join(a.pieces, "clean", rel))]
        scale = side / max(row[0].size)
        size = (max(1, round(row[0].size[0] * scale)), max(1, round(row[0].size[1] * scale)))
        tiles.append([im.resize(size, Image.LANCZOS) for im in row])
    w = max(t[0].size[0] for t in tiles)
    h = sum(t[0].size[1] for t in tiles) + 4 * (len(tiles) - 1)
    sheet = Image.new("RGB", (3 * w + 8, h), (255, 255, 255))
    y = 0
    for t in tiles:
        for k, im in enumerate(t):
            sheet.paste(im, (k * (w + 4), y))
        y += t[0].size[1] + 4
    root, ext = os.path.splitext(a.picture)
    tmp = root + ".tmp" + (ext or ".png")
    sheet.save(tmp)
    os.replace(tmp, a.picture)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pieces")
    ap.add_argument("restored")
    ap.add_argument("restored_clean")
    ap.add_argument("--out", help="write the table (Markdown) here too")
    ap.add_argument("--csv", help="per-image scores")
    ap.add_argument("--label", default="", help="a line printed above the table")
    ap.add_argument("--suffix", default="_restored")
    ap.add_argument("--picture", help="a PNG of four images, one row each: damaged | restored | clean")
    a = ap.parse_args()

    damaged_root = os.path.join(a.pieces, "damaged")
    if not os.path.isdir(damaged_root):
        sys.exit(f"score_restoration: error: {damaged_root} is not a folder; PIECES must be a `filmgrad synth` output")
    names = sorted(os.path.relpath(os.path.join(d, f), damaged_root)
                   for d, _, fs in os.walk(damaged_root) for f in fs if f.endswith(".png"))
    if not names:
        sys.exit(f"score_restoration: error: no PNG images under {damaged_root}")
    rows = {k: [] for k in ("damaged", "restored", "median3x3", "inpaint", "clean in")}
    per_image = []
    for rel in names:
        stem = rel[:-4]
        paths = {"restored": os.path.join(a.restored, stem + a.suffix + ".png"),
                 "mask": os.path.join(a.restored, stem + a.suffix + "_mask.png"),
                 "clean in": os.path.join(a.restored_clean, stem + a.suffix + ".png")}
        for k, p in paths.items():
            if not os.path.isfile(p):
                sys.exit(f"score_restoration: error: {p} is missing; restore {os.path.join(damaged_root, rel)} "
                         "(with --mask) and its clean image first")
        d = load(os.path.join(damaged_root, rel))
        c = load(os.path.join(a.pieces, "clean", rel))
        hole = np.asarray(Image.open(paths["mask"]).convert("L")) > 127
        s = {"damaged": ssim(d, c), "restored": ssim(load(paths["restored"]), c),
             "median3x3": ssim(median_filter(d, size=(3, 3, 1)), c),
             "inpaint": ssim(inpaint_biharmonic(d, hole, channel_axis=2), c) if hole.any() else None,
             "clean in": ssim(load(paths["clean in"]), c)}
        if s["inpaint"] is None:
            s["inpaint"] = s["damaged"]
        for k in rows:
            rows[k].append(s[k])
        per_image.append((rel, s))

    if a.picture:
        write_picture(a, names, damaged_root)
    base = np.array(rows["damaged"])
    lines = []
    if a.label:
        lines.append(a.label)
        lines.append("")
    lines.append(f"| {len(names)} images | mean SSIM to the clean photo | better than damaged | gain |")
    lines.append("| --- | --- | --- | --- |")
    for k, v in rows.items():
        v = np.array(v)
        better = "" if k in ("damaged", "clean in") else f"{np.mean(v > base) * 100:.0f} %"
        gain = "" if k in ("damaged", "clean in") else f"{np.mean(v - base):+.4f}"
        lines.append(f"| {k} | {v.mean():.4f} ± {v.std():.4f} | {better} | {gain} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(a.out + ".tmp", a.out)
    if a.csv:
        with open(a.csv + ".tmp", "w") as f:
            f.write("image," + ",".join(rows) + "\n")
            for rel, s in per_image:
                f.write(rel + "," + ",".join(f"{s[k]:.6f}" for k in rows) + "\n")
        os.replace(a.csv + ".tmp", a.csv)


if __name__ == "__main__":
    main()
