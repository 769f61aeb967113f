#!/usr/bin/env bash
# GPU check for a lent H100/H200 (see README "Building with CUDA"): rebuild with CUDA for sm_90, run the
# encoder test files (the `device` fixture adds CUDA to every parity test), then the GPU benchmark.
# The device machine has torch, pytest and the build tools but no network, so only tests and code that need
# nothing beyond torch and numpy run there (no click, nilearn, SimpleITK: the CLI is not used).
# Budget: under 8 minutes. Results go to $OUT (or bench/device_out) and a short table is printed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/device_out}
mkdir -p "$OUT"
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

echo "== build (sm_90, CUDA on)"
MORPHBIAS_CUDA=ON timeout 300 python -m pip install --no-build-isolation --no-deps -q \
  --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=90 . >"$OUT/build.log" 2>&1
build=$?
tail -5 "$OUT/build.log"
python -c "import morphbias_fast as m; i = m.build_info(); print(i); assert i['cuda'] and i['cuda_device_available']" \
  | tee "$OUT/build_info.txt" || { echo "BUILD FAILED ($build)"; exit 1; }

echo "== tests"
MORPHBIAS_EXPECT_CUDA=1 timeout 180 pytest -q -rs -p no:cacheprovider --junitxml="$OUT/pytest.xml" \
  python_tests/test_build.py python_tests/test_level_table.py python_tests/test_hashgrid_parity.py \
  python_tests/test_gradcheck.py python_tests/test_bad_input.py python_tests/test_determinism.py \
  python_tests/test_cuda.py >"$OUT/pytest.log" 2>&1
tests=$?
tail -15 "$OUT/pytest.log"

echo "== benchmark (CUDA, D=3, L=16, F=2)"
timeout 200 python - "$OUT" <<'PY' | tee -a "$OUT/bench.txt"
import json, sys
import torch
from morphbias_fast.bench import encode as b
for log2 in (19, 15):
    r = b.run(device="cuda", n=1 << 20, log2_hashmap_size=log2, repeats=5)
    print(b.format_table(r), flush=True)
    d = r.as_dict()
    d["gpu"] = torch.cuda.get_device_name(0)
    with open(f"{sys.argv[1]}/bench_cuda_log2_{log2}.json", "w") as fh:
        json.dump(d, fh, indent=2)
PY

echo "== summary"
echo "card: $(cat "$OUT/gpu.txt")"
echo "pytest exit: $tests ($(grep -Eo '[0-9]+ passed[^=]*' "$OUT/pytest.log" | tail -1))"
grep -E "^(forward|jacobian)" "$OUT/bench.txt" || true
echo "seconds: $(( $(date +%s) - start ))"
exit "$tests"
