"""PyTorch side of `cargo bench -p wsbcn-nn`: times the same convolutions.

Run by benches/conv.rs when WSBCN_TORCH_PYTHON names a Python with torch.
Prints one line per case: `name forward_ms forward_backward_ms`.
"""

import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]))
ITERS = int(sys.argv[2])


def median_ms(fn):
    for _ in range(2):
        fn()
    times = []
    for _ in range(ITERS):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


CASES = {
    "conv2d_3x3_64_2x64x56x56": (F.conv2d, (2, 64, 56, 56), (64, 64, 3, 3), dict(padding=1)),
    "conv3d_3x3x3_64_2x64x8x28x28": (F.conv3d, (2, 64, 8, 28, 28), (64, 64, 3, 3, 3), dict(padding=1)),
}
for name in sys.argv[3:]:
    fn, xs, ws, kw = CASES[name]
    x = torch.randn(xs, requires_grad=True)
    w = torch.randn(ws, requires_grad=True)

    def fwd():
        with torch.no_grad():
            fn(x, w, **kw)

    def fwd_bwd():
        x.grad = None
        w.grad = None
        fn(x, w, **kw).sum().backward()

    print(name, f"{median_ms(fwd):.3f}", f"{median_ms(fwd_bwd):.3f}", flush=True)
