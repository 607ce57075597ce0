#!/usr/bin/python3
"""Writes tests/golden/ops.safetensors: PyTorch's answers for every op in autograd/ops.h.

Run with Debian's Python, which has python3-torch (1.13):

    /usr/bin/python3 tools/make_golden.py

For every case the file holds, in f64, the inputs "<case>.<input>", the output "<case>.y", a random upstream
gradient "<case>.gy" and the gradient of every differentiable input "<case>.g<input>" (for example
conv2d_k3_s2_d2.x, .w, .b, .y, .gy, .gx, .gw, .gb). Ops with side outputs add them under their own names
(batch norm: running_mean_after, running_var_after). The file's __metadata__ maps each case name to a JSON string
{"family", "op", "inputs", "grads", "params"} that tests/golden/test_golden_ops.cpp turns back into a filmgrad
call; keys starting with "_" describe the file itself.

Every case draws its data from its own generator, seeded from the case name, so adding or removing a case leaves
the others byte-identical, and running the script twice writes the same file. The safetensors writer is here
(not the safetensors package) so that the script needs nothing beyond torch.
"""

import json
import math
import os
import struct
import sys
import zlib

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.stderr.write(
        "make_golden.py needs PyTorch, which this interpreter (%s) does not have.\n"
        "Run it with Debian's Python, which has python3-torch 1.13:\n"
        "    /usr/bin/python3 tools/make_golden.py\n"
        "(apt-get install python3-torch if that is missing too)\n" % sys.executable)
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_twins import SelfAttention  # noqa: E402,F401  (for golden_backbones)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(ROOT, "tests", "golden", "ops.safetensors")
FORMAT = "filmgrad-golden-ops-1"

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # one thread: the same summation order, hence the same bytes, on every run
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------------------------------------------------------
# The collection of cases.

class Golden:
    def __init__(self):
        self.tensors = {}
        self.metadata = {}
        self.order = []

    def add(self, name, family, op, inputs, fn, params=None, grads=None, extras=None, gy_dtype=None):
        """inputs: ordered {name: tensor}; fn(*leaves in that order) -> output tensor (leaves require grad when in grads).
        grads: names of the inputs whose gradients are stored (default: all). extras(leaves) -> {name: tensor}
        evaluated after the forward, for side outputs such as batch norm's running statistics. gy_dtype rounds the
        upstream gradient to a narrower type (for casts, where the gradient arrives in the output's dtype)."""
        assert name not in self.metadata and "." not in name and not name.startswith("_"), name
        grads = list(inputs.keys()) if grads is None else grads
        leaves = {}
        for k, v in inputs.items():
            assert v.dtype == torch.float64, (name, k)
            leaves[k] = v.detach().clone().requires_grad_(k in grads)
        y = fn(*leaves.values())
        side = extras(leaves) if extras else {}
        gen = case_generator(name + ".gy")
        gy = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        if gy_dtype is not None:
            gy = gy.to(gy_dtype)
        grad_leaves = [leaves[k] for k in grads]
        got = torch.autograd.grad(y, grad_leaves, gy) if grad_leaves else []
        for k, v in inputs.items():
            self.put(name + "." + k, v)
        self.put(name + ".y", y)
        self.put(name + ".gy", gy)
        for k, g in zip(grads, got):
            assert g is not None, (name, k)
            self.put(name + ".g" + k, g)
        for k, v in side.items():
            self.put(name + "." + k, v)
        meta = {"family": family, "op": op, "inputs": list(inputs.keys()), "grads": grads,
                "params": params or {}}
        if side:
            meta["extras"] = sorted(side.keys())
        self.metadata[name] = json.dumps(meta, sort_keys=True)
        self.order.append(name)

    def put(self, key, t):
        assert key not in self.tensors, key
        self.tensors[key] = t.detach().to(torch.float64).contiguous().clone()


def case_generator(name):
    g = torch.Generator()
    g.manual_seed(zlib.crc32(name.encode()))
    return g


