#!/usr/bin/env bash
# bash study_line.sh LEVEL SEED [LINK_LEVEL]: print the queue.txt line for one development seed of the issue-14
# study, e.g. `bash study_line.sh 08 2 09` for bias 0.8, seed 2. The line runs the seed with every baseline
# from the frozen copy (frozen.sh), archives its table (`bench mitigate --archive`, the run folder does not
# survive the machine), measures the val-threshold diagnostic while the folder exists, and commits both files.
# LINK_LEVEL: reuse the unbiased reference of the same seed at that level, run earlier in the same session
# (it does not depend on the bias level). Paths: runs under /work/runs, the checkout at /work/main, the venv
# /tmp/venv_dev, the frozen copy /tmp/frozen_pkg; set RUNS, REPO, VENV, FROZEN to change them.
. "$(dirname "$0")/links.sh"
L=$1 K=$2 FROM=${3:-}
RUNS=${RUNS:-/work/runs} REPO=${REPO:-/work/main} VENV=${VENV:-/tmp/venv_dev} FROZEN=${FROZEN:-/tmp/frozen_pkg}
out="$RUNS/b$L" pre=""
if [ -n "$FROM" ]; then
  u="$out/seed_$K/unbiased" src="$RUNS/b$FROM/seed_$K/unbiased"
  pre="$(links "$src" "$u" cohort classify) && "
fi
files="bench/results/archive/b$L/seed_$K.json bench/results/val_threshold_b${L}_seed_$K.json"
echo "${pre}cd /tmp && $VENV/bin/python $FROZEN/mbf.py run --out $out --bias-level 0.${L:1} --seeds $K" \
     "--baselines paper,oracle,groupbal,jtt; cd $REPO && $VENV/bin/morphbias-fast bench mitigate $out --archive" \
     "bench/results/archive && $VENV/bin/python -P bench/diagnostics/val_threshold.py $out/seed_$K --json" \
     "bench/results/val_threshold_b${L}_seed_$K.json; git add $files && git commit -qm \"b$L (bias 0.${L:1}, dev" \
     "seed $K, every baseline): the seed's table and its val-threshold diagnostic archived as it finished\" -- $files"
