"""Throughput of the hash-grid encoder against the pure-PyTorch reference, in the same run.

Three workloads on the same points and parameters:
  forward            y = enc(x)                                  (no autograd graph)
  forward+backward   y = enc(x); backward of <y, w> to the parameters
  jacobian           (y, dy/dx) = enc(x, with_jacobian=True); backward of <y, w> + <J, W> to the parameters
The reference computes dy/dx with the analytic formula (vectorised), which is faster than any autograd
route to a full Jacobian, so the comparison is against the best pure-PyTorch way, not a strawman.
tiny-cuda-nn is timed too on CUDA when `tinycudann` imports (forward and forward+backward; it has no
analytic dy/dx output).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

import morphbias_fast as mbf
from morphbias_fast import reference as ref
from morphbias_fast.encoding import HashGridEncoding

WORKLOADS = ("forward", "forward+backward", "jacobian")


@dataclass
class EncodeBenchResult:
    device: str
    dims: int
    n: int
    n_levels: int
    n_features_per_level: int
    log2_hashmap_size: int
    threads: int
    repeats: int
    # workload -> implementation -> million queries per second
    mqps: dict = field(default_factory=dict)
    # workload -> implementation -> median seconds
    seconds: dict = field(default_factory=dict)

    def ratio(self, workload: str, other: str = "reference") -> float | None:
        ours, base = self.mqps.get(workload, {}).get("morphbias"), self.mqps.get(workload, {}).get(other)
        return None if not ours or not base else ours / base

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ratio_vs_reference"] = {w: self.ratio(w) for w in WORKLOADS}
        d["ratio_vs_tcnn"] = {w: self.ratio(w, "tinycudann") for w in WORKLOADS}
        return d


def _timeit(fn, device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _tcnn_encoding(enc: HashGridEncoding):
    try:
        import tinycudann as tcnn  # noqa: F401
    except Exception:  # any import failure means "not available", not a crash
        return None
    c = enc.config
    cfg = {"otype": "HashGrid", "n_levels": c.n_levels, "n_features_per_level": c.n_features_per_level,
           "log2_hashmap_size": c.log2_hashmap_size, "base_resolution": c.base_resolution,
           "per_level_scale": c.per_level_scale, "interpolation": c.interpolation.capitalize()}
    module = tcnn.Encoding(c.n_input_dims, cfg, dtype=torch.float32).to(enc.params.device)
    if module.params.numel() != enc.params.numel():
        return None
    with torch.no_grad():
        module.params.copy_(enc.params)
    return module


def _workloads(enc: HashGridEncoding, x, w, W, reference: bool) -> dict:
    """implementation -> (forward, forward+backward, jacobian) callables (None where it has no such path)."""
    params = enc.params

    def ours_fwd():
        with torch.no_grad():
            enc(x)

    def ours_fb():
        params.grad = None
        enc(x).backward(w)

    def ours_jac():
        params.grad = None
        y, J = enc(x, with_jacobian=True)
        torch.autograd.backward([y, J], [w, W])

    def ref_fwd():
        with torch.no_grad():
            ref.encode(x, params, enc.config)

    def ref_fb():
        params.grad = None
        ref.encode(x, params, enc.config).backward(w)

    def ref_jac():
        params.grad = None
        y, J = ref.encode_with_jacobian(x, params, enc.config)
        torch.autograd.backward([y, J], [w, W])

    impls = {"morphbias": (ours_fwd, ours_fb, ours_jac)}
    if reference:
        impls["reference"] = (ref_fwd, ref_fb, ref_jac)
    tc = _tcnn_encoding(enc) if x.device.type == "cuda" else None
    if tc is not None:
        def tc_fwd():
            with torch.no_grad():
                tc(x)

        def tc_fb():
            tc.params.grad = None
            tc(x).backward(w.to(torch.float16) if tc.dtype == torch.float16 else w)

        impls["tinycudann"] = (tc_fwd, tc_fb, None)
    return impls


def run(device: str = "cpu", dims: int = 3, n: int = 2**18, log2_hashmap_size: int = 19, n_levels: int = 16,
        n_features_per_level: int = 2, repeats: int = 3, warmup: int = 1, reference: bool = True,
        progress=None) -> EncodeBenchResult:
    dev = torch.device(device)
    torch.manual_seed(0)
    enc = HashGridEncoding(n_input_dims=dims, n_levels=n_levels, n_features_per_level=n_features_per_level,
                           log2_hashmap_size=log2_hashmap_size, device=dev)
    x = torch.rand(n, dims, device=dev)
    w = torch.randn(n, enc.n_output_dims, device=dev)
    W = torch.randn(n, enc.n_output_dims, dims, device=dev)
    res = EncodeBenchResult(device=str(dev), dims=dims, n=n, n_levels=n_levels,
                            n_features_per_level=n_features_per_level, log2_hashmap_size=log2_hashmap_size,
                            threads=torch.get_num_threads(), repeats=repeats)
    for name, fns in _workloads(enc, x, w, W, reference).items():
        for workload, fn in zip(WORKLOADS, fns):
            if fn is None:
                continue
            if progress:
                progress(f"{name}: {workload}")
            t = _timeit(fn, dev, repeats, warmup)
            res.seconds.setdefault(workload, {})[name] = t
            res.mqps.setdefault(workload, {})[name] = n / t / 1e6
    return res


def to_json(res: EncodeBenchResult) -> dict:
    """The figures with the build and, on CUDA, the GPU that produced them."""
    data = res.as_dict()
    data["build_info"] = mbf.build_info()
    if res.device.startswith("cuda"):
        data["gpu"] = torch.cuda.get_device_name(torch.device(res.device))
    return data


def format_table(res: EncodeBenchResult) -> str:
    impls = sorted({k for v in res.mqps.values() for k in v}, key=["morphbias", "reference", "tinycudann"].index)
    head = f"{'workload':<18}" + "".join(f"{name + ' Mq/s':>18}" for name in impls) + f"{'ratio vs ref':>14}"
    if "tinycudann" in impls:
        head += f"{'ratio vs tcnn':>15}"
    lines = [f"hash-grid encode on {res.device} ({res.threads} threads): N={res.n}, D={res.dims}, "
             f"L={res.n_levels}, F={res.n_features_per_level}, log2_hashmap_size={res.log2_hashmap_size}, "
             f"median of {res.repeats}", head]
    for w in WORKLOADS:
        row = f"{w:<18}"
        for name in impls:
            v = res.mqps.get(w, {}).get(name)
            row += f"{v:>18.2f}" if v else f"{'n/a':>18}"
        r = res.ratio(w)
        row += f"{r:>13.1f}x" if r else f"{'n/a':>14}"
        if "tinycudann" in impls:
            r = res.ratio(w, "tinycudann")
            row += f"{r:>14.2f}x" if r else f"{'n/a':>15}"
        lines.append(row)
    return "\n".join(lines)