class Rand:
    """Inputs for one case, from the case's own generator."""

    def __init__(self, name):
        self.g = case_generator(name)

    def normal(self, *shape, scale=1.0):
        return torch.randn(shape, generator=self.g) * scale

    def uniform(self, *shape, lo=0.0, hi=1.0):
        return torch.rand(shape, generator=self.g) * (hi - lo) + lo

    def away_from_zero(self, *shape, lo=0.5, hi=2.0):
        mag = self.uniform(*shape, lo=lo, hi=hi)
        sign = torch.where(self.uniform(*shape) < 0.5, -1.0, 1.0)
        return mag * sign

    def integers(self, *shape, lo=0, hi=4):
        return torch.randint(lo, hi, shape, generator=self.g).to(torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# Reference functions written out where ops.h defines the op as a composition.

def sigmoid_range(x, lo, hi):
    return torch.sigmoid(x) * (hi - lo) + lo


def gram_matrix(x):
    n, c, h, w = x.shape
    xv = x.view(n, c, -1)
    return torch.bmm(xv, xv.transpose(1, 2)) / (c * h * w)


def ssim_window(window_size, sigma, channels):
    # pytorch-ssim's window: a normalised 1-D Gaussian centred on window_size // 2 (off-centre for even sizes),
    # its outer product, one copy per channel. Built in f64 here (pytorch-ssim builds it in f32).
    g = torch.tensor([math.exp(-(i - window_size // 2) ** 2 / float(2 * sigma ** 2)) for i in range(window_size)])
    g = g / g.sum()
    w2 = torch.outer(g, g)
    return w2.expand(channels, 1, window_size, window_size).contiguous()


def ssim(x, y, window_size, sigma):
    # pytorch-ssim's _ssim with size_average=True. With an even window, padding window_size // 2 makes the map one
    # pixel larger than the image in each direction, and the mean is over that larger map, as in pytorch-ssim.
    c = x.shape[1]
    win = ssim_window(window_size, sigma, c)
    pad = window_size // 2

    def blur(t):
        return F.conv2d(t, win, padding=pad, groups=c)

    mu_x = blur(x)
    mu_y = blur(y)
    mu_x_sq = mu_x.pow(2)
    mu_y_sq = mu_y.pow(2)
    mu_xy = mu_x * mu_y
    sigma_x_sq = blur(x * x) - mu_x_sq
    sigma_y_sq = blur(y * y) - mu_y_sq
    sigma_xy = blur(x * y) - mu_xy
    c1 = 0.01 ** 2
    c2 = 0.03 ** 2
    ssim_map = ((2 * mu_xy + c1) * (2 * sigma_xy + c2)) / ((mu_x_sq + mu_y_sq + c1) * (sigma_x_sq + sigma_y_sq + c2))
    return ssim_map.mean()


def self_attention(x, wq, wk, wv, gamma):
    # fastai v1 SelfAttention.forward without spectral norm; its query/key/value are 1x1 conv1d without bias.
    def as_conv1d_weight(w):
        return w if w.dim() == 3 else w.unsqueeze(-1)

    size = x.shape
    xv = x.view(*size[:2], -1)
    f = F.conv1d(xv, as_conv1d_weight(wq))
    g = F.conv1d(xv, as_conv1d_weight(wk))
    h = F.conv1d(xv, as_conv1d_weight(wv))
    beta = F.softmax(torch.bmm(f.permute(0, 2, 1).contiguous(), g), dim=1)
    o = gamma * torch.bmm(h, beta) + xv
    return o.view(*size).contiguous()


def nearest_source_index(out_size, in_size):
    # ops.h's rule, in exact integer arithmetic.
    return [min(d * in_size // out_size, in_size - 1) for d in range(out_size)]


# ---------------------------------------------------------------------------------------------------------------
# The cases, one function per family.

def elementwise(G):
    fam = "elementwise"

    def binary(name, op, fn, a, b):
        G.add(name, fam, op, {"a": a, "b": b}, fn)

    r = Rand("add_same")
    binary("add_same", "add", torch.add, r.normal(3, 5), r.normal(3, 5))
    r = Rand("add_bcast_trailing")
    binary("add_bcast_trailing", "add", torch.add, r.normal(2, 3, 4), r.normal(4))
    r = Rand("add_bcast_0d")
    binary("add_bcast_0d", "add", torch.add, r.normal(2, 3), r.normal())
    r = Rand("sub_bcast_both")
    binary("sub_bcast_both", "sub", torch.sub, r.normal(3, 1), r.normal(2, 1, 4))
    r = Rand("sub_same")
    binary("sub_same", "sub", torch.sub, r.normal(7), r.normal(7))
    r = Rand("mul_bcast_middle")
    binary("mul_bcast_middle", "mul", torch.mul, r.normal(2, 3, 4), r.normal(1, 3, 1))
    r = Rand("mul_same_odd")
    binary("mul_same_odd", "mul", torch.mul, r.normal(5, 3), r.normal(5, 3))
    r = Rand("div_bcast")
    binary("div_bcast", "div", torch.div, r.normal(2, 3, 4), r.away_from_zero(3, 4))
    r = Rand("div_bcast_numerator")
    binary("div_bcast_numerator", "div", torch.div, r.normal(1, 4), r.away_from_zero(3, 1))

    def unary(name, op, fn, x, params=None):
        G.add(name, fam, op, {"x": x}, fn, params)

    unary("neg", "neg", torch.neg, Rand("neg").normal(3, 4))
    unary("add_scalar", "add_scalar", lambda x: x + 2.5, Rand("add_scalar").normal(2, 5), {"s": 2.5})
    unary("mul_scalar", "mul_scalar", lambda x: x * -1.75, Rand("mul_scalar").normal(2, 5), {"s": -1.75})
    unary("pow_2", "pow_scalar", lambda x: torch.pow(x, 2.0), Rand("pow_2").normal(3, 4), {"p": 2.0})
    unary("pow_3", "pow_scalar", lambda x: torch.pow(x, 3.0), Rand("pow_3").normal(3, 4), {"p": 3.0})
    unary("pow_half", "pow_scalar", lambda x: torch.pow(x, 0.5), Rand("pow_half").uniform(3, 4, lo=0.5, hi=3.0),
          {"p": 0.5})
    unary("pow_neg_1_5", "pow_scalar", lambda x: torch.pow(x, -1.5),
          Rand("pow_neg_1_5").uniform(3, 4, lo=0.5, hi=3.0), {"p": -1.5})
    unary("sqrt", "sqrt", torch.sqrt, Rand("sqrt").uniform(3, 5, lo=0.1, hi=4.0))
    unary("exp", "exp", torch.exp, Rand("exp").normal(3, 5, scale=2.0))
    unary("log", "log", torch.log, Rand("log").uniform(3, 5, lo=0.05, hi=5.0))
    x = Rand("abs").normal(3, 5)
    x[0, 0] = 0.0  # the gradient of |x| at 0 is 0 in PyTorch
    x[2, 4] = -0.0
    unary("abs", "abs", torch.abs, x)


def views(G):
    fam = "view"
    x = Rand("reshape_2d").normal(2, 3, 4)
    G.add("reshape_2d", fam, "reshape", {"x": x}, lambda x: x.reshape(6, 4), {"shape": [6, 4]})
    x = Rand("reshape_infer").normal(2, 3, 4)
    G.add("reshape_infer", fam, "reshape", {"x": x}, lambda x: x.reshape(4, -1, 2), {"shape": [4, -1, 2]})
    for name, s, e in [("flatten_from1", 1, -1), ("flatten_all", 0, -1), ("flatten_01", 0, 1), ("flatten_22", 2, 2)]:
        x = Rand(name).normal(2, 3, 4, 5)
        G.add(name, fam, "flatten", {"x": x}, lambda x, s=s, e=e: torch.flatten(x, s, e),
              {"start_dim": s, "end_dim": e})
    for name, shape, dims in [("permute_201", (2, 3, 4), [2, 0, 1]), ("permute_nhwc", (2, 3, 4, 5), [0, 2, 3, 1])]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, "permute", {"x": x}, lambda x, d=dims: x.permute(*d), {"dims": dims})
    for name, a, b in [("transpose_02", 0, 2), ("transpose_neg", -1, -2)]:
        x = Rand(name).normal(2, 3, 4)
        G.add(name, fam, "transpose", {"x": x}, lambda x, a=a, b=b: x.transpose(a, b), {"a": a, "b": b})
    x = Rand("expand_new_dims").normal(3, 1, 4)
    G.add("expand_new_dims", fam, "expand", {"x": x}, lambda x: x.expand(2, 3, 5, 4), {"shape": [2, 3, 5, 4]})
    x = Rand("expand_keep").normal(1, 3)
    G.add("expand_keep", fam, "expand", {"x": x}, lambda x: x.expand(4, -1), {"shape": [4, -1]})
    for name, shape, dim, start, end, step in [
            ("slice_step2", (4, 7, 3), 1, 1, 6, 2),
            ("slice_dim0", (5, 3), 0, 2, 5, 1),
            ("slice_neg_start", (3, 8), -1, -3, 100, 1),
            ("slice_step3_last", (2, 10), 1, 0, 10, 3)]:
        x = Rand(name).normal(*shape)
        sl = [slice(None)] * len(shape)
        d = dim % len(shape)
        sl[d] = slice(start, end, step)
        G.add(name, fam, "slice", {"x": x}, lambda x, sl=tuple(sl): x[sl],
              {"dim": dim, "start": start, "end": end, "step": step})
    for name, shapes, dim in [
            ("concat_dim1", [(2, 3, 4), (2, 1, 4), (2, 5, 4)], 1),
            ("concat_dim0", [(1, 3), (4, 3)], 0),
            ("concat_last", [(2, 3, 2), (2, 3, 5), (2, 3, 1)], -1)]:
        r = Rand(name)
        ins = {"x%d" % i: r.normal(*s) for i, s in enumerate(shapes)}
        G.add(name, fam, "concat", ins, lambda *xs, dim=dim: torch.cat(xs, dim),
              {"dim": dim})


def reductions(G):
    fam = "reduce"
    for op, fn in [("sum", torch.sum), ("mean", torch.mean)]:
        for suffix, shape, dims, keep in [
                ("all", (3, 4, 5), [], False),
                ("dim1", (3, 4, 5), [1], False),
                ("dims02_keep", (3, 4, 5), [0, 2], True),
                ("last_neg", (2, 7), [-1], False),
                ("all_keep", (2, 3), [], True)]:
            name = op + "_" + suffix
            x = Rand(name).normal(*shape)
            if dims:
                f = lambda x, fn=fn, dims=dims, keep=keep: fn(x, dim=dims, keepdim=keep)
            elif keep:
                f = lambda x, fn=fn: fn(x, dim=list(range(x.dim())), keepdim=True)
            else:
                f = lambda x, fn=fn: fn(x)
            G.add(name, fam, op, {"x": x}, f, {"dims": dims, "keepdim": keep})


def activations(G):
    fam = "activation"
    x = Rand("relu").normal(3, 7)
    x[1, 2] = 0.0  # PyTorch's relu passes no gradient at 0
    G.add("relu", fam, "relu", {"x": x}, F.relu)
    x = Rand("leaky_relu_default").normal(3, 7)
    x[0, 1] = 0.0  # PyTorch's leaky_relu uses the negative slope at 0
    G.add("leaky_relu_default", fam, "leaky_relu", {"x": x}, lambda x: F.leaky_relu(x, 0.01),
          {"negative_slope": 0.01})
    x = Rand("leaky_relu_0_2").normal(2, 3, 5)
    G.add("leaky_relu_0_2", fam, "leaky_relu", {"x": x}, lambda x: F.leaky_relu(x, 0.2), {"negative_slope": 0.2})
    G.add("sigmoid", fam, "sigmoid", {"x": Rand("sigmoid").normal(3, 5, scale=3.0)}, torch.sigmoid)
    x = Rand("sigmoid_saturated").normal(2, 5, scale=20.0)
    G.add("sigmoid_saturated", fam, "sigmoid", {"x": x}, torch.sigmoid)
    G.add("tanh", fam, "tanh", {"x": Rand("tanh").normal(3, 5, scale=2.0)}, torch.tanh)
    for name, lo, hi in [("sigmoid_range_m3_3", -3.0, 3.0), ("sigmoid_range_0_1", 0.0, 1.0)]:
        x = Rand(name).normal(2, 3, 4, scale=2.0)
        G.add(name, fam, "sigmoid_range", {"x": x}, lambda x, lo=lo, hi=hi: sigmoid_range(x, lo, hi),
              {"lo": lo, "hi": hi})
    for name, shape, dim, scale in [
            ("softmax_dim1", (2, 5, 3), 1, 1.0),
            ("softmax_dim_last", (3, 7), -1, 1.0),
            ("softmax_dim0", (4, 3), 0, 1.0),
            ("softmax_large_logits", (2, 6), 1, 60.0)]:
        x = Rand(name).normal(*shape, scale=scale)
        G.add(name, fam, "softmax", {"x": x}, lambda x, d=dim: F.softmax(x, dim=d), {"dim": dim})


def dropout_and_cast(G):
    # Dropout with random masks is left out (the generators differ); what is deterministic is checked: identity in
    # eval mode and at p = 0.
    fam = "dropout"
    x = Rand("dropout_eval").normal(2, 3, 4)
    G.add("dropout_eval", fam, "dropout", {"x": x}, lambda x: F.dropout(x, 0.5, training=False),
          {"p": 0.5, "training": False})
    x = Rand("dropout_p0_train").normal(3, 5)
    G.add("dropout_p0_train", fam, "dropout", {"x": x}, lambda x: F.dropout(x, 0.0, training=True),
          {"p": 0.0, "training": True})
    x = Rand("dropout2d_eval").normal(2, 3, 4, 5)
    G.add("dropout2d_eval", fam, "dropout2d", {"x": x}, lambda x: F.dropout2d(x, 0.15, training=False),
          {"p": 0.15, "training": False})

    fam = "cast"
    x = Rand("cast_f32").normal(3, 5)
    G.add("cast_f32", fam, "cast", {"x": x}, lambda x: x.to(torch.float32), {"dtype": "f32"},
          gy_dtype=torch.float32)
    # Values at the edges of f16: a subnormal, the largest finite value, one that rounds to it and one that
    # overflows to infinity, and signed zeros.
    specials = torch.tensor([0.0, -0.0, 1e-6, -3e-7, 65504.0, 65519.0, 65520.0, -70000.0, 1.0 + 2.0 ** -11,
                             1.0 + 3 * 2.0 ** -11, 3.14159, -2.71828])
    x = torch.cat([specials, Rand("cast_f16").normal(12)]).view(4, 6)
    G.add("cast_f16", fam, "cast", {"x": x}, lambda x: x.to(torch.float16), {"dtype": "f16"},
          gy_dtype=torch.float16)
    specials = torch.tensor([0.0, -0.0, 1e-30, 3e38, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 3.14159, -2.71828])
    x = torch.cat([specials, Rand("cast_bf16").normal(8)]).view(4, 4)
    G.add("cast_bf16", fam, "cast", {"x": x}, lambda x: x.to(torch.bfloat16), {"dtype": "bf16"},
          gy_dtype=torch.bfloat16)


def convolutions(G):
    fam = "conv"
    # name, (N, C, H, W), O, (KH, KW), stride (h, w), pad (h, w), dilation (h, w), bias
    table = [
        ("conv2d_k1", (2, 3, 5, 6), 4, (1, 1), (1, 1), (0, 0), (1, 1), True),
        ("conv2d_k1_s2_nobias", (1, 4, 7, 5), 3, (1, 1), (2, 2), (0, 0), (1, 1), False),
        ("conv2d_k3_p1", (2, 3, 7, 9), 5, (3, 3), (1, 1), (1, 1), (1, 1), True),
        ("conv2d_k3_s2_p1", (2, 2, 9, 8), 3, (3, 3), (2, 2), (1, 1), (1, 1), True),
        ("conv2d_k3_s2_d2", (1, 3, 11, 10), 2, (3, 3), (2, 2), (2, 2), (2, 2), True),
        ("conv2d_k3_d2_nopad", (2, 2, 9, 9), 3, (3, 3), (1, 1), (0, 0), (2, 2), True),
        ("conv2d_k4_s1_p1", (1, 3, 6, 7), 2, (4, 4), (1, 1), (1, 1), (1, 1), True),
        ("conv2d_k4_s2_p1", (2, 2, 8, 9), 3, (4, 4), (2, 2), (1, 1), (1, 1), False),
        ("conv2d_k7_s2_p3", (1, 3, 13, 11), 4, (7, 7), (2, 2), (3, 3), (1, 1), False),
        ("conv2d_k7_p0", (1, 1, 9, 8), 1, (7, 7), (1, 1), (0, 0), (1, 1), True),
        ("conv2d_rect_mixed", (2, 3, 8, 11), 2, (3, 5), (1, 2), (0, 2), (2, 1), True),
        ("conv2d_s3_odd", (1, 2, 10, 7), 3, (3, 3), (3, 3), (1, 1), (1, 1), True),
        ("conv2d_1x1_image", (3, 2, 1, 1), 2, (1, 1), (1, 1), (0, 0), (1, 1), True),
        ("conv2d_pad_gt_kernel", (1, 2, 4, 5), 2, (3, 3), (1, 1), (3, 2), (1, 1), True),
    ]
    for name, (n, c, h, w), o, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bias in table:
        r = Rand(name)
        ins = {"x": r.normal(n, c, h, w), "w": r.normal(o, c, kh, kw, scale=1.0 / math.sqrt(c * kh * kw))}
        if bias:
            ins["b"] = r.normal(o)
        params = {"stride_h": sh, "stride_w": sw, "pad_h": ph, "pad_w": pw, "dilation_h": dh, "dilation_w": dw}
        G.add(name, fam, "conv2d", ins,
              lambda x, w, b=None, s=(sh, sw), p=(ph, pw), d=(dh, dw): F.conv2d(x, w, b, s, p, d), params)

    # name, (N, C, L), O, K, stride, pad, dilation, bias
    table1 = [
        ("conv1d_k1_nobias", (2, 16, 7), 2, 1, 1, 0, 1, False),
        ("conv1d_k3_p1", (2, 3, 9), 4, 3, 1, 1, 1, True),
        ("conv1d_k3_s2_p1_d2", (1, 2, 12), 3, 3, 2, 1, 2, True),
        ("conv1d_k4_s3", (2, 3, 11), 2, 4, 3, 0, 1, True),
        ("conv1d_k7_p3", (1, 2, 8), 2, 7, 1, 3, 1, False),
    ]
    for name, (n, c, length), o, k, s, p, d, bias in table1:
        r = Rand(name)
        ins = {"x": r.normal(n, c, length), "w": r.normal(o, c, k, scale=1.0 / math.sqrt(c * k))}
        if bias:
            ins["b"] = r.normal(o)
        G.add(name, fam, "conv1d", ins, lambda x, w, b=None, s=s, p=p, d=d: F.conv1d(x, w, b, s, p, d),
              {"stride": s, "padding": p, "dilation": d})


def linear_algebra(G):
    fam = "linear"
    for name, xshape, o, bias in [("linear_2d", (5, 7), 4, True), ("linear_3d", (2, 3, 7), 5, True),
                                  ("linear_nobias", (3, 6), 2, False), ("linear_1d", (7,), 3, True),
                                  ("linear_out1", (4, 3), 1, True)]:
        r = Rand(name)
        ins = {"x": r.normal(*xshape), "w": r.normal(o, xshape[-1])}
        if bias:
            ins["b"] = r.normal(o)
        G.add(name, fam, "linear", ins, lambda x, w, b=None: F.linear(x, w, b))
    for name, m, k, n in [("matmul_odd", 5, 7, 3), ("matmul_1x1", 1, 1, 1), ("matmul_row_col", 1, 6, 1),
                          ("matmul_outer", 4, 1, 5)]:
        r = Rand(name)
        G.add(name, fam, "matmul", {"a": r.normal(m, k), "b": r.normal(k, n)}, torch.matmul)
    for name, b, m, k, n in [("bmm_odd", 3, 5, 7, 2), ("bmm_b1", 1, 4, 3, 6)]:
        r = Rand(name)
        G.add(name, fam, "bmm", {"a": r.normal(b, m, k), "b": r.normal(b, k, n)}, torch.bmm)


def pooling(G):
    fam = "pool"
    for name, shape, k, s, p in [
            ("max_pool_k2_s2", (2, 3, 8, 6), 2, 2, 0),
            ("max_pool_k3_s2_p1", (1, 2, 9, 8), 3, 2, 1),  # ResNet's stem
            ("max_pool_k3_s1_p1", (1, 2, 5, 7), 3, 1, 1),
            ("max_pool_k2_s1_odd", (2, 1, 5, 5), 2, 1, 0),
            ("max_pool_k4_s3_p2", (1, 2, 10, 9), 4, 3, 2)]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, "max_pool2d", {"x": x}, lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p),
              {"kernel": k, "stride": s, "padding": p})
    # Ties: PyTorch routes the gradient to the first maximum in row-major order within the window.
    x = Rand("max_pool_ties").integers(1, 2, 7, 7, lo=0, hi=3)
    G.add("max_pool_ties", fam, "max_pool2d", {"x": x}, lambda x: F.max_pool2d(x, 3, 2, 1),
          {"kernel": 3, "stride": 2, "padding": 1})

    for name, shape, k, s, p, cip in [
            ("avg_pool_k2_s1_blur", (1, 3, 6, 7), 2, 1, 0, True),  # PixelShuffle_ICNR's blur
            ("avg_pool_k2_s2", (2, 2, 8, 5), 2, 2, 0, True),
            ("avg_pool_k3_s2_p1_incl", (1, 2, 9, 8), 3, 2, 1, True),
            ("avg_pool_k3_s2_p1_excl", (1, 2, 9, 8), 3, 2, 1, False),
            ("avg_pool_k2_s2_p1_incl", (2, 1, 5, 6), 2, 2, 1, True),
            ("avg_pool_k2_s2_p1_excl", (2, 1, 5, 6), 2, 2, 1, False),
            ("avg_pool_k4_s3_p2_excl", (1, 2, 10, 9), 4, 3, 2, False),
            ("avg_pool_k3_s1_p1_incl", (1, 1, 4, 5), 3, 1, 1, True)]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, "avg_pool2d", {"x": x},
              lambda x, k=k, s=s, p=p, c=cip: F.avg_pool2d(x, k, s, p, ceil_mode=False, count_include_pad=c),
              {"kernel": k, "stride": s, "padding": p, "count_include_pad": cip})


def padding(G):
    fam = "pad"
    for name, op, mode, shape, pads in [
            ("replication_pad_blur", "replication_pad2d", "replicate", (1, 3, 4, 5), (1, 0, 1, 0)),
            ("replication_pad_mixed", "replication_pad2d", "replicate", (2, 2, 3, 4), (2, 3, 1, 0)),
            ("replication_pad_wide", "replication_pad2d", "replicate", (1, 1, 2, 2), (3, 3, 3, 3)),
            ("zero_pad_mixed", "zero_pad2d", "constant", (2, 2, 3, 4), (1, 2, 3, 0)),
            ("zero_pad_none", "zero_pad2d", "constant", (1, 2, 3, 3), (0, 0, 0, 0))]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, op, {"x": x}, lambda x, pads=pads, mode=mode: F.pad(x, pads, mode=mode),
              {"left": pads[0], "right": pads[1], "top": pads[2], "bottom": pads[3]})


def resampling(G):
    fam = "pixel_shuffle"
    for name, shape, r in [("pixel_shuffle_r2", (2, 8, 3, 4), 2), ("pixel_shuffle_r3", (1, 18, 2, 3), 3),
                           ("pixel_shuffle_r2_c4", (1, 4, 1, 1), 2)]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, "pixel_shuffle", {"x": x}, lambda x, r=r: F.pixel_shuffle(x, r), {"r": r})
    for name, shape, r in [("pixel_unshuffle_r2", (2, 3, 6, 4), 2), ("pixel_unshuffle_r3", (1, 2, 6, 9), 3)]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, "pixel_unshuffle", {"x": x}, lambda x, r=r: F.pixel_unshuffle(x, r), {"r": r})

    fam = "upsample"
    # PyTorch 1.13 computes the source index as floorf(dst * float(in / out)) in f32 (exact for out == in and
    # out == 2 in). That equals ops.h's exact floor(dst * in / out) for most sizes but not all: the last case
    # (14 -> 46 wide, 26 -> 22 high) is one where f32 rounding picks a different source row and column.
    for name, shape, oh, ow, f32_rounding_differs in [
            ("upsample_nearest_x2", (1, 2, 3, 4), 6, 8, False),
            ("upsample_nearest_3x5_to_7x8", (2, 2, 3, 5), 7, 8, False),
            ("upsample_nearest_down_6x5_to_4x3", (1, 3, 6, 5), 4, 3, False),
            ("upsample_nearest_3x3_to_5x10", (1, 1, 3, 3), 5, 10, False),
            ("upsample_nearest_identity", (1, 2, 4, 3), 4, 3, False),
            ("upsample_nearest_f32_index_26x14_to_22x46", (1, 1, 26, 14), 22, 46, True)]:
        x = Rand(name).normal(*shape)
        y = F.interpolate(x, size=(oh, ow), mode="nearest")
        ih, iw = shape[2], shape[3]
        exact = x[:, :, nearest_source_index(oh, ih)][:, :, :, nearest_source_index(ow, iw)]
        assert torch.equal(y, exact) != f32_rounding_differs, name
        G.add(name, fam, "upsample_nearest2d", {"x": x},
              lambda x, oh=oh, ow=ow: F.interpolate(x, size=(oh, ow), mode="nearest"), {"out_h": oh, "out_w": ow})


