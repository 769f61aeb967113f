"""The `morphbias-fast` command line: a thin click layer over the package's entry points."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click


def _write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to its destination, then rename, so no half-written file is ever left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="morphbias-fast")
def main() -> None:
    """morphbias-fast: find and remove morphological bias in medical-image classifiers.

    Registers every image to an atlas with one hash-grid implicit neural representation, uses each
    subject's latent code to find the subgroups where a classifier fails, and retrains on a re-balanced,
    INR-augmented set. The compiled kernels run on the CPU everywhere and on CUDA GPUs when built with nvcc.
    """


@main.command()
def info() -> None:
    """Show what this installation was built with and what it can use right now."""
    import morphbias_fast as mbf

    for key, value in mbf.build_info().items():
        click.echo(f"{key:<24}{value}")


@main.group()
def bench() -> None:
    """Benchmarks: our kernels against the alternative a user would pick, in the same run."""


@bench.command("encode")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where to run both implementations.")
@click.option("--dims", type=click.IntRange(2, 3), default=3, show_default=True, help="Input dimensions D.")
@click.option("--n", "n", type=click.IntRange(min=1), default=2**18, show_default=True, help="Query points.")
@click.option("--log2-hashmap-size", type=click.IntRange(10, 24), default=19, show_default=True,
              help="Entries per hashed level (2^19 is tiny-cuda-nn's default; 2^15 stays in cache).")
@click.option("--levels", type=click.IntRange(1, 32), default=16, show_default=True)
@click.option("--features", type=click.Choice(["1", "2", "4", "8"]), default="2", show_default=True,
              help="Features per level F.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed repetitions after one warm-up; the median is reported.")
@click.option("--no-reference", is_flag=True, help="Skip the (slow) pure-PyTorch reference.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures to this JSON file.")
def bench_encode(device, dims, n, log2_hashmap_size, levels, features, repeats, no_reference, json_path) -> None:
    """Million queries/s of the hash-grid encoder: forward, forward+backward and the Jacobian path,
    ours against the pure-PyTorch reference (and tiny-cuda-nn when it imports), with ratios."""
    import torch

    from morphbias_fast.bench import encode as bench_mod
    from morphbias_fast.ops.hashgrid import cuda_compiled

    if device == "cuda" and not (torch.cuda.is_available() and cuda_compiled()):
        raise click.UsageError("--device cuda needs a GPU visible to torch and a build with CUDA kernels "
                               "(see `morphbias-fast info`)")
    res = bench_mod.run(device=device, dims=dims, n=n, log2_hashmap_size=log2_hashmap_size, n_levels=levels,
                        n_features_per_level=int(features), repeats=repeats, reference=not no_reference,
                        progress=lambda msg: click.echo(f"  timing {msg} ...", err=True))
    click.echo(bench_mod.format_table(res))
    if json_path:
        data = res.as_dict()
        import morphbias_fast as mbf

        data["build_info"] = mbf.build_info()
        if device == "cuda":
            data["gpu"] = torch.cuda.get_device_name(torch.device(device))
        _write_json_atomic(json_path, data)
        click.echo(f"wrote {json_path}")


if __name__ == "__main__":  # pragma: no cover
    main()
