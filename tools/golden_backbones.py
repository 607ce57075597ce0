#!/usr/bin/python3
"""Writes tests/golden/backbones.safetensors: PyTorch's answers for small versions of the torchvision backbones
(ResNet34 with and without fc, VGG16-BN and VGG16 features) and of the NoGAN critic.

Run with Debian's Python, which has python3-torch 1.13 and python3-torchvision 0.14:

    /usr/bin/python3 tools/golden_backbones.py

The PyTorch models are built from torchvision's own pieces where they exist (torchvision's BasicBlock, its VGG
make_layers on a width-scaled configuration "D", its init rules) and, at width 1, are asserted to have exactly the
state-dict names, order and shapes of torchvision.models.resnet34() / vgg16() / vgg16_bn(), so the small versions
carry the same names as the real ones. The critic is the dissertation's listing A.5 built as fastai v1 builds it
(conv_layer with NormType.Spectral, SelfAttention with spectrally normalised 1x1 Conv1d query/key/value), on the
ResNet34 body; see models/critic.h for its names.

For every model <m> the file holds, in f64:
  <m>.x                         the input (the critic's is upsampled 8x, nearest, to <m>.input_size first: a
                                193 x 193 minimum input and its gradients would otherwise be most of the file)
  <m>.state.<name>              the whole state dict before any forward (parameters and buffers; BatchNorm's
                                num_batches_tracked as f64, to be converted back to i64); absent when
                                <m>.state_from names the case whose state the model loads (the ResNet body loads
                                the classifier's, fc.* left out, as load_torchvision does)
  <m>.<mode>.out.<o>            each output o (see <m>.outputs) in mode train or eval (see <m>.modes)
  <m>.<mode>.gout.<o>           a random upstream gradient for that output
  <m>.<mode>.gx                 the gradient of sum_o <gout_o, out_o> with respect to the input
  <m>.<mode>.grad.<param>       ... and with respect to every parameter
  <m>.train.after.<buffer>      every buffer after the training-mode forward (running statistics, the batch
                                counter, spectral norm's u and v after their power iteration)
Each mode starts from the stored state. Metadata: <m>.arch, <m>.width, <m>.num_classes, <m>.dropout,
<m>.input_size, <m>.state_from, <m>.modes, <m>.outputs (comma-separated), <m>.taps (VGG: features indices of the
outputs), <m>.state_names (one "name shape" line per state-dict entry, in order); _cases lists the models;
_torchvision.<arch> lists the real torchvision model's entries the same way (full width), and _critic_w1.* the
width-1 critic's entries and parameter count.

Before the stored state is taken, BatchNorm affine parameters are randomised and the running statistics set from
one training forward of a calibration batch (momentum 1), spectral-norm power iterations included, so eval mode
is exercised with realistic, non-trivial statistics; the self-attention gamma and the head's conv biases are made
non-zero so every path carries signal.

The critic's Dropout2d draws from PyTorch's generator, which filmgrad does not reproduce, so the critic is compared in
eval mode (dropout is the identity there) and in train mode with p = 0 (BatchNorm on batch statistics and the
spectral-norm power iteration, both deterministic); <m>.dropout records the p of each mode.
"""

import copy
import math
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import SelfAttention, case_generator, write_golden  # noqa: E402  (also sets f64, one thread, determinism)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    import torchvision
    from torchvision.models.resnet import BasicBlock
    from torchvision.models.vgg import cfgs as vgg_cfgs, make_layers as vgg_make_layers
except ImportError:
    sys.stderr.write("golden_backbones.py needs torchvision: apt-get install python3-torchvision\n")
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "backbones.safetensors")
FORMAT = "filmgrad-golden-backbones-1"


def scaled(channels, width):
    """models/resnet.h's scaled_channels: max(1, round(c * w)) with halves rounded up (not Python's round)."""
    return max(1, int(math.floor(channels * width + 0.5)))


def shape_text(shape):
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


def state_lines(module):
    return "\n".join("%s %s" % (k, shape_text(v.shape)) for k, v in module.state_dict().items())


# ---------------------------------------------------------------------------------------------------------------
# The PyTorch twins.

