#!/usr/bin/env bash
# bash bench/queue/frozen.sh VENV [DEST]: a frozen copy of the package at HEAD for a long study, so that edits in
# the checkout never reach a running job. VENV is a venv with the package installed editable (its compiled _C
# module is linked, not rebuilt); DEST defaults to /tmp/frozen_pkg. Jobs then run
#   cd /tmp && VENV/bin/python DEST/mbf.py run ...
# (mbf.py drops the editable install's import redirect, so `morphbias_fast` is the frozen copy).
set -euo pipefail
venv="$1"; dest="${2:-/tmp/frozen_pkg}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
so=$(ls "$venv"/lib/python3*/site-packages/morphbias_fast/_C.*.so)
rm -rf "$dest" && mkdir -p "$dest"
git -C "$repo" archive HEAD morphbias_fast | tar -x -C "$dest"
ln -sf "$so" "$dest/morphbias_fast/"
cat > "$dest/mbf.py" <<PY
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "ScikitBuildRedirectingFinder"]
sys.path.insert(0, "$dest")
from morphbias_fast.launcher import main
sys.exit(main())
PY
echo "frozen at $(git -C "$repo" rev-parse --short HEAD) in $dest"
