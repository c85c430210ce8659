"""PyTorch side of `cargo bench -p wsbcn-seg`: DeepLabV3-ResNet-50, output
stride 16, one training step after another on random data; prints
`images_per_s peak_rss_mb`.

    python torch_deeplab.py THREADS STEPS SPEC [DEVICE]      (SPEC: see torch_bench.SPECS)

The model is torchvision's resnet50 with the last stage dilated
(replace_stride_with_dilation=[False, False, True]) and torchvision's
DeepLabHead (ASPP rates 12, 24, 36 as torchvision uses them), 21 classes.
The variants are torch_bench.convert's; WS standardizes every conv but the
classifier.
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "nn" / "benches"))
from torch_bench import convert, time_steps  # noqa: E402

threads, steps, spec = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
torch.set_num_threads(threads)
torch.manual_seed(0)


class DeepLab(nn.Module):
    def __init__(self):
        super().__init__()
        r = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
        self.backbone = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)
        self.classifier = DeepLabHead(2048, 21)

    def forward(self, x):
        y = self.classifier(self.backbone(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


model = DeepLab()
convert(model, spec, keep=lambda conv: conv.out_channels == 21)  # WS on all but the classifier
model.to(device).train()
opt = torch.optim.SGD(model.parameters(), lr=0.007, momentum=0.9, weight_decay=1e-4)
x = torch.randn(2, 3, 257, 257, device=device)
y = torch.randint(0, 21, (2, 257, 257), device=device)


def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y, ignore_index=255).backward()
    opt.step()


time_steps(step, steps, 2)
