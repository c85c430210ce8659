"""PyTorch side of `cargo bench -p wsbcn-nn`: times the same convolutions.

Run by benches/conv.rs when WSBCN_TORCH_PYTHON names a Python with torch.
Arguments: threads, timed rounds, then the names to time (`matmul` or a
case; all when none). Prints `matmul_gflops G` (1024^3 f32 matmul) and one
line per case: `name forward_ms forward_backward_ms`. The cases mirror
CASES in conv.rs.
"""

import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]))
ITERS = int(sys.argv[2])


def median_ms(fn, iters=ITERS):
    for _ in range(2):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


# name: (input dims, output channels, kernel, stride, padding, dilation)
CASES = {
    "conv2d_3x3_64to64_2x64x64x64": ((2, 64, 64, 64), 64, (3, 3), 1, (1, 1), 1),
    "conv2d_3x3s2_128to256_2x128x32x32": ((2, 128, 32, 32), 256, (3, 3), 2, (1, 1), 1),
    "conv2d_1x1_256to64_2x256x32x32": ((2, 256, 32, 32), 64, (1, 1), 1, (0, 0), 1),
    "conv2d_3x3d2_256to256_2x256x33x33": ((2, 256, 33, 33), 256, (3, 3), 1, (2, 2), 2),
    "conv3d_3x3x3_64to64_2x64x8x28x28": ((2, 64, 8, 28, 28), 64, (3, 3, 3), 1, (1, 1, 1), 1),
    "conv3d_1x3x3_64to64_2x64x8x28x28": ((2, 64, 8, 28, 28), 64, (1, 3, 3), 1, (0, 1, 1), 1),
    "conv3d_3x1x1_64to64_2x64x8x28x28": ((2, 64, 8, 28, 28), 64, (3, 1, 1), 1, (1, 0, 0), 1),
}

NAMES = sys.argv[3:] or ["matmul", *CASES]

if "matmul" in NAMES:
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    print("matmul_gflops", f"{2 * 1024**3 / 1e9 / (median_ms(lambda: a @ b, ITERS * 4) / 1e3):.1f}", flush=True)

for name in NAMES[NAMES[0] == "matmul":]:
    xs, out, kernel, stride, padding, dilation = CASES[name]
    conv = F.conv2d if len(kernel) == 2 else F.conv3d
    x = torch.randn(xs, requires_grad=True)
    w = (0.1 * torch.randn((out, xs[1]) + kernel)).requires_grad_()

    def run():
        return conv(x, w, stride=stride, padding=padding, dilation=dilation)

    def fwd():
        with torch.no_grad():
            run()

    def fwd_bwd():
        x.grad = None
        w.grad = None
        run().sum().backward()

    print(name, f"{median_ms(fwd):.3f}", f"{median_ms(fwd_bwd):.3f}", flush=True)
