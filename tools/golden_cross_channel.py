#!/usr/bin/python3
"""Writes tests/golden/cross_channel.safetensors: PyTorch's answers for the cross-channel network (SPEC.md section A,
models/cross_channel.h) at a small width, for each of its three variants.

Run with Debian's Python, which has python3-torch (1.13):

    /usr/bin/python3 tools/golden_cross_channel.py           # writes the golden file
    /usr/bin/python3 tools/golden_cross_channel.py --count   # prints the parameter counts at width 1

The PyTorch twin (CrossChannelNet in tools/torch_twins.py) has the same module tree and state-dict names as the C++
network, so its state dict loads into filmgrad unchanged. Everything is f64 and deterministic (one thread, fixed
seeds). Tensors in the file:

  x, true_mask, b_clean                  the inputs: x = (R, G, B_damaged), 2 x 3 x 64 x 48
  <v>.state.<name>                       the initial parameters and buffers of variant <v> (full, no_mask,
                                         plain_unet); BatchNorm weights, biases and running statistics are
                                         randomised so that they are not the trivial 1 / 0
  <v>.train.<output>                     outputs of a training-mode forward (mask_logits, b_cross, b_final: those
                                         the variant has)
  <v>.train.loss                         the combined loss of those outputs (shape (1,))
  <v>.grad.<param> and <v>.grad.x        its gradients with respect to every parameter and to x
  <v>.after.<buffer>                     BatchNorm running statistics after that one training forward
  <v>.eval.<output>                      outputs in eval mode, with the running statistics after the training forward
  <v>.adam_losses                        (4,): from the initial state, the loss before each of 3 Adam steps
                                         (lr ADAM_LR, default betas) and after the third

The input is 64 x 48 rather than square 32 x 32 so that the bottleneck (4 x 3) is wide enough for the dilated
convolutions to reach neighbouring pixels and so that a swap of H and W cannot go unnoticed.
"""

import argparse
import json
import os
import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("golden_cross_channel.py needs PyTorch; run it with Debian's Python:\n"
                     "    /usr/bin/python3 tools/golden_cross_channel.py\n")
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import write_golden  # noqa: E402  (also sets f64 default, one thread, determinism)
from torch_twins import CrossChannelNet, channels, combined_loss, num_parameters  # noqa: E402  (the twin itself)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "cross_channel.safetensors")
FORMAT = "filmgrad-golden-cross-channel-1"
WIDTH = 1.0 / 32.0  # channels 2, 4, 8, 16, 16, 16, 8, 4, 2, 1: keeps the file near 3 MB
ADAM_LR = 1e-3      # the paper trains at 1e-4; 1e-3 makes three steps change the loss visibly
N, H, W = 2, 64, 48
VARIANTS = ("full", "no_mask", "plain_unet")


# ---------------------------------------------------------------------------------------------------------------
# The data and the golden values.

def make_inputs():
    g = torch.Generator()
    g.manual_seed(20240601)
    r = torch.rand(N, 1, H, W, generator=g)
    gr = torch.rand(N, 1, H, W, generator=g)
    b_clean = (0.3 * r + 0.6 * gr + 0.1 * torch.rand(N, 1, H, W, generator=g)).clamp(0, 1)
    # A blobby mask: coarse noise, upsampled and thresholded, with a soft edge band.
    coarse = torch.rand(N, 1, H // 8, W // 8, generator=g)
    fine = F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=False)
    true_mask = ((fine - 0.55) * 8).clamp(0, 1)
    noise = torch.where(torch.rand(N, 1, H, W, generator=g) < 0.5, 0.0, 1.0)
    b_damaged = true_mask * noise + (1 - true_mask) * b_clean
    x = torch.cat([r, gr, b_damaged], 1)
    return x, true_mask, b_clean


def make_model(variant, seed):
    torch.manual_seed(seed)
    model = CrossChannelNet(variant, WIDTH)
    g = torch.Generator()
    g.manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def golden_variant(variant, seed, x, true_mask, b_clean, tensors):
    model = make_model(variant, seed)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k, v in initial.items():
        tensors["%s.state.%s" % (variant, k)] = v

    model.train()
    xg = x.clone().requires_grad_(True)
    out = model.forward_all(xg)
    loss = combined_loss(out, true_mask, b_clean)
    loss.backward()
    for k, v in out.items():
        tensors["%s.train.%s" % (variant, k)] = v.detach()
    tensors["%s.train.loss" % variant] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        tensors["%s.grad.%s" % (variant, k)] = p.grad.detach().clone()
    tensors["%s.grad.x" % variant] = xg.grad.detach().clone()
    for k, b in model.named_buffers():
        if not k.endswith("num_batches_tracked"):
            tensors["%s.after.%s" % (variant, k)] = b.detach().clone()

    model.eval()
    with torch.no_grad():
        for k, v in model.forward_all(x).items():
            tensors["%s.eval.%s" % (variant, k)] = v.detach()

    # Three Adam steps from the initial state.
    model.load_state_dict(initial)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=ADAM_LR)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        step_loss = combined_loss(model.forward_all(x), true_mask, b_clean)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    with torch.no_grad():
        losses.append(combined_loss(model.forward_all(x), true_mask, b_clean).item())
    tensors["%s.adam_losses" % variant] = torch.tensor(losses)
    return num_parameters(model), losses


def print_counts():
    for v in VARIANTS:
        model = CrossChannelNet(v, 1.0)
        subs = {name: num_parameters(m) for name, m in model.named_children()}
        print("%-10s width 1: %d parameters %s" % (v, num_parameters(model), subs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", action="store_true", help="print the parameter counts at width 1 and exit")
    args = ap.parse_args()
    if args.count:
        print_counts()
        return

    x, true_mask, b_clean = make_inputs()
    tensors = {"x": x, "true_mask": true_mask, "b_clean": b_clean}
    meta = {"_format": FORMAT, "_generator": "tools/golden_cross_channel.py", "_torch_version": torch.__version__,
            "width": repr(WIDTH), "adam_lr": repr(ADAM_LR), "channels": json.dumps(channels(WIDTH))}
    for i, v in enumerate(VARIANTS):
        count, losses = golden_variant(v, 1000 + i, x, true_mask, b_clean, tensors)
        meta["num_parameters." + v] = str(count)
        meta["num_parameters_width1." + v] = str(num_parameters(CrossChannelNet(v, 1.0)))
        print("%-10s %7d parameters; losses %s" % (v, count, ", ".join("%.6f" % l for l in losses)))

    blob = write_golden(OUT_PATH, tensors, meta)
    print("wrote %s (%d tensors, %.2f MB)" % (os.path.relpath(OUT_PATH, ROOT), len(tensors), len(blob) / 1e6))


if __name__ == "__main__":
    main()