def batch_norm(G):
    fam = "batch_norm"
    # name, x shape, affine, running stats, training, momentum, eps
    table = [
        ("bn_train_4d", (3, 4, 5, 2), True, True, True, 0.1, 1e-5),
        ("bn_train_2d", (6, 3), True, True, True, 0.1, 1e-5),
        ("bn_train_momentum_eps", (2, 3, 3, 3), True, True, True, 0.3, 1e-3),
        ("bn_train_no_affine", (2, 3, 4, 3), False, True, True, 0.1, 1e-5),
        ("bn_train_no_running", (4, 2, 3, 1), True, False, True, 0.1, 1e-5),
        ("bn_train_n1_spatial", (1, 2, 3, 4), True, True, True, 0.1, 1e-5),
        ("bn_eval_4d", (2, 4, 3, 5), True, True, False, 0.1, 1e-5),
        ("bn_eval_2d", (5, 3), True, True, False, 0.1, 1e-5),
        ("bn_eval_no_affine", (2, 3, 2, 2), False, True, False, 0.1, 1e-5),
    ]
    for name, shape, affine, running, training, momentum, eps in table:
        r = Rand(name)
        c = shape[1]
        ins = {"x": r.normal(*shape, scale=2.0) + 0.5}
        if affine:
            ins["weight"] = r.normal(c) + 1.0
            ins["bias"] = r.normal(c)
        if running:
            ins["running_mean"] = r.normal(c, scale=0.5)
            ins["running_var"] = r.uniform(c, lo=0.5, hi=2.0)
        grads = [k for k in ins if not k.startswith("running")]
        # The running statistics are buffers updated in place by the forward; they get their own copies here.
        buffers = {}

        def fn(x, weight=None, bias=None, running_mean=None, running_var=None, training=training,
               momentum=momentum, eps=eps, buffers=buffers):
            rm = running_mean.detach().clone() if running_mean is not None else None
            rv = running_var.detach().clone() if running_var is not None else None
            buffers["running_mean_after"], buffers["running_var_after"] = rm, rv
            return F.batch_norm(x, rm, rv, weight, bias, training, momentum, eps)

        extras = (lambda leaves, b=buffers: dict(b)) if running else None
        G.add(name, fam, "batch_norm", ins, lambda *args, keys=list(ins): fn(**dict(zip(keys, args))),
              {"training": training, "momentum": momentum, "eps": eps}, grads=grads, extras=extras)


