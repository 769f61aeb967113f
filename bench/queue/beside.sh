#!/usr/bin/env bash
# QUEUE_DIR=DIR bash beside.sh CMD...: run a light CMD beside the queue's job on one thread, pausing CMD (and
# everything under it) while the job is in its register stage. Register trains to a time budget, so a
# neighbour there would change the study's result; elsewhere a neighbour only slows the study down. CMD must
# not itself train to a time budget (its own pauses would change its result).
here="$(dirname "$0")"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1
tree() { local p; for p in $(pgrep -P "$1"); do echo "$p"; tree "$p"; done; }
"$@" &
pid=$!
trap 'kill -CONT $pid $(tree $pid) 2>/dev/null' EXIT
paused=0
while kill -0 "$pid" 2>/dev/null; do
  if bash "$here/in_register.sh"; then
    [ $paused = 0 ] && { kill -STOP $pid $(tree $pid) 2>/dev/null; paused=1; }
  else
    [ $paused = 1 ] && { kill -CONT $pid $(tree $pid) 2>/dev/null; paused=0; }
  fi
  sleep 2
done
wait "$pid"
