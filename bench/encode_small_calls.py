"""Registration-sized encoder calls (32 subjects x 256 points in 2-D, L = 16, 2^19 table): forward+backward and
the Jacobian path through autograd, median ms of 21 after 3 warm-ups.
Usage: python bench/encode_small_calls.py LABEL (bench/RESULTS.md, "CPU speed: staged blocks")."""
import sys
import time

import torch

import morphbias_fast as mbf

torch.manual_seed(0)
enc = mbf.HashGridEncoding(n_input_dims=2, n_levels=16, log2_hashmap_size=19)
x = torch.rand(8192, 2)
w = torch.randn(8192, enc.n_output_dims)
W = torch.randn(8192, enc.n_output_dims, 2)


def forward_backward():
    enc.params.grad = None
    enc(x).backward(w)


def jacobian():
    enc.params.grad = None
    y, J = enc(x, with_jacobian=True)
    torch.autograd.backward([y, J], [w, W])


for name, fn in (("fwd+bwd", forward_backward), ("jacobian", jacobian)):
    for _ in range(3):
        fn()
    times = []
    for _ in range(21):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    print(sys.argv[1] if len(sys.argv) > 1 else "", name, f"{sorted(times)[10] * 1e3:.2f} ms")