def torchvision_init(module):
    """torchvision's ResNet/VGG init: convs kaiming_normal_(fan_out, relu) (bias 0), BatchNorm weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class ResNet34(nn.Module):
    """torchvision's ResNet(BasicBlock, [3, 4, 6, 3]) with every channel count scaled, and without avgpool/fc when
    num_classes == 0. The blocks are torchvision's BasicBlock; _make_layer and _forward_impl are followed line by
    line."""

    def __init__(self, width, num_classes):
        super().__init__()
        c = [scaled(v, width) for v in (64, 128, 256, 512)]
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, c[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.inplanes = c[0]
        self.layer1 = self._make_layer(c[0], 3, 1)
        self.layer2 = self._make_layer(c[1], 4, 2)
        self.layer3 = self._make_layer(c[2], 6, 2)
        self.layer4 = self._make_layer(c[3], 3, 2)
        if num_classes > 0:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(c[3], num_classes)
        torchvision_init(self)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def features(self, x):
        s4 = self.relu(self.bn1(self.conv1(x)))
        s3 = self.layer1(self.maxpool(s4))
        s2 = self.layer2(s3)
        s1 = self.layer3(s2)
        out = self.layer4(s1)
        return {"s4": s4, "s3": s3, "s2": s2, "s1": s1, "out": out}

    def forward(self, x):
        x = self.features(x)["out"]
        if self.num_classes == 0:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


class VGG16Features(nn.Module):
    """torchvision's VGG features: make_layers(cfgs["D"] scaled, batch_norm), initialised as VGG.__init__ does."""

    def __init__(self, batch_norm, width):
        super().__init__()
        cfg = [v if v == "M" else scaled(v, width) for v in vgg_cfgs["D"]]
        self.features = vgg_make_layers(cfg, batch_norm=batch_norm)
        torchvision_init(self)

    def forward(self, x):
        return self.features(x)

    def taps(self, x, indices):
        out = {}
        for i, m in enumerate(self.features):
            if i > max(indices):
                break
            x = m(x)
            if i in indices:
                out["tap%d" % i] = x
        return out


def conv_layer(ni, nf, padding=1, bias=True, use_activ=True, self_attention=False):
    """fastai v1's conv_layer(ni, nf, ks=4, stride=1, norm_type=NormType.Spectral, leaky=0.2, ...)."""
    conv = nn.Conv2d(ni, nf, kernel_size=4, stride=1, padding=padding, bias=bias)
    nn.init.kaiming_normal_(conv.weight)
    if bias:
        conv.bias.data.fill_(0.0)
    layers = [nn.utils.spectral_norm(conv)]
    if use_activ:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    if self_attention:
        layers.append(SelfAttention(nf))
    return nn.Sequential(*layers)


class NoGanCritic(nn.Module):
    def __init__(self, width, dropout=0.15):
        super().__init__()
        c = [scaled(v, width) for v in (512, 1024, 2048, 4096)]
        self.body = ResNet34(width, 0)
        self.head = nn.Sequential(
            nn.Dropout2d(dropout),
            conv_layer(c[0], c[1], self_attention=True),
            nn.Dropout2d(dropout),
            conv_layer(c[1], c[2]),
            nn.Dropout2d(dropout),
            conv_layer(c[2], c[3]),
            conv_layer(c[3], 1, padding=0, bias=False, use_activ=False),
            nn.Flatten())

    def forward(self, x):
        return self.head(self.body(x))


def check_same_entries(twin, reference, what, skip_prefix=None):
    ref = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()
           if skip_prefix is None or not k.startswith(skip_prefix)]
    got = [(k, tuple(v.shape)) for k, v in twin.state_dict().items()]
    assert got == ref, "%s: the width-1 twin's state dict differs from torchvision's" % what


# ---------------------------------------------------------------------------------------------------------------
# Cases.

class Golden:
    def __init__(self):
        self.tensors = {}
        self.metadata = {}
        self.cases = []
        self.initial_states = {}

    def put(self, key, t):
        assert key not in self.tensors, key
        self.tensors[key] = t.detach().to(torch.float64).contiguous().clone()


def seed_from(name):
    return zlib.crc32(name.encode())


def prepare_state(model, name, calibration_input):
    """Randomises BatchNorm affine parameters and conv biases, makes gamma non-zero, then sets the running
    statistics from one training forward of a calibration batch (momentum 1: the statistics of that batch)."""
    g = case_generator(name + ".prepare")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, SelfAttention):
                m.gamma.fill_(0.7)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        momenta = {}
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                momenta[m] = m.momentum
                m.momentum = 1.0
            if isinstance(m, nn.Dropout2d):
                momenta[m] = m.p
                m.p = 0.0
        model.train()
        model(calibration_input)
        for m, v in momenta.items():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = v
            else:
                m.p = v


