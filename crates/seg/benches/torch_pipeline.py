"""PyTorch side of `cargo bench -p wsbcn-seg --bench pipeline`: each JPEG
and PNG label of a VOC split read with Pillow, then the DeepLabV3 training
augmentation as wsbcn's `train_sample` does it (scale log-uniform in
[0.5, 2], image bilinear and label nearest; pad to 513 with the mean and
255; random 513 crop; random horizontal flip; to float, normalize with
ImageNet's mean and std) with torchvision's functional transforms, on one
thread; prints samples per second (median of ROUNDS passes after a warm-up
pass).

    python torch_pipeline.py VOC2012_DIR ROUNDS
"""

import math
import random
import sys
import time
from pathlib import Path

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

CROP = 513
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def sample(root, name, rng):
    """Resize, pad, crop and flip in uint8, as torchvision's segmentation
    reference orders them; only the 513x513 crop becomes float."""
    image = Image.open(root / "JPEGImages" / f"{name}.jpg").convert("RGB")
    label = Image.open(root / "SegmentationClass" / f"{name}.png")
    s = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    w, h = round(image.width * s), round(image.height * s)
    image = TF.pil_to_tensor(image.resize((w, h), Image.BILINEAR))
    label = TF.pil_to_tensor(label.resize((w, h), Image.NEAREST))
    pad_w, pad_h = max(CROP - w, 0), max(CROP - h, 0)
    if pad_w or pad_h:
        # The image padded with the mean colour (0 once normalized).
        image = torch.cat([TF.pad(image[c:c + 1], [0, 0, pad_w, pad_h], fill=round(255 * MEAN[c]))
                           for c in range(3)])
        label = TF.pad(label, [0, 0, pad_w, pad_h], fill=255)
    x0 = rng.randint(0, image.shape[2] - CROP)
    y0 = rng.randint(0, image.shape[1] - CROP)
    image = image[:, y0:y0 + CROP, x0:x0 + CROP]
    label = label[:, y0:y0 + CROP, x0:x0 + CROP]
    if rng.random() < 0.5:
        image, label = TF.hflip(image), TF.hflip(label)
    image = TF.to_dtype(image, torch.float32, scale=True)
    return TF.normalize(image, MEAN, STD).contiguous(), label.contiguous()


def main():
    root, rounds = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    names = (root / "ImageSets/Segmentation/train.txt").read_text().split()
    rng = random.Random(0)
    times = []
    for r in range(rounds + 1):
        start = time.perf_counter()
        for name in names:
            sample(root, name, rng)
        if r > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    print(len(names) / times[len(times) // 2])


if __name__ == "__main__":
    main()
