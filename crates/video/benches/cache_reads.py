"""Python side of benches/cache_reads.rs: TSN clips of 8 frames, center
cropped to 224x224, read by N worker processes (as a PyTorch DataLoader's
workers), by

* PyAV: decoding each video up to its last wanted frame (one thread), the
  wanted frames scaled to a short side of 224 by FFmpeg's swscale, as
  mmaction2's PyAVDecode does;
* PIL: mmaction2's rawframes, one JPEG file per frame (Pillow, with
  libjpeg-turbo), read and decoded.

Usage: python cache_reads.py REQUESTS.json WORKERS...
REQUESTS.json: {"videos": [path...], "rawframes": [dir...],
"requests": [[video, [8 indices]], ...]}. Prints one JSON object:
{"pyav": {workers: clips/s}, "pil": {workers: clips/s}}.
"""

import json
import sys
import time
from multiprocessing import Pool

import av
import numpy as np
from PIL import Image

SIDE = 224
CFG = None


def crop(rgb):
    h, w = rgb.shape[:2]
    y, x = (h - SIDE) // 2, (w - SIDE) // 2
    return np.ascontiguousarray(rgb[y : y + SIDE, x : x + SIDE])


def pyav_clip(req):
    v, idx = req
    want = set(idx)
    last = max(idx)
    got = {}
    with av.open(CFG["videos"][v]) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in want:
                w, h = frame.width, frame.height
                if w < h:
                    size = (SIDE, 2 * round(h * SIDE / w / 2))
                else:
                    size = (2 * round(w * SIDE / h / 2), SIDE)
                got[i] = crop(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
            if i >= last:
                break
    return np.stack([got[i] for i in idx]).shape


def pil_clip(req):
    v, idx = req
    d = CFG["rawframes"][v]
    return np.stack([crop(np.asarray(Image.open(f"{d}/img_{i + 1:05d}.jpg").convert("RGB"))) for i in idx]).shape


def init(cfg):
    global CFG
    CFG = cfg


def rate(pool, fn, requests):
    pool.map(fn, requests[: len(requests) // 4], chunksize=1)  # warm-up
    start = time.perf_counter()
    pool.map(fn, requests, chunksize=1)
    return len(requests) / (time.perf_counter() - start)


def main():
    cfg = json.load(open(sys.argv[1]))
    out = {"pyav": {}, "pil": {}}
    for workers in map(int, sys.argv[2:]):
        with Pool(workers, initializer=init, initargs=(cfg,)) as pool:
            out["pyav"][workers] = rate(pool, pyav_clip, cfg["requests"])
            out["pil"][workers] = rate(pool, pil_clip, cfg["requests"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
