#!/usr/bin/python3
"""Writes tests/golden/dynamic_unet.safetensors: PyTorch's answers for a small Dynamic U-Net (SPEC section B).

Run with Debian's Python, which has python3-torch 1.13 and python3-torchvision:

    /usr/bin/python3 tools/golden_dynamic_unet.py

The network is DynamicUNet of tools/torch_twins.py, a PyTorch twin of models/dynamic_unet.h with the same state-dict
names: the encoder is a ResNet34 body with torchvision's names ("encoder.conv1.weight",
"encoder.layer1.0.bn1.running_mean", ...), then "bridge", "blocks.0".."blocks.3" (UnetBlock: shuf, bn, conv1, conv2,
and attn in block 1 only), "last_shuf", "res" and "head", built the way fastai v1's DynamicUnet builds them
(PixelShuffle_ICNR with ICNR init, blur, SelfAttention whose query/key/value are spectrally normalised 1x1 Conv1d).
torchvision's ResNet cannot be made narrower (BasicBlock insists on 64 base channels), so the body is written out
there with a width multiplier; the script checks that at width 1 it has exactly torchvision.models.resnet34's names
and shapes and computes the same function, and that the whole network at width 1 has the 41,405,589 parameters SPEC
B states.

The golden network has width 1/32, the smallest power-of-two width at which every channel count is an integer
>= 1 and block 1's self-attention has C/8 >= 1 (C = 12): the encoder's stages have 2, 4, 8, 16 channels. The
file is f64 and holds (names):
  state.<key>            every parameter and buffer before anything ran (the C++ test loads these)
  x, gy, target          the input (2, 3, 64, 64), an upstream gradient and an MSE target
  y_train                the output of one training-mode forward from that state
  grad.x, grad.<param>   the gradients of x and of every parameter for y_train.backward(gy)
  after_forward.<buffer> every buffer after that forward (BatchNorm running statistics, num_batches_tracked, and
                         the spectral-norm vectors weight_u, weight_v after their power iteration)
  y_eval                 the output of an eval-mode forward that follows (running statistics and u, v as updated)
  adam.losses            (3): the MSE losses of 3 Adam steps (lr 1e-3, default betas) in training mode, starting
                         again from state.*; the loss of step k is computed before its update
  adam.final.<param>     every parameter after the 3 steps
Spectral norm: PyTorch runs its power iteration (one by default) in a forward pre-hook on every training-mode
forward and none in eval; filmgrad does the same, so the training forward above runs one iteration on both
sides, the eval forward none, and each Adam step one.

The state is not left at its initial values where those would hide mistakes: BatchNorm weights, biases and
running statistics, the decoder's biases (zero at init in fastai) and the attention's gamma (zero at init, which
would make the attention's gradients vanish) are drawn at random before the file is written, and the head's
weights are scaled down so the sigmoid range does not saturate.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import write_golden  # noqa: E402  (make_golden exits with a hint when torch is missing)
from torch_twins import DynamicUNet, ResNet34Body, SelfAttention, Y_RANGE, count  # noqa: E402  (the twin itself)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    import torchvision
except ImportError:
    sys.stderr.write("golden_dynamic_unet.py needs torchvision to check the encoder's names: "
                     "apt-get install python3-torchvision\n")
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "dynamic_unet.safetensors")
FORMAT = "filmgrad-golden-dynamic-unet-1"

WIDTH = 1.0 / 32
BATCH, HEIGHT, WIDTH_PX = 2, 64, 64
SEED = 4004
ADAM_STEPS = 3
ADAM_LR = 1e-3

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------------------------------------------------------
# Checks of the twin against torchvision and against SPEC B's counts.

def check_full_width():
    torch.manual_seed(0)
    tv = torchvision.models.resnet34(weights=None).double().eval()
    body = ResNet34Body(1.0).eval()
    tv_state = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    ours = body.state_dict()
    assert list(ours.keys()) == list(tv_state.keys()), "encoder names differ from torchvision's"
    for k, v in tv_state.items():
        assert ours[k].shape == v.shape, (k, ours[k].shape, v.shape)
    body.load_state_dict(tv_state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        t = tv.conv1(x)
        t = tv.maxpool(tv.relu(tv.bn1(t)))
        ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(t))))
        got = body.forward_features(x)[-1]
    assert torch.equal(ref, got), "encoder twin computes something other than torchvision's resnet34"

    net = DynamicUNet(1.0)
    total = count(net.parameters())
    encoder = count(net.encoder.parameters())
    encoder_bn = sum(count(m.parameters()) for m in net.encoder.modules() if isinstance(m, nn.BatchNorm2d))
    trainable_frozen = total - encoder + encoder_bn
    assert (total, encoder, encoder_bn, trainable_frozen) == (41405589, 21284672, 17024, 20137941), \
        (total, encoder, encoder_bn, trainable_frozen)
    return total


# ---------------------------------------------------------------------------------------------------------------

def randomize_for_golden(net, gen):
    """Moves the values away from fastai's init where that init would hide mistakes (see the module docstring)."""
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.1, generator=gen)
                m.running_mean.normal_(0.0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0.0, 0.05, generator=gen)
            elif isinstance(m, SelfAttention):
                m.gamma.fill_(0.5)
        # Smaller head weights keep the logits where the sigmoid is not flat, so the outputs (and the eval output
        # above all) still carry the differences a mistake upstream would make.
        net.head.weight.mul_(0.25)


