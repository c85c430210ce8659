"""Shared by the PyTorch side of the training benchmarks
(crates/seg/benches/torch_deeplab.py, crates/video/benches/torch_r3d.py):
the gn+ws variant of a torchvision model (every BatchNorm becomes
GroupNorm(32), every convolution but those `keep` selects standardizes its
weight, biased variance, eps 1e-5, as this suite's `ws`), and the timing
loop that prints `samples_per_s peak_rss_mb`.
"""

import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def to_gn_ws(module, keep=lambda conv: False):
    """Replaces, in place, the norms and convolutions of `module`."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm2d, nn.BatchNorm3d)):
            setattr(module, name, nn.GroupNorm(32, child.num_features))
        elif isinstance(child, (nn.Conv2d, nn.Conv3d)) and not keep(child):
            cls = WSConv3d if isinstance(child, nn.Conv3d) else WSConv2d
            setattr(module, name, cls(child.in_channels, child.out_channels, child.kernel_size,
                                      child.stride, child.padding, child.dilation, child.groups,
                                      child.bias is not None))
        else:
            to_gn_ws(child, keep)


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
