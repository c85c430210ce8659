"""PyAV side of the clip benchmark (benches/clips.rs): decode every frame of
each video to RGB, take 8 TSN segment frames at random offsets; prints
clips per second (median of ROUNDS passes after a warm-up pass).

Usage: python pyav_clips.py ROUNDS FILE...
"""
import random
import sys
import time

import av
import numpy as np


def clip(path, rng):
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    n = len(frames)
    avg = n / 8
    idx = [min(int(i * avg + rng.random() * avg), n - 1) for i in range(8)]
    return np.stack([frames[i] for i in idx])


def main():
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