def losses(G):
    fam = "loss"
    r = Rand("mse_loss")
    G.add("mse_loss", fam, "mse_loss", {"pred": r.normal(2, 3, 4), "target": r.normal(2, 3, 4)}, F.mse_loss)
    r = Rand("mse_loss_1elem")
    G.add("mse_loss_1elem", fam, "mse_loss", {"pred": r.normal(1), "target": r.normal(1)}, F.mse_loss)
    r = Rand("l1_loss")
    pred, target = r.normal(3, 5), r.normal(3, 5)
    target[1, 1] = pred[1, 1]  # PyTorch's l1 gradient is sign(0) = 0 where prediction and target agree
    G.add("l1_loss", fam, "l1_loss", {"pred": pred, "target": target}, F.l1_loss)
    r = Rand("bce_with_logits")
    G.add("bce_with_logits", fam, "bce_with_logits", {"logits": r.normal(2, 7, scale=3.0), "target": r.uniform(2, 7)},
          F.binary_cross_entropy_with_logits)
    r = Rand("bce_with_logits_extreme")
    logits = torch.tensor([[40.0, -40.0, 0.0, 15.0], [-15.0, 700.0, -700.0, 1e-3]])
    target = torch.tensor([[0.0, 1.0, 0.5, 1.0], [0.0, 0.0, 1.0, 0.25]])
    G.add("bce_with_logits_extreme", fam, "bce_with_logits", {"logits": logits, "target": target},
          F.binary_cross_entropy_with_logits)
    r = Rand("bce_with_logits_binary")
    G.add("bce_with_logits_binary", fam, "bce_with_logits",
          {"logits": r.normal(3, 1, 2, 2, scale=2.0), "target": r.integers(3, 1, 2, 2, lo=0, hi=2)},
          F.binary_cross_entropy_with_logits)

    fam = "gram"
    for name, shape in [("gram_2x3x4x5", (2, 3, 4, 5)), ("gram_1x1x3x3", (1, 1, 3, 3)), ("gram_2x8x5x7", (2, 8, 5, 7)),
                        ("gram_1x4x1x1", (1, 4, 1, 1))]:
        x = Rand(name).normal(*shape)
        G.add(name, fam, "gram_matrix", {"x": x}, gram_matrix)

    fam = "ssim"
    for name, shape, ws, sigma, independent in [
            ("ssim_w11", (2, 3, 12, 13), 11, 1.5, False),
            ("ssim_w5", (1, 2, 9, 8), 5, 1.5, False),
            ("ssim_w5_independent", (2, 1, 7, 7), 5, 1.5, True),
            ("ssim_w4_even", (1, 2, 9, 7), 4, 1.5, False),
            ("ssim_w11_small_image", (1, 1, 6, 7), 11, 1.5, False),
            ("ssim_w7_sigma1", (1, 3, 8, 10), 7, 1.0, False)]:
        r = Rand(name)
        x = r.uniform(*shape)
        y = r.uniform(*shape) if independent else (x + 0.15 * r.normal(*shape)).clamp(0.0, 1.0)
        G.add(name, fam, "ssim", {"img1": x, "img2": y}, lambda x, y, ws=ws, sigma=sigma: ssim(x, y, ws, sigma),
              {"window_size": ws, "sigma": sigma})

    fam = "self_attention"
    # name, (B, C, H, W), Ck, 3-D (conv1d) weights, gamma
    for name, (b, c, h, w), ck, conv_weights, gamma in [
            ("self_attention_2d_weights", (2, 16, 3, 5), 2, False, 0.7),
            ("self_attention_conv1d_weights", (1, 8, 4, 4), 1, True, -1.3),
            ("self_attention_gamma0", (2, 16, 2, 3), 2, False, 0.0),
            ("self_attention_1x1", (2, 8, 1, 1), 1, False, 0.5)]:
        r = Rand(name)
        ws = (lambda o, i: (o, i, 1)) if conv_weights else (lambda o, i: (o, i))
        ins = {"x": r.normal(b, c, h, w),
               "wq": r.normal(*ws(ck, c), scale=1.0 / math.sqrt(c)),
               "wk": r.normal(*ws(ck, c), scale=1.0 / math.sqrt(c)),
               "wv": r.normal(*ws(c, c), scale=1.0 / math.sqrt(c)),
               "gamma": torch.tensor([gamma])}
        G.add(name, fam, "self_attention", ins, self_attention)


