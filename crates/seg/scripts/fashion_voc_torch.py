"""The CPU-scale Fashion-VOC run in PyTorch, to tell how fast the task can be
learned apart from this suite's code: ResNet-18 (width multiplier `width`), output
stride 8, ASPP (64 channels, rates 2, 4, 6, image pooling) + 3x3 head,
GroupNorm(8) + weight standardization (or BN), SGD with momentum 0.9, weight
decay 1e-4 on conv weights, 100 warmup steps then poly 0.9, the DeepLabv3
augmentation; prints val mIoU and per-class IoU every 500 steps.

    python fashion_voc_torch.py root=data/fashion-voc/VOCdevkit/VOC2012 \
        steps=2000 lr=0.02 bs=2 crop=96 smin=0.8 smax=1.25 spec=gn+ws head=aspp width=0.5 aspp=64

`head=linear` replaces ASPP and the 3x3 head by one 1x1 classifier.
Needs torch and pillow; nothing in the suite runs it.
"""

import math
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

torch.set_num_threads(2)
args = dict(a.split("=", 1) for a in sys.argv[1:])
root = args.get("root", "data/fashion-voc/VOCdevkit/VOC2012")
steps, lr, bs = int(args.get("steps", 2000)), float(args.get("lr", 0.02)), int(args.get("bs", 2))
spec, crop = args.get("spec", "gn+ws"), int(args.get("crop", 96))
smin, smax = float(args.get("smin", 0.75)), float(args.get("smax", 1.5))
K = 11
torch.manual_seed(0)
random.seed(0)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def load(split):
    ids = open(f"{root}/ImageSets/Segmentation/{split}.txt").read().split()
    out = []
    for i in ids:
        im = np.asarray(Image.open(f"{root}/JPEGImages/{i}.jpg").convert("RGB"), np.float32) / 255
        lb = np.asarray(Image.open(f"{root}/SegmentationClass/{i}.png")).astype(np.int64)
        out.append((torch.from_numpy(((im - MEAN) / STD).transpose(2, 0, 1).copy()), torch.from_numpy(lb)))
    return out


def augment(im, lb):
    s = math.exp(random.uniform(math.log(smin), math.log(smax)))
    h, w = lb.shape
    nh, nw = round(h * s), round(w * s)
    im = F.interpolate(im[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    lb = F.interpolate(lb[None, None].float(), size=(nh, nw), mode="nearest")[0, 0].long()
    x0, y0 = random.randint(0, max(0, nw - crop)), random.randint(0, max(0, nh - crop))
    ci, cl = im[:, y0 : y0 + crop, x0 : x0 + crop], lb[y0 : y0 + crop, x0 : x0 + crop]
    oi, ol = torch.zeros(3, crop, crop), torch.full((crop, crop), 255, dtype=torch.long)
    oi[:, : ci.shape[1], : ci.shape[2]], ol[: cl.shape[0], : cl.shape[1]] = ci, cl
    return (oi.flip(-1), ol.flip(-1)) if random.random() < 0.5 else (oi, ol)


class WSConv2d(nn.Conv2d):
    def forward(self, x):
        f = self.weight.flatten(1)
        w = ((f - f.mean(1, keepdim=True)) / (f.var(1, unbiased=False, keepdim=True) + 1e-5).sqrt()).view_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation)


Conv = WSConv2d if spec.endswith("+ws") else nn.Conv2d


def norm(c):
    return nn.GroupNorm(8, c) if spec.startswith("gn") else nn.BatchNorm2d(c)


def cbr(i, o, k, d=1):
    return nn.Sequential(Conv(i, o, k, 1, d * (k // 2), d, bias=False), norm(o), nn.ReLU())


class Block(nn.Module):
    def __init__(self, i, o, stride, d):
        super().__init__()
        self.c1, self.n1 = Conv(i, o, 3, stride, d, d, bias=False), norm(o)
        self.c2, self.n2 = Conv(o, o, 3, 1, d, d, bias=False), norm(o)
        self.down = nn.Sequential(Conv(i, o, 1, stride, bias=False), norm(o)) if stride != 1 or i != o else None

    def forward(self, x):
        y = self.n2(self.c2(F.relu(self.n1(self.c1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ASPP(nn.Module):
    def __init__(self, c, a=64):
        super().__init__()
        self.branches = nn.ModuleList([cbr(c, a, 1)] + [cbr(c, a, 3, r) for r in (2, 4, 6)])
        self.pool = cbr(c, a, 1)
        self.project = cbr(5 * a, a, 1)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x.mean((2, 3), keepdim=True)).expand(-1, -1, *x.shape[2:]))
        return self.project(torch.cat(outs, 1))


C = [max(1, round(c * float(args.get("width", 0.5)))) for c in (64, 128, 256, 512)]
backbone = nn.Sequential(
    Conv(3, C[0], 7, 2, 3, bias=False), norm(C[0]), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
    Block(C[0], C[0], 1, 1), Block(C[0], C[0], 1, 1), Block(C[0], C[1], 2, 1), Block(C[1], C[1], 1, 1),
    Block(C[1], C[2], 1, 1), Block(C[2], C[2], 1, 2), Block(C[2], C[3], 1, 2), Block(C[3], C[3], 1, 4),
)
for m in backbone.modules():
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
if args.get("head", "aspp") == "linear":
    classifier = nn.Conv2d(C[3], K, 1)
    model = nn.Sequential(backbone, classifier)
else:
    a = int(args.get("aspp", 64))
    classifier = nn.Conv2d(a, K, 1)
    model = nn.Sequential(backbone, ASPP(C[3], a), cbr(a, a, 3), classifier)
nn.init.normal_(classifier.weight, 0, 0.01)
decay = [p for p in model.parameters() if p.ndim > 1]
no_decay = [p for p in model.parameters() if p.ndim <= 1]
opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0}], lr=lr, momentum=0.9)
train, val = load("train"), load("val")


def evaluate():
    model.eval()
    cm = torch.zeros(K * K, dtype=torch.long)
    with torch.no_grad():
        for im, lb in val:
            p = F.interpolate(model(im[None]), size=lb.shape, mode="bilinear", align_corners=False).argmax(1)[0]
            m = lb != 255
            cm += torch.bincount(lb[m] * K + p[m], minlength=K * K)
    model.train()
    cm = cm.view(K, K).double()
    inter, union = cm.diag(), cm.sum(0) + cm.sum(1) - cm.diag()
    present = union > 0
    return (inter[present] / union[present]).mean().item(), (100 * inter / union.clamp(min=1)).round().int().tolist()


t0, order = time.time(), []
for it in range(steps):
    scale = (it + 1) / 100 if it < 100 else (1 - it / steps) ** 0.9
    for g in opt.param_groups:
        g["lr"] = lr * scale
    if len(order) < bs:
        order = list(range(len(train)))
        random.shuffle(order)
    batch = [augment(*train[order.pop()]) for _ in range(bs)]
    x, y = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    logits = F.interpolate(model(x), size=(crop, crop), mode="bilinear", align_corners=False)
    loss = F.cross_entropy(logits, y, ignore_index=255)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if (it + 1) % 500 == 0 or it + 1 == steps:
        miou, per_class = evaluate()
        print(f"step {it + 1} loss {loss.item():.3f} miou {miou:.4f} {time.time() - t0:.0f}s per-class {per_class}", flush=True)
