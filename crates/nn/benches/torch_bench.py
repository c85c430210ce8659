"""Shared by the PyTorch side of the training benchmarks
(crates/seg/benches/torch_deeplab.py, crates/video/benches/torch_video.py):
a torchvision model's norm variant as wsbcn names it, and the timing loop
that prints `samples_per_s peak_rss_mb`.

Variants (`convert`): bn (the model as torchvision builds it), bn+ws, gn,
gn+ws, bcn+ws and bcn-est+ws. GN has 32 groups, or as wsbcn's layer
factory chooses for a width 32 does not divide, the largest divisor below
32 (R(2+1)D's 45 and 144 channels); BCN is the official code's
(crates/testkit/fixtures/official_norms.py) with the same groups, its batch part
torch's BatchNorm for bcn and the official estimated BN for bcn-est; with
`+ws` every convolution but those `keep` selects standardizes its weight
(biased variance, eps 1e-5, as this suite's `ws`).
"""

import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit" / "fixtures"))
from official_norms import BCNorm, EstBN  # noqa: E402

SPECS = ("bn", "bn+ws", "gn", "gn+ws", "bcn+ws", "bcn-est+ws")


def standardize(w):
    flat = w.view(w.size(0), -1)
    mean = flat.mean(1, keepdim=True)
    var = flat.var(1, unbiased=False, keepdim=True)
    return ((flat - mean) / torch.sqrt(var + 1e-5)).view_as(w)


class WSConv2d(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(x, standardize(self.weight), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class WSConv3d(nn.Conv3d):
    def forward(self, x):
        return F.conv3d(x, standardize(self.weight), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def groups_for(c, groups=32):
    """The largest divisor of `c` that is at most `groups`, as wsbcn's
    LayerFactory::groups_for."""
    return max(g for g in range(1, min(groups, c) + 1) if c % g == 0)


def norm_for(spec, bn):
    """The norm of variant `spec` in place of BatchNorm `bn`."""
    c = bn.num_features
    if spec.startswith("gn"):
        return nn.GroupNorm(groups_for(c), c)
    if spec.startswith("bcn"):
        est = spec.startswith("bcn-est")
        batch = type(bn)(c)
        if est:
            batch = EstBN(c)
            batch.r = 0.1  # wsbcn's default moving speed; the cost is the same at any r
        return BCNorm(c, groups_for(c), est, batch_norm=batch)
    return bn


def convert(module, spec, keep=lambda conv: False):
    """Turns `module` into variant `spec` in place (see the module docs)."""
    if spec not in SPECS:
        raise SystemExit(f"unknown variant {spec}; one of {', '.join(SPECS)}")
    ws = spec.endswith("+ws")
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm2d, nn.BatchNorm3d)):
            setattr(module, name, norm_for(spec, child))
        elif isinstance(child, (nn.Conv2d, nn.Conv3d)) and ws and not keep(child):
            cls = WSConv3d if isinstance(child, nn.Conv3d) else WSConv2d
            setattr(module, name, cls(child.in_channels, child.out_channels, child.kernel_size,
                                      child.stride, child.padding, child.dilation, child.groups,
                                      child.bias is not None))
        else:
            convert(child, spec, keep)


def time_steps(step, steps, batch):
    """Times `steps` calls of `step` after a warm-up call; prints the rate
    in samples per second and the peak resident memory in MB."""
    step()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    rate = batch * steps / (time.perf_counter() - t)
    print(f"{rate:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", flush=True)
