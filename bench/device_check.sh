#!/usr/bin/env bash
# GPU check for a lent H100/H200 (see README "Building with CUDA"): rebuild with CUDA for sm_90, run the
# whole test suite (the `device` fixture adds CUDA to every parity test), then the GPU benchmark.
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
  >"$OUT/pytest.log" 2>&1
tests=$?
tail -15 "$OUT/pytest.log"

echo "== benchmark (CUDA, D=3, L=16, F=2)"
for log2 in 19 15; do
  timeout 90 morphbias-fast bench encode --device cuda --n 1048576 --log2-hashmap-size "$log2" --repeats 5 \
    --json "$OUT/bench_cuda_log2_${log2}.json" 2>/dev/null | tee -a "$OUT/bench.txt"
done

echo "== summary"
echo "card: $(cat "$OUT/gpu.txt")"
echo "pytest exit: $tests ($(grep -Eo '[0-9]+ passed[^=]*' "$OUT/pytest.log" | tail -1))"
grep -E "^(forward|jacobian)" "$OUT/bench.txt" || true
echo "seconds: $(( $(date +%s) - start ))"
exit "$tests"