def run_mode(G, name, model, mode, x, outputs_fn):
    """One forward and backward of `model` in `mode`, stored under <name>.<mode>.*."""
    model.train(mode == "train")
    leaf = x.detach().clone().requires_grad_(True)
    params = [(k, p) for k, p in model.named_parameters()]
    outs = outputs_fn(model, leaf)
    g = case_generator("%s.%s.gout" % (name, mode))
    gouts = {k: torch.randn(v.shape, generator=g) for k, v in outs.items()}
    grads = torch.autograd.grad([outs[k] for k in outs], [leaf] + [p for _, p in params],
                                [gouts[k] for k in outs])
    for k in outs:
        G.put("%s.%s.out.%s" % (name, mode, k), outs[k])
        G.put("%s.%s.gout.%s" % (name, mode, k), gouts[k])
    G.put("%s.%s.gx" % (name, mode), grads[0])
    for (k, _), gr in zip(params, grads[1:]):
        assert gr is not None, (name, mode, k)
        G.put("%s.%s.grad.%s" % (name, mode, k), gr)
    if mode == "train":
        for k, b in model.named_buffers():
            G.put("%s.train.after.%s" % (name, k), b)
    return list(outs.keys())


def add_model(G, name, model, x, outputs_fn, modes, meta, calibration_input=None, state_from=None,
              dropout_modes=None):
    """Stores <name>.x, the state (unless state_from names the case whose stored state this model loads, as
    load_torchvision would: fc.* left out) and one forward/backward per mode, each from that state."""
    if state_from is None:
        prepare_state(model, name, calibration_input)
        initial = copy.deepcopy(model.state_dict())
        for k, v in initial.items():
            G.put("%s.state.%s" % (name, k), v)
    else:
        source = G.initial_states[state_from]
        initial = {k: v for k, v in source.items() if k in model.state_dict()}
        meta = dict(meta, state_from=state_from)
    G.initial_states[name] = initial
    G.put(name + ".x", x)
    outputs = None
    for mode in modes:
        model.load_state_dict(initial)
        if dropout_modes is not None:
            for m in model.modules():
                if isinstance(m, nn.Dropout2d):
                    m.p = dropout_modes[mode]
        outputs = run_mode(G, name, model, mode, x, outputs_fn)
    G.metadata[name + ".modes"] = ",".join(modes)
    G.metadata[name + ".outputs"] = ",".join(outputs)
    G.metadata[name + ".state_names"] = state_lines(model)
    for k, v in meta.items():
        G.metadata["%s.%s" % (name, k)] = str(v)
    G.cases.append(name)


def inputs(name, shape):
    g = case_generator(name + ".x")
    x = torch.randn(shape, generator=g)
    calibration = torch.randn(shape, generator=g) * 1.2 + 0.1
    return x, calibration


# Widths are small so that the file stays a few MB: 1/32 gives the backbones 2, 4, 8 and 16 channels, 1/64 gives
# the critic's head 8, 16, 32 and 64 (the self-attention 16 channels, its query and key 2).

def resnet_cases(G):
    width = 1.0 / 32
    # With fc: logits. A 40x40 input leaves layer4 2x2, so BatchNorm still sees several values per channel.
    name = "resnet34_fc"
    torch.manual_seed(seed_from(name))
    model = ResNet34(width, 5)
    x, cal = inputs(name, (2, 3, 40, 40))
    add_model(G, name, model, x, lambda m, x: {"y": m(x)}, ["eval", "train"],
              {"arch": "resnet34", "width": width, "num_classes": 5}, calibration_input=cal)
    # The body alone, loading resnet34_fc's state without fc.* (as load_torchvision does): every stage output, each
    # with its own upstream gradient (the U-Net's skips). An odd input size checks PyTorch's floor rules through
    # every stride-2 stage. Train mode only: the eval path is the fc case's, and the U-Net trains its encoder's
    # BatchNorms on batch statistics.
    name = "resnet34_body"
    model = ResNet34(width, 0)
    x, _ = inputs(name, (2, 3, 45, 38))
    add_model(G, name, model, x, lambda m, x: m.features(x), ["train"],
              {"arch": "resnet34", "width": width, "num_classes": 0}, state_from="resnet34_fc")


