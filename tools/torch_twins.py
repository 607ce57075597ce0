#!/usr/bin/python3
"""PyTorch twins of filmgrad's networks, shared by the golden-file scripts and the PyTorch side of
`make bench-compare` (tools/bench_compare.py). Each twin has the same module tree and state-dict names as its C++
network, so a state dict moves between them unchanged:

  SelfAttention     nn::SelfAttention: fastai v1's SelfAttention, spectrally normalised 1x1 Conv1d query/key/value
  ResNet34Body      the encoder of models/resnet.h with torchvision's names and a width multiplier
  DynamicUNet       models/dynamic_unet.h: fastai v1's DynamicUnet on that encoder (SPEC section B)
  CrossChannelNet   models/cross_channel.h: mask, cross-channel and final sub-U-Nets, or its ablations (SPEC A)
  combined_loss     the cross-channel loss: BCE(mask) + MSE(B') + MSE(B'')

Importing this module changes no global PyTorch setting (default dtype, threads, determinism): the golden scripts
set theirs (f64, one thread) and the benchmark its own (f32, N threads). The networks are built in the default
dtype current when they are constructed. torchvision is not needed here.
"""

import sys

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write("tools/torch_twins.py needs PyTorch; run with Debian's Python, which has python3-torch 1.13:\n"
                     "    /usr/bin/python3 tools/<script>.py   (apt-get install python3-torch if it is missing)\n")
    sys.exit(2)



# ---------------------------------------------------------------------------------------------------------------
# fastai v1's self-attention (nn::SelfAttention).

