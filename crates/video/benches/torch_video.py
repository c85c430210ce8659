"""PyTorch side of `cargo bench -p wsbcn-video --bench r3d`, `--bench
r2plus1d` and `--bench tsm`: torchvision's r3d_18 or r2plus1d_18 (400
classes) on random clips of 2x3x8x112x112, or TSM-ResNet-50 (400 classes)
on one clip of 8 segments at 224x224, one training step after another;
prints `clips_per_s peak_rss_mb`.

    python torch_video.py MODEL THREADS STEPS SPEC [DEVICE]
    (MODEL: r3d_18 | r2plus1d_18 | tsm_r50; SPEC: see torch_bench.SPECS)

TSM-ResNet-50 is torchvision's resnet50 run on the clip's frames as a
batch, with TSM's residual shift (Lin et al., ICCV 2019) before every
bottleneck's first convolution: 1/8 of the channels from the next frame,
1/8 from the previous one, zeros at the clip's ends; the frames' logits
are averaged (TSM's average consensus). The variants are
torch_bench.convert's; the final linear layer is unchanged.
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "nn" / "benches"))
from torch_bench import convert, time_steps  # noqa: E402

name, threads, steps, spec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
if name not in ("r3d_18", "r2plus1d_18", "tsm_r50"):
    raise SystemExit(f"unknown model {name}; r3d_18, r2plus1d_18 or tsm_r50")
torch.set_num_threads(threads)
torch.manual_seed(0)


class ShiftThen(nn.Module):
    """TSM's residual shift over `segments` frames, then `conv`."""

    def __init__(self, conv, segments, div=8):
        super().__init__()
        self.conv, self.segments, self.div = conv, segments, div

    def forward(self, x):
        nt, c, h, w = x.shape
        x = x.view(nt // self.segments, self.segments, c, h, w)
        fold = c // self.div
        out = torch.zeros_like(x)
        out[:, :-1, :fold] = x[:, 1:, :fold]
        out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
        out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
        return self.conv(out.view(nt, c, h, w))


if name == "tsm_r50":
    segments = 8
    model = torchvision.models.resnet50(weights=None, num_classes=400)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            block.conv1 = ShiftThen(block.conv1, segments)
    frames = torch.randn(segments, 3, 224, 224, device=device)
    y = torch.tensor([3], device=device)

    def forward():
        return model(frames).view(1, segments, -1).mean(1)
else:
    model = getattr(torchvision.models.video, name)(weights=None, num_classes=400)
    x = torch.randn(2, 3, 8, 112, 112, device=device)
    y = torch.tensor([3, 117], device=device)

    def forward():
        return model(x)
convert(model, spec)
model.to(device).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def step():
    opt.zero_grad()
    F.cross_entropy(forward(), y).backward()
    opt.step()


time_steps(step, steps, len(y))
