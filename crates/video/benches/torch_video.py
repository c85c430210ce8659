"""PyTorch side of `cargo bench -p wsbcn-video --bench r3d` and `--bench
r2plus1d`: torchvision's r3d_18 or r2plus1d_18 (400 classes), one training
step after another on random clips of 2x3x8x112x112; prints
`clips_per_s peak_rss_mb`.

    python torch_video.py MODEL THREADS STEPS SPEC [DEVICE]
    (MODEL: r3d_18 | r2plus1d_18; SPEC: see torch_bench.SPECS)

The variants are torch_bench.convert's; the final linear layer is
unchanged.
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "nn" / "benches"))
from torch_bench import convert, time_steps  # noqa: E402

name, threads, steps, spec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
device = torch.device(sys.argv[5] if len(sys.argv) > 5 else "cpu")
if name not in ("r3d_18", "r2plus1d_18"):
    raise SystemExit(f"unknown model {name}; r3d_18 or r2plus1d_18")
torch.set_num_threads(threads)
torch.manual_seed(0)


model = getattr(torchvision.models.video, name)(weights=None, num_classes=400)
convert(model, spec)
model.to(device).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
x = torch.randn(2, 3, 8, 112, 112, device=device)
y = torch.tensor([3, 117], device=device)


def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


time_steps(step, steps, 2)
