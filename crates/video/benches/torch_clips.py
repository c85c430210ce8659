"""PyTorch side of `cargo bench -p wsbcn-video --bench pipeline`: each video
decoded with PyAV (one thread, every frame to RGB), 8 TSN segment frames
at random offsets, then the training augmentation of wsbcn's
`clip_transform::train_clip` with torchvision's v2 functional transforms:
a crop of the short side times two scales drawn from (1, 0.875, 0.75,
0.66) at most one step apart, at a random position, resized to 224x224
(bilinear, no antialiasing, as wsbcn's sampling), a random horizontal
flip of the whole clip, to float and normalized with ImageNet's mean and
std. Prints clips per second (median of ROUNDS passes after a warm-up
pass).

    python torch_clips.py ROUNDS FILE...
"""
import random
import sys
import time

import av
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

SCALES = (1.0, 0.875, 0.75, 0.66)
CROP = 224
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def clip(path, rng):
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    n = len(frames)
    avg = n / 8
    idx = [min(int(i * avg + rng.random() * avg), n - 1) for i in range(8)]
    video = torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2)
    h, w = video.shape[2], video.shape[3]
    short = min(h, w)
    i = rng.randrange(len(SCALES))
    j = rng.randrange(max(i - 1, 0), min(i + 2, len(SCALES)))
    cw, ch = round(short * SCALES[i]), round(short * SCALES[j])
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    video = TF.resized_crop(video, y0, x0, ch, cw, [CROP, CROP], antialias=False)
    if rng.random() < 0.5:
        video = TF.hflip(video)
    video = TF.to_dtype(video, torch.float32, scale=True)
    return TF.normalize(video, MEAN, STD).permute(1, 0, 2, 3).contiguous()


def main():
    torch.set_num_threads(1)
    rounds = int(sys.argv[1])
    files = sys.argv[2:]
    rng = random.Random(0)
    times = []
    for r in range(rounds + 1):
        start = time.perf_counter()
        for f in files:
            clip(f, rng)
        if r > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    print(len(files) / times[len(times) // 2])


if __name__ == "__main__":
    main()
