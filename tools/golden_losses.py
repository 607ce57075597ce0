#!/usr/bin/python3
"""Writes tests/golden/losses.safetensors: PyTorch's answers for the losses of nn/losses.h and
models/perceptual_loss.h.

Run with Debian's Python, which has python3-torch 1.13 and python3-torchvision:

    /usr/bin/python3 tools/golden_losses.py

The perceptual loss is fastai v1 / DeOldify's FeatureLoss written out (see perceptual_loss below) on a narrow
VGG16-BN `features` built by torchvision's own make_layers (the function torchvision.models.vgg16_bn uses), so the
names ("features.0.weight", "features.1.running_mean", ...) and the module indices (taps 5, 12, 22, 32, 42) are
torchvision's; only the channel counts are multiplied by WIDTH (64 -> 8, ..., 512 -> 64). Its BatchNorm statistics,
weights and biases are drawn at random (not the init's 0 and 1, which would hide a BatchNorm that is skipped or
run in training mode), and it runs in eval mode, as the loss network does. All three terms of every layer are
computed, including the layers of weight 0 in Model 1 (PyTorch multiplies them by 0; filmgrad skips them).

The SSIM and the Gram matrix are make_golden.py's (pytorch-ssim's definition; X X^T / (c h w)), not rewritten.

The file is f64 and holds (names):
  vgg.<key>                   the VGG's state dict (num_batches_tracked stored as f64, like everything here)
  pred, target                (2, 3, 32, 32), the inputs of the perceptual loss
  <variant>.total             model1, model2, model3: the loss (a single element)
  <variant>.terms             the weighted terms that sum to it: pixel terms (l1, then ssim_loss5 for model3), the
                              5 content terms, the 5 style terms
  <variant>.gpred             d total / d pred
  ssim_loss_w5.*, ssim_loss_w11.*     x, y (2, 4, 12, 11), y = 1 - ssim, gx, gy (upstream gradient 1)
  gram_style_loss.*           fin, ftarget (2, 5, 6, 7), weight 3.5: y, gfin, gftarget
The metadata records the width, the layer weights of each variant and the torch version.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import case_generator, gram_matrix, ssim, write_golden  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    from torchvision.models.vgg import cfgs, make_layers
except ImportError:
    sys.stderr.write("golden_losses.py needs torchvision (its VGG builder): apt-get install python3-torchvision\n")
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "losses.safetensors")
FORMAT = "filmgrad-golden-losses-1"

WIDTH = 0.125
TAPS = [5, 12, 22, 32, 42]
VARIANTS = {
    # name: (layer weights, content distance, pixel terms)
    "model1": ([0.0, 0.0, 20.0, 70.0, 10.0], "l1", ["l1"]),
    "model2": ([2.0, 4.0, 5.0, 6.0, 6.0], "l1", ["l1"]),
    "model3": ([2.0, 4.0, 5.0, 6.0, 6.0], "ssim5", ["l1", "ssim5"]),
}


class VGGFeatures(nn.Module):
    """torchvision's VGG16-BN without the classifier, channel counts times WIDTH."""

    def __init__(self, width):
        super().__init__()
        cfg = [v if v == "M" else max(1, int(v * width + 0.5)) for v in cfgs["D"]]
        self.features = make_layers(cfg, batch_norm=True)


def randomise(vgg, gen):
    for m in vgg.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * 9
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=gen) * 0.1
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.randn(c, generator=gen) * 0.2
            m.running_mean.data = torch.randn(c, generator=gen) * 0.2
            m.running_var.data = torch.rand(c, generator=gen) * 1.5 + 0.5
            m.num_batches_tracked.data = torch.tensor(37, dtype=torch.long)


def ssim_loss(x, y, window_size):
    return 1.0 - ssim(x, y, window_size, 1.5)


def gram_style_loss(fin, ftarget, weight):
    return F.l1_loss(gram_matrix(fin), gram_matrix(ftarget)) * 5e3 * weight ** 2


def distance(kind, a, b):
    return F.l1_loss(a, b) if kind == "l1" else ssim_loss(a, b, 5)


def taps(vgg, x):
    out = []
    for i, m in enumerate(vgg.features):
        x = m(x)
        if i in TAPS:
            out.append(x)
        if i == TAPS[-1]:
            return out


