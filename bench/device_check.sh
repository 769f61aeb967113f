#!/usr/bin/env bash
# GPU check for a lent H100/H200, in one call of at most 8 minutes (README "Building with CUDA"):
#   1. rebuild with CUDA for sm_90 only;
#   2. every CUDA test, selected by the `cuda` marker, with per-test durations (encoder test files only: the
#      device machine has torch, numpy and pytest but not click, nilearn or SimpleITK);
#   3. `bench encode` on the GPU at N = 2^20 and 2^23, 2-D and 3-D (ours vs pure PyTorch on the same GPU, and
#      tiny-cuda-nn when it imports);
#   4. a 2-rank NCCL smoke (all_reduce + all_gather_object on each rank's GPU) when the machine has 2 GPUs.
# Everything goes to $OUT (default bench/device_out): one JSON (device_check.json) and the logs.
# `--dry-run` rehearses every step on a CPU machine (CI runs it): no build, the test selection collected
# but not run, the benchmark at a tiny N on the CPU, the NCCL smoke printed only; it prints the plan.
set -uo pipefail
cd "$(dirname "$0")/.."
# Python runs with -P: from the project root a plain `python` would import the source folder (no compiled
# kernels) instead of the installed package.
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-bench/device_out}
mkdir -p "$OUT"
start=$(date +%s)
TEST_FILES="python_tests/test_build.py python_tests/test_level_table.py python_tests/test_hashgrid_parity.py
 python_tests/test_gradcheck.py python_tests/test_bad_input.py python_tests/test_determinism.py python_tests/test_cuda.py
 python_tests/test_tcnn.py"
plan() { echo "-- plan: $*"; }

echo "== 0. machine"
if [ $DRY = 1 ]; then plan "nvidia-smi --query-gpu=name,driver_version,memory.total"; echo "dry run" > "$OUT/gpu.txt"
else nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"; fi
NGPU=$(python -P -c "import torch; print(torch.cuda.device_count())")

echo "== 1. build (sm_90, CUDA on)"
plan "MORPHBIAS_CUDA=ON pip install --no-build-isolation --no-deps . (CMAKE_CUDA_ARCHITECTURES=90), 300 s cap"
build=0
if [ $DRY = 0 ]; then
  MORPHBIAS_CUDA=ON timeout 300 python -m pip install --no-build-isolation --no-deps -q \
    --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=90 . >"$OUT/build.log" 2>&1
  build=$?
  tail -5 "$OUT/build.log"
  python -P -c "import morphbias_fast as m; i = m.build_info(); print(i); assert i['cuda'] and i['cuda_device_available']" \
    | tee "$OUT/build_info.txt" || { echo "BUILD FAILED ($build)"; exit 1; }
fi

echo "== 2. CUDA tests (-m cuda, durations)"
plan "pytest -m cuda --durations=0 $(echo $TEST_FILES | tr '\n' ' '), 240 s cap"
if [ $DRY = 1 ]; then
  timeout 240 python -P -m pytest -q -m cuda --co -p no:cacheprovider $TEST_FILES >"$OUT/pytest.log" 2>&1
  tests=$?
  [ $tests = 5 ] && tests=0  # no GPU here: the cuda cases are not generated, nothing to collect is expected
else
  MORPHBIAS_EXPECT_CUDA=1 timeout 240 python -P -m pytest -q -rs -m cuda --durations=0 -p no:cacheprovider \
    --junitxml="$OUT/pytest.xml" $TEST_FILES >"$OUT/pytest.log" 2>&1
  tests=$?
fi
tail -8 "$OUT/pytest.log"

echo "== 3. bench encode (ours vs pure PyTorch, tiny-cuda-nn when it imports)"
plan "N in 2^20, 2^23; D in 2, 3; L=16, F=2, 2^19 table; 120 s cap"
timeout 150 python -P - "$OUT" "$DRY" <<'PY' | tee "$OUT/bench.txt"
import json, sys
import torch
from morphbias_fast.bench import encode as b
out, dry = sys.argv[1], sys.argv[2] == "1"
device = "cpu" if dry else "cuda"
sizes = (1 << 10,) if dry else (1 << 20, 1 << 23)
runs = []
for dims in (2, 3):
    for n in sizes:
        r = b.run(device=device, dims=dims, n=n, log2_hashmap_size=19 if not dry else 12,
                  n_levels=16 if not dry else 4, repeats=3 if not dry else 1)
        print(b.format_table(r), flush=True)
        d = b.to_json(r)
        d.update({"dims": dims, "n": n, "device": device,
                  "gpu": torch.cuda.get_device_name(0) if not dry else None})
        runs.append(d)
json.dump(runs, open(f"{out}/bench_encode.json", "w"), indent=2)
PY
bench=${PIPESTATUS[0]}

echo "== 4. NCCL smoke (2 ranks)"
plan "torchrun --nproc_per_node=2: each rank on cuda:LOCAL_RANK, all_reduce + all_gather_object (only with 2 GPUs)"
nccl="skipped ($NGPU GPU)"
if [ $DRY = 0 ] && [ "$NGPU" -ge 2 ]; then
  cat > "$OUT/nccl_smoke.py" <<'PY'
import torch, torch.distributed as dist
from morphbias_fast.register.distributed import init_distributed, rank_device
d = init_distributed(rank_device(torch.device("cuda")))
assert d.all_continue(True) and not d.all_continue(d.rank == 0)
assert d.gather(d.rank) == list(range(d.world))
print("rank", d.rank, "on", d.device, "ok")
d.finish()
PY
  timeout 60 torchrun --standalone --nproc_per_node=2 "$OUT/nccl_smoke.py" >"$OUT/nccl.log" 2>&1 && nccl=ok || nccl=failed
  tail -3 "$OUT/nccl.log"
fi

seconds=$(( $(date +%s) - start ))
python -P - "$OUT" "$DRY" "$build" "$tests" "$bench" "$nccl" "$seconds" <<'PY'
import json, sys
out, dry, build, tests, bench, nccl, seconds = sys.argv[1:]
summary = {"dry_run": dry == "1", "build_rc": int(build), "pytest_rc": int(tests), "bench_rc": int(bench),
           "nccl": nccl, "seconds": int(seconds), "gpu": open(f"{out}/gpu.txt").read().strip()}
json.dump(summary, open(f"{out}/device_check.json", "w"), indent=2)
print("== summary", json.dumps(summary))
PY
[ "$tests" = 0 ] && [ "$bench" = 0 ] && [ "$nccl" != failed ]