class SelfAttention(nn.Module):
    """fastai v1's SelfAttention (layers.py), its conv1d (kaiming_normal_, then spectral_norm) included."""

    def __init__(self, n_channels):
        super().__init__()

        def conv1d(ni, no):
            conv = nn.Conv1d(ni, no, 1, stride=1, padding=0, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            return nn.utils.spectral_norm(conv)

        self.query = conv1d(n_channels, n_channels // 8)
        self.key = conv1d(n_channels, n_channels // 8)
        self.value = conv1d(n_channels, n_channels)
        self.gamma = nn.Parameter(torch.tensor([0.0]))

    def forward(self, x):
        size = x.size()
        x = x.view(*size[:2], -1)
        f, g, h = self.query(x), self.key(x), self.value(x)
        beta = F.softmax(torch.bmm(f.permute(0, 2, 1).contiguous(), g), dim=1)
        o = self.gamma * torch.bmm(h, beta) + x
        return o.view(*size).contiguous()


# ---------------------------------------------------------------------------------------------------------------
# The Dynamic U-Net (models/dynamic_unet.h).

Y_RANGE = (-3.0, 3.0)  # DynamicUNetConfig's y_lo, y_hi: the output is sigmoid(x) (hi - lo) + lo


def scaled(channels, width):
    c = channels * width
    assert c == int(c) and c >= 1, (channels, width)
    return int(c)


# ---------------------------------------------------------------------------------------------------------------
# ResNet34 body with torchvision's names.

class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet34Body(nn.Module):
    def __init__(self, width):
        super().__init__()
        c = [scaled(n, width) for n in (64, 128, 256, 512)]
        self.channels = c
        self.conv1 = nn.Conv2d(3, c[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = c[0]
        for i, (planes, blocks) in enumerate(zip(c, (3, 4, 6, 3))):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(inplanes, planes, 2 if (b == 0 and i > 0) else 1))
                inplanes = planes
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layer))
        # torchvision's initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x):
        s4 = self.relu(self.bn1(self.conv1(x)))
        s3 = self.layer1(self.maxpool(s4))
        s2 = self.layer2(s3)
        s1 = self.layer3(s2)
        return s4, s3, s2, s1, self.layer4(s1)


# ---------------------------------------------------------------------------------------------------------------
# The decoder, as fastai v1 builds it (norm_type None: convs with bias, no BatchNorm, kaiming_normal_, bias 0).

def fastai_conv(ni, nf, ks):
    conv = nn.Conv2d(ni, nf, ks, padding=ks // 2)
    nn.init.kaiming_normal_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def icnr_(w, scale=2):
    # fastai v1's icnr: each group of scale^2 output channels starts as one kaiming_normal_ kernel.
    ni, nf, h, wd = w.shape
    k = torch.zeros([ni // scale ** 2, nf, h, wd])
    nn.init.kaiming_normal_(k)
    with torch.no_grad():
        w.copy_(k.repeat_interleave(scale ** 2, dim=0))


class PixelShuffleICNR(nn.Module):
    def __init__(self, ni, nf, blur):
        super().__init__()
        self.conv = fastai_conv(ni, nf * 4, 1)
        icnr_(self.conv.weight)
        self.blur = blur

    def forward(self, x):
        x = F.pixel_shuffle(F.relu(self.conv(x)), 2)
        if self.blur:
            x = F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)
        return x


class UnetBlock(nn.Module):
    def __init__(self, up_c, skip_c, final_div, blur, self_attention):
        super().__init__()
        self.shuf = PixelShuffleICNR(up_c, up_c // 2, blur)
        self.bn = nn.BatchNorm2d(skip_c)
        ni = up_c // 2 + skip_c
        nf = ni if final_div else ni // 2
        self.conv1 = fastai_conv(ni, nf, 3)
        self.conv2 = fastai_conv(nf, nf, 3)
        self.attn = SelfAttention(nf) if self_attention else None
        self.out_channels = nf

    def forward(self, up_in, skip):
        up = self.shuf(up_in)
        if up.shape[-2:] != skip.shape[-2:]:
            up = F.interpolate(up, skip.shape[-2:], mode="nearest")
        x = F.relu(torch.cat([up, self.bn(skip)], dim=1))
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.attn(x) if self.attn is not None else x


class ResBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.conv1 = fastai_conv(n, n, 3)
        self.conv2 = fastai_conv(n, n, 3)

    def forward(self, x):
        return x + F.relu(self.conv2(F.relu(self.conv1(x))))


class DynamicUNet(nn.Module):
    def __init__(self, width, out_channels=3, blur=True, y_range=Y_RANGE):
        super().__init__()
        self.encoder = ResNet34Body(width)
        c = self.encoder.channels
        self.bridge = nn.Sequential(nn.BatchNorm2d(c[3]), nn.ReLU(), fastai_conv(c[3], 2 * c[3], 3), nn.ReLU(),
                                    fastai_conv(2 * c[3], c[3], 3), nn.ReLU())
        blocks = []
        up_c = c[3]
        for i, skip_c in enumerate((c[2], c[1], c[0], c[0])):
            block = UnetBlock(up_c, skip_c, final_div=(i != 3), blur=blur, self_attention=(i == 1))
            blocks.append(block)
            up_c = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.last_shuf = PixelShuffleICNR(up_c, up_c, blur=False)
        self.res = ResBlock(up_c + 3)
        self.head = fastai_conv(up_c + 3, out_channels, 1)
        self.y_range = y_range

    def forward(self, x):
        s4, s3, s2, s1, out = self.encoder.forward_features(x)
        y = self.bridge(out)
        for block, skip in zip(self.blocks, (s1, s2, s3, s4)):
            y = block(y, skip)
        y = torch.cat([self.last_shuf(y), x], dim=1)
        y = self.head(self.res(y))
        lo, hi = self.y_range
        return torch.sigmoid(y) * (hi - lo) + lo


def count(params):
    return sum(p.numel() for p in params)


# ---------------------------------------------------------------------------------------------------------------
# The cross-channel network (models/cross_channel.h).

BASE_CHANNELS = (64, 128, 256, 512, 512, 512, 256, 128, 64, 32)


def channels(width):
    # C++ rounds with llround (halves away from zero); Python's round() rounds halves to even, so do it by hand.
    return [max(1, int(b * width + 0.5)) for b in BASE_CHANNELS]


class Block(nn.Module):
    """kind 'down': conv1, conv2, conv3 (3x3 + ReLU each), bn, pool; returns (pooled, skip = bn output).
    'dilated': the same with dilation 2 and no pool. 'up': up, cat with the skip, conv1, conv2, conv3, bn."""

    def __init__(self, kind, cin, cmid, cout):
        super().__init__()
        self.kind = kind
        d = 2 if kind == "dilated" else 1
        if kind == "up":
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = nn.Conv2d(cin, cmid, 3, 1, d, d)
        self.conv2 = nn.Conv2d(cmid, cmid, 3, 1, d, d)
        self.conv3 = nn.Conv2d(cmid, cout, 3, 1, d, d)
        self.bn = nn.BatchNorm2d(cout)
        if kind == "down":
            self.pool = nn.MaxPool2d(2)

    def convs(self, x):
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        return self.bn(F.relu(self.conv3(h)))

    def forward(self, x, skip=None):
        if self.kind == "down":
            s = self.convs(x)
            return self.pool(s), s
        if self.kind == "up":
            return self.convs(torch.cat([self.up(x), skip], 1))
        return self.convs(x)


class SubUNet(nn.Module):
    def __init__(self, cin, width):
        super().__init__()
        c = channels(width)
        blocks = []
        prev = cin
        for i in range(10):
            if i < 4:
                blocks.append(Block("down", prev, c[i], c[i]))
            elif i < 6:
                blocks.append(Block("dilated", prev, c[i], c[i]))
            else:
                blocks.append(Block("up", prev + c[9 - i], prev, c[i]))
            prev = c[i]
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(prev, 1, 1)

    def forward(self, x):
        skips = []
        h = x
        for i in range(4):
            h, s = self.blocks[i](h)
            skips.append(s)
        h = self.blocks[5](self.blocks[4](h))
        for i in range(6, 10):
            h = self.blocks[i](h, skips[9 - i])
        return self.out(h)


class CrossChannelNet(nn.Module):
    def __init__(self, variant, width):
        super().__init__()
        self.variant = variant
        if variant == "full":
            self.mask_net = SubUNet(3, width)
            self.cross_net = SubUNet(2, width)
            self.final_net = SubUNet(3, width)
        elif variant == "no_mask":
            self.cross_net = SubUNet(2, width)
            self.final_net = SubUNet(2, width)
        else:
            self.unet = SubUNet(3, width)

    def forward_all(self, x):
        if self.variant == "plain_unet":
            return {"b_final": self.unet(x)}
        rg, bd = x[:, 0:2], x[:, 2:3]
        out = {"b_cross": self.cross_net(rg)}
        if self.variant == "full":
            out["mask_logits"] = self.mask_net(x)
            out["b_final"] = self.final_net(torch.cat([torch.sigmoid(out["mask_logits"]), out["b_cross"], bd], 1))
        else:
            out["b_final"] = self.final_net(torch.cat([out["b_cross"], bd], 1))
        return out


def combined_loss(out, true_mask, b_clean):
    loss = F.mse_loss(out["b_final"], b_clean)
    if "b_cross" in out:
        loss = F.mse_loss(out["b_cross"], b_clean) + loss
    if "mask_logits" in out:
        loss = F.binary_cross_entropy_with_logits(out["mask_logits"], true_mask) + loss
    return loss


def num_parameters(module):
    return sum(p.numel() for p in module.parameters())