def perceptual_loss(vgg, pred, target, variant):
    """FeatureLoss.forward: target features first (cloned, no gradient needed), then the prediction's."""
    weights, content_kind, pixel_kinds = VARIANTS[variant]
    out_feat = [f.clone() for f in taps(vgg, target.detach())]
    in_feat = taps(vgg, pred)
    terms = [distance(kind, pred, target) for kind in pixel_kinds]
    terms += [distance(content_kind, fi, fo) * w for fi, fo, w in zip(in_feat, out_feat, weights)]
    terms += [gram_style_loss(fi, fo, w) for fi, fo, w in zip(in_feat, out_feat, weights)]
    return sum(terms), terms


def main():
    torch.set_num_threads(1)
    out = {}
    meta = {"_format": FORMAT, "_generator": "tools/golden_losses.py", "_torch_version": torch.__version__,
            "vgg_width": repr(WIDTH), "taps": json.dumps(TAPS)}

    vgg = VGGFeatures(WIDTH)
    randomise(vgg, case_generator("vgg"))
    vgg.eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    for k, v in vgg.state_dict().items():
        out["vgg." + k] = v
    names = list(vgg.state_dict().keys())
    assert names[:7] == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                         "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"]
    assert [type(vgg.features[i]).__name__ for i in TAPS] == ["ReLU"] * 5
    assert [type(vgg.features[i + 1]).__name__ for i in TAPS] == ["MaxPool2d"] * 5

    gen = case_generator("perceptual.inputs")
    target = torch.randn(2, 3, 32, 32, generator=gen)
    pred = target + 0.4 * torch.randn(2, 3, 32, 32, generator=gen)
    out["pred"], out["target"] = pred, target
    for variant, (weights, content_kind, pixel_kinds) in VARIANTS.items():
        p = pred.clone().requires_grad_(True)
        total, terms = perceptual_loss(vgg, p, target, variant)
        (gpred,) = torch.autograd.grad(total, [p])
        out[variant + ".total"] = total.detach().reshape(1)
        out[variant + ".terms"] = torch.stack([t.detach() for t in terms])
        out[variant + ".gpred"] = gpred
        meta[variant] = json.dumps({"layer_weights": weights, "content": content_kind, "pixel": pixel_kinds})
        assert all(torch.isfinite(t) for t in terms) and gpred.abs().sum() > 0

    for window in (5, 11):
        name = "ssim_loss_w%d" % window
        gen = case_generator(name)
        x = torch.rand(2, 4, 12, 11, generator=gen)
        y = (x + 0.2 * torch.randn(2, 4, 12, 11, generator=gen)).clamp(0.0, 1.0)
        xl, yl = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        loss = ssim_loss(xl, yl, window)
        gx, gy = torch.autograd.grad(loss, [xl, yl])
        out.update({name + ".x": x, name + ".y": y, name + ".loss": loss.detach().reshape(1),
                    name + ".gx": gx, name + ".gy": gy})

    gen = case_generator("gram_style_loss")
    fin = torch.relu(torch.randn(2, 5, 6, 7, generator=gen))
    ftarget = torch.relu(torch.randn(2, 5, 6, 7, generator=gen))
    fl, tl = fin.clone().requires_grad_(True), ftarget.clone().requires_grad_(True)
    loss = gram_style_loss(fl, tl, 3.5)
    gfin, gftarget = torch.autograd.grad(loss, [fl, tl])
    out.update({"gram_style_loss.fin": fin, "gram_style_loss.ftarget": ftarget,
                "gram_style_loss.loss": loss.detach().reshape(1), "gram_style_loss.gfin": gfin,
                "gram_style_loss.gftarget": gftarget})
    meta["gram_style_loss"] = json.dumps({"weight": 3.5})

    tensors = {k: v.detach().to(torch.float64).contiguous() for k, v in out.items()}
    blob = write_golden(OUT_PATH, tensors, meta)
    print("wrote %s: %d tensors, %d bytes (torch %s)" %
          (os.path.relpath(OUT_PATH, ROOT), len(tensors), len(blob), torch.__version__))
    for variant in VARIANTS:
        print("  %s total %.6f terms %s" % (variant, tensors[variant + ".total"].item(),
                                            " ".join("%.4g" % t for t in tensors[variant + ".terms"].tolist())))


if __name__ == "__main__":
    main()