def vgg_cases(G):
    width = 1.0 / 32
    for name, bn, taps in (("vgg16_bn", True, [5, 12, 22, 32, 42, 43]), ("vgg16", False, [3, 8, 15, 22, 29, 30])):
        torch.manual_seed(seed_from(name))
        model = VGG16Features(bn, width)
        x, cal = inputs(name, (2, 3, 32, 32))
        modes = ["eval", "train"] if bn else ["eval"]  # without BatchNorm both modes compute the same
        add_model(G, name, model, x, lambda m, x, t=taps: m.taps(x, t), modes,
                  {"arch": name, "width": width, "taps": ",".join(str(t) for t in taps)}, calibration_input=cal)


def critic_cases(G):
    width = 1.0 / 64
    name = "critic"
    torch.manual_seed(seed_from(name))
    model = NoGanCritic(width, 0.15)
    # The critic needs at least 193 x 193 pixels; storing such an image and its gradient in two modes would be most
    # of the file, so the stored input is 25 x 29 and the critic sees it upsampled 8x (nearest) to 200 x 232, which
    # gives a 7 x 8 body output and 1 x 2 patches. gx is the gradient with respect to the stored 25 x 29 input.
    size = (200, 232)
    x, cal = inputs(name, (1, 3, 25, 29))
    cal = F.interpolate(cal, size=size, mode="nearest")
    dropout = {"eval": 0.15, "train": 0.0}
    add_model(G, name, model, x, lambda m, x: {"y": m(F.interpolate(x, size=size, mode="nearest"))},
              ["eval", "train"],
              {"arch": "critic", "width": width, "dropout": "eval:0.15,train:0", "input_size": "%dx%d" % size},
              calibration_input=cal, dropout_modes=dropout)


def torchvision_lists(G):
    """The real torchvision models' entries (width 1), and the twins' equality with them."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the VGG classifiers alone hold 120 M parameters
    try:
        resnet = torchvision.models.resnet34()
        G.metadata["_torchvision.resnet34"] = state_lines(resnet)
        check_same_entries(ResNet34(1.0, 1000), resnet, "resnet34")
        check_same_entries(ResNet34(1.0, 0), resnet, "resnet34 body", skip_prefix="fc.")
        assert sum(p.numel() for p in resnet.parameters()) == 21797672
        for arch, bn in (("vgg16", False), ("vgg16_bn", True)):
            vgg = getattr(torchvision.models, arch)()
            G.metadata["_torchvision." + arch] = state_lines(vgg)
            check_same_entries(VGG16Features(bn, 1.0), vgg, arch, skip_prefix="classifier.")
            del vgg
        critic = NoGanCritic(1.0)
        G.metadata["_critic_w1.state_names"] = state_lines(critic)
        G.metadata["_critic_w1.num_parameters"] = str(sum(p.numel() for p in critic.parameters()))
        del critic
    finally:
        torch.set_default_dtype(previous)


def main():
    G = Golden()
    resnet_cases(G)
    vgg_cases(G)
    critic_cases(G)
    torchvision_lists(G)

    meta = dict(G.metadata)
    meta["_format"] = FORMAT
    meta["_generator"] = "tools/golden_backbones.py"
    meta["_torch_version"] = torch.__version__
    meta["_torchvision_version"] = torchvision.__version__
    meta["_cases"] = ",".join(G.cases)
    blob = write_golden(OUT_PATH, G.tensors, meta)

    print("wrote %s: %d models, %d tensors, %d bytes (torch %s, torchvision %s)" %
          (os.path.relpath(OUT_PATH, ROOT), len(G.cases), len(G.tensors), len(blob), torch.__version__,
           torchvision.__version__))
    for name in G.cases:
        n = sum(v.numel() for k, v in G.tensors.items() if k.startswith(name + "."))
        print("  %-14s %8d values; modes %s; outputs %s" % (name, n, G.metadata[name + ".modes"],
                                                           G.metadata[name + ".outputs"]))
    print("  critic at width 1: %s parameters" % G.metadata["_critic_w1.num_parameters"])


if __name__ == "__main__":
    main()
