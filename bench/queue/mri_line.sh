#!/usr/bin/env bash
# bash mri_line.sh LEVEL SEED [LINK_LEVEL]: print the queue.txt line for one development seed of the issue-15
# study on the realistic cohort, e.g. `bash mri_line.sh 09 2` for bias 0.9, seed 2. The line runs the seed
# (`run --appearance mri`, the default method and its unbiased reference at 0.5) from the frozen copy
# (frozen.sh), then, while the run folder exists, archives under bench/results/archive/mLEVEL/: the seed's
# table (`bench mitigate --archive`), its registration metrics (endpoint error, folds), detection with INR
# latents, intensity PCA and the autoencoder (`bench discover`, three discovery seeds) and the linear probe of
# the bias in each (`bench probe`), and commits only those files; then, in a commit of its own (a failure there
# keeps the others), which step of the discovery loses the bias (bench/diagnostics/discovery_steps.py).
# LINK_LEVEL: reuse the unbiased reference of the same seed at that level, run earlier in the same session.
# Paths as in study_line.sh (RUNS, REPO, VENV, FROZEN).
# SHORTCUT=intensity: the negative control (`--shortcut intensity`: the bias brightens the region and moves no
# tissue), in run folder and archive miLEVEL.
. "$(dirname "$0")/links.sh"
L=$1 K=$2 FROM=${3:-}
RUNS=${RUNS:-/work/runs} REPO=${REPO:-/work/main} VENV=${VENV:-/tmp/venv_dev} FROZEN=${FROZEN:-/tmp/frozen_pkg}
SHORTCUT=${SHORTCUT:-morphology}
name="m$L"; [ "$SHORTCUT" = intensity ] && name="mi$L"
out="$RUNS/$name" arc="bench/results/archive/$name" pre=""
if [ -n "$FROM" ]; then
  u="$out/seed_$K/unbiased" src="$RUNS/${name%$L}$FROM/seed_$K/unbiased"
  pre="$(links "$src" "$u" cohort classify) && "
fi
mbf="$VENV/bin/morphbias-fast"
files="$arc/seed_$K.json $arc/register_seed_$K.json $arc/discover_seed_$K.json $arc/probe_seed_$K.json"
echo -n "${pre}cd /tmp && $VENV/bin/python $FROZEN/mbf.py run --out $out --appearance mri --shortcut" \
     "$SHORTCUT --bias-level 0.${L:1} --seeds $K; cd $REPO && $mbf bench mitigate $out --archive bench/results/archive &&" \
     "cp $out/seed_$K/register/metrics.json $arc/register_seed_$K.json &&" \
     "$mbf bench discover $out/seed_$K --seeds 3 --features inr,pca,autoencoder --methods shortcut --json" \
     "$arc/discover_seed_$K.json && $mbf bench probe $out/seed_$K --features inr,pca,autoencoder --json" \
     "$arc/probe_seed_$K.json; git add $files && git commit -qm \"$name (mri cohort, $SHORTCUT shortcut, bias 0.${L:1}, dev" \
     "seed $K): the seed's table, registration, detection and probe archived as it finished\" -- $files"
steps="$arc/discovery_steps_seed_$K.json"
echo "; cd $REPO/bench/diagnostics && $VENV/bin/python discovery_steps.py $out/seed_$K --features" \
     "inr,pca,autoencoder --json $REPO/$steps && cd $REPO && git add $steps && git commit -qm \"$name (dev seed" \
     "$K): which step of the shortcut discovery loses the bias, measured while the run folder existed\" -- $steps"
