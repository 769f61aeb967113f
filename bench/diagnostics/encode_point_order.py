"""Would sorting the points make the 2-D CPU encoder fast enough (issue 18, item 3)? The same 2^18 points in
three orders, through the encoder and autograd as `bench encode` times them (L = 16, F = 2, 2^19 entries,
base 16), at the bench's per-level scale 2 and at the registration-like 1.4142:

    python bench/diagnostics/encode_point_order.py --json OUT.json

random: as drawn; rows: sorted by the finest level's row, then column; morton: sorted along a Z curve of a
1024^2 grid. A point order that keeps neighbours together lets consecutive points share table lines at the
levels whose cells are not much finer than the point spacing. Median of 7 after one warm-up, 2 threads."""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from morphbias_fast.encoding import HashGridEncoding


def _time(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _spread(v: torch.Tensor) -> torch.Tensor:
    """The bits of a 10-bit integer moved to the even positions (one axis of a Morton code)."""
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


def orders(x: torch.Tensor, finest: float) -> dict[str, torch.Tensor]:
    cell = (x * finest).floor()
    xi = (x * 1024).long().clamp(0, 1023)
    return {"random": x, "rows": x[torch.argsort(cell[:, 0] * (finest + 1) + cell[:, 1])].contiguous(),
            "morton": x[torch.argsort(_spread(xi[:, 0]) | (_spread(xi[:, 1]) << 1))].contiguous()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = {"n": 2**18, "threads": 2, "rows": []}
    for scale in (2.0, 1.4142):
        torch.manual_seed(0)
        enc = HashGridEncoding(n_input_dims=2, n_levels=16, n_features_per_level=2, log2_hashmap_size=19,
                               base_resolution=16, per_level_scale=scale)
        x = torch.rand(2**18, 2)
        w = torch.randn(2**18, enc.n_output_dims)

        def fwd(xx):
            with torch.no_grad():
                enc(xx)

        def fb(xx):
            enc.params.grad = None
            enc(xx).backward(w)

        for name, xx in orders(x, 16 * scale ** 15).items():
            row = {"per_level_scale": scale, "order": name, "forward_ms": 1e3 * _time(lambda: fwd(xx)),
                   "forward_backward_ms": 1e3 * _time(lambda: fb(xx))}
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