def main():
    total_full = check_full_width()

    torch.manual_seed(SEED)
    net = DynamicUNet(WIDTH)
    gen = torch.Generator()
    gen.manual_seed(SEED + 1)
    randomize_for_golden(net, gen)
    initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
    param_names = [k for k, _ in net.named_parameters()]
    buffer_names = [k for k, _ in net.named_buffers()]

    x = torch.randn(BATCH, 3, HEIGHT, WIDTH_PX, generator=gen)
    target = torch.randn(BATCH, 3, HEIGHT, WIDTH_PX, generator=gen)

    T = {}
    for k, v in initial.items():
        T["state." + k] = v
    T["x"] = x
    T["target"] = target

    # One training-mode forward (one power iteration per spectral norm) and its backward.
    net.train()
    xl = x.clone().requires_grad_(True)
    y = net(xl)
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    T["y_train"] = y.detach()
    T["gy"] = gy
    T["grad.x"] = xl.grad.clone()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        T["grad." + name] = p.grad.clone()  # a copy: the optimizer's zero_grad() below zeroes p.grad in place
    for name, b in net.named_buffers():
        T["after_forward." + name] = b.detach().clone()

    # Eval mode: running statistics and u, v as the training forward left them; no power iteration.
    net.eval()
    with torch.no_grad():
        T["y_eval"] = net(x)

    # Adam from the initial state again.
    net.load_state_dict(initial)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=ADAM_LR)
    losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad()
        loss = F.mse_loss(net(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    T["adam.losses"] = torch.tensor(losses)
    for name, p in net.named_parameters():
        T["adam.final." + name] = p.detach().clone()

    tensors = {k: v.detach().to(torch.float64).contiguous().clone() for k, v in T.items()}
    meta = {
        "_format": FORMAT,
        "_generator": "tools/golden_dynamic_unet.py",
        "_torch_version": torch.__version__,
        "width": repr(WIDTH),
        "out_channels": "3",
        "y_lo": repr(Y_RANGE[0]),
        "y_hi": repr(Y_RANGE[1]),
        "adam_lr": repr(ADAM_LR),
        "adam_steps": str(ADAM_STEPS),
        "parameters": ",".join(param_names),
        "buffers": ",".join(buffer_names),
    }
    blob = write_golden(OUT_PATH, tensors, meta)

    yt, ye = T["y_train"], T["y_eval"]
    print("wrote %s: %d tensors, %d bytes (torch %s)" %
          (os.path.relpath(OUT_PATH, ROOT), len(tensors), len(blob), torch.__version__))
    print("  width %g: %d parameters (%d at width 1, as SPEC B states), %d buffers" %
          (WIDTH, count(net.parameters()), total_full, len(buffer_names)))
    print("  y_train in [%.4f, %.4f], std %.4f; y_eval in [%.4f, %.4f], std %.4f" %
          (yt.min().item(), yt.max().item(), yt.std().item(), ye.min().item(), ye.max().item(), ye.std().item()))
    print("  adam losses %s" % " ".join("%.10f" % v for v in losses))


if __name__ == "__main__":
    main()
