"""PyTorch side of `cargo bench -p wsbcn-video --bench pipeline`: 8 TSN
segment frames at random offsets of each video, from the video file
decoded with PyAV (one thread, every frame to RGB), or read from wsbcn's
HDF5 clip cache with h5py as JPEG files and decoded with
`torchvision.io.decode_jpeg` (as mmaction2 reads JPEG frames), then the
training augmentation of wsbcn's
`clip_transform::train_clip` with torchvision's v2 functional transforms:
a crop of the short side times two scales drawn from (1, 0.875, 0.75,
0.66) at most one step apart, at a random position, resized to 224x224
(bilinear, no antialiasing, as wsbcn's sampling), a random horizontal
flip of the whole clip, to float and normalized with ImageNet's mean and
std. Prints clips per second (median of ROUNDS passes after a warm-up
pass).

    python torch_clips.py ROUNDS FILE...
    python torch_clips.py ROUNDS --cache CLIPS_H5
"""
import random
import sys
import time

import av
import h5py
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.io import decode_jpeg

SCALES = (1.0, 0.875, 0.75, 0.66)
CROP = 224
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def segments(n, rng):
    avg = n / 8
    return [min(int(i * avg + rng.random() * avg), n - 1) for i in range(8)]


def decoded(path, rng):
    """(8, 3, H, W) uint8 frames of the video file."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    idx = segments(len(frames), rng)
    return torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2)


def cached(video, rng):
    """(8, 3, H, W) uint8 frames of a cache entry (an h5py dataset of JPEG files)."""
    idx = segments(video.shape[0], rng)
    wanted = sorted(set(idx))
    files = dict(zip(wanted, video[wanted]))
    return torch.stack([decode_jpeg(torch.from_numpy(files[i]))
                        for i in idx])


def augment(video, rng):
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
    rng = random.Random(0)
    if sys.argv[2] == "--cache":
        cache = h5py.File(sys.argv[3], "r")
        names = sorted(cache["videos"].keys())
        items = [cache["videos"][n] for n in names]
        clips = lambda: [augment(cached(v, rng), rng) for v in items]  # noqa: E731
    else:
        items = sys.argv[2:]
        clips = lambda: [augment(decoded(f, rng), rng) for f in items]  # noqa: E731
    times = []
    for r in range(rounds + 1):
        start = time.perf_counter()
        clips()
        if r > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    print(len(items) / times[len(times) // 2])


if __name__ == "__main__":
    main()