# ---------------------------------------------------------------------------------------------------------------
# safetensors, by hand.

def serialize(tensors, metadata):
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        data = t.numpy().astype("<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # the data then starts 8-byte aligned, as filmgrad's writer does
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def parse(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__")
    data = blob[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        flat = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float64) if e > b else torch.zeros(0)
        out[name] = flat.reshape(info["shape"])
    return out, meta


def write_golden(path, tensors, metadata, max_bytes=None):
    """Serializes `tensors` (converted to f64) and `metadata`, reads the bytes back and checks every tensor bit for
    bit (NaN included) before replacing `path` atomically, so a writer bug cannot leave a broken golden file.
    Returns the bytes written. Every golden script writes through this."""
    tensors = {k: v.to(torch.float64) for k, v in tensors.items()}
    blob = serialize(tensors, metadata)
    if max_bytes is not None:
        assert len(blob) < max_bytes, "%s would be %d bytes, over its %d-byte budget" % (path, len(blob), max_bytes)
    back, back_meta = parse(blob)
    assert back_meta == metadata and sorted(back) == sorted(tensors)
    for k, v in tensors.items():
        assert back[k].shape == v.shape and back[k].numpy().tobytes() == v.contiguous().numpy().tobytes(), k
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return blob


def main():
    G = Golden()
    for family in (elementwise, views, reductions, activations, dropout_and_cast, convolutions, linear_algebra,
                   pooling, padding, resampling, batch_norm, losses):
        family(G)

    meta = dict(G.metadata)
    meta["_format"] = FORMAT
    meta["_generator"] = "tools/make_golden.py"
    meta["_torch_version"] = torch.__version__
    blob = write_golden(OUT_PATH, G.tensors, meta)

    families = {}
    for name in G.order:
        families.setdefault(json.loads(G.metadata[name])["family"], []).append(name)
    print("wrote %s: %d cases, %d tensors, %d bytes (torch %s)" %
          (os.path.relpath(OUT_PATH, ROOT), len(G.order), len(G.tensors), len(blob), torch.__version__))
    for fam, names in families.items():
        print("  %-15s %2d: %s" % (fam, len(names), " ".join(names)))


if __name__ == "__main__":
    main()
