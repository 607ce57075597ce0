#!/usr/bin/env python3
"""Times one CPU training step (forward, MSE loss, backward, Adam step) of the TinyUNet of models/tiny_unet.h in
PyTorch, with the same shapes and thread counts as bench/bench_train_step.cpp, and writes the times as JSON.

Run with Debian's Python, which has python3-torch:
    /usr/bin/python3 tools/bench_torch_step.py --out bench/results/<dir>/torch_train_step.json
bench/bench_train_step.cpp reads that file (FG_TORCH_STEP_JSON) and reports PyTorch's time beside its own.
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("bench_torch_step.py: PyTorch is missing; run it with /usr/bin/python3 after 'apt-get install python3-torch'")


class TinyUNet(nn.Module):
    """The same layers, in the same order, as fg::models::TinyUNet."""

    def __init__(self, cin, cout, w):
        super().__init__()
        self.conv1a = nn.Conv2d(cin, w, 3, padding=1)
        self.conv1b = nn.Conv2d(w, w, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(w)
        self.conv2a = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.conv2b = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * w)
        self.mid = nn.Conv2d(2 * w, 4 * w, 3, padding=2, dilation=2)
        self.bn3 = nn.BatchNorm2d(4 * w)
        self.up2 = nn.Conv2d(4 * w, 8 * w, 1)
        self.dec2 = nn.Conv2d(4 * w, 2 * w, 3, padding=1)
        self.bn4 = nn.BatchNorm2d(2 * w)
        self.up1 = nn.Conv2d(2 * w, 4 * w, 1)
        self.dec1 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.head = nn.Conv2d(w, cout, 1)

    def forward(self, x):
        e1 = self.bn1(F.relu(self.conv1b(F.relu(self.conv1a(x)))))
        e2 = self.bn2(F.relu(self.conv2b(F.relu(self.conv2a(F.max_pool2d(e1, 2))))))
        m = self.bn3(F.relu(self.mid(F.max_pool2d(e2, 2))))
        u2 = F.pixel_shuffle(F.relu(self.up2(m)), 2)
        d2 = self.bn4(F.relu(self.dec2(torch.cat([u2, e2], 1))))
        u1 = F.pixel_shuffle(F.relu(self.up1(d2)), 2)
        d1 = F.relu(self.dec1(torch.cat([u1, e1], 1)))
        return self.head(d1)


def time_step(threads, batch, size, width, seconds):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = TinyUNet(3, 3, width)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size, size)
    y = torch.rand(batch, 3, size, size)

    def step():
        opt.zero_grad()
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 5:
        step()
        n += 1
    return (time.perf_counter() - start) / n * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    result = {
        "torch_version": torch.__version__,
        "batch": args.batch, "size": args.size, "width": args.width,
        "ms_per_step": {str(t): time_step(t, args.batch, args.size, args.width, args.seconds) for t in args.threads},
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
