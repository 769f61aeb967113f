# Sourced by the *_line.sh scripts. `links SRC DST STAGE...` prints the commands that make DST and link each
# STAGE folder of the run folder SRC into it (a stage reused from another run of the same seed, not retrained).
links() {
  local src=$1 dst=$2 s out; shift 2
  out="mkdir -p $dst"
  for s in "$@"; do out="$out && ln -sfn $src/$s $dst/$s"; done
  echo "$out"
}
