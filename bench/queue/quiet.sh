#!/usr/bin/env bash
# QUEUE_DIR=DIR bash quiet.sh CMD...: run CMD on a quiet machine. Waits until the queue's job is out of its
# register stage, pauses the queue's job with every process under it (SIGSTOP), runs CMD, resumes them. For
# tests and timed benchmarks beside a long study.
here="$(dirname "$0")"
while bash "$here/in_register.sh"; do sleep 20; done
tree() { local p; for p in $(pgrep -P "$1"); do echo "$p"; tree "$p"; done; }
# The job is every process under queue.sh's shell, found by descent rather than by its command's text: a
# command line need not name the package (a frozen copy runs as `python .../mbf.py run ...`).
pids=""
for q in $(pgrep -f "bash queue.sh"); do pids="$pids $(tree "$q" | tr '\n' ' ')"; done
pids=$(echo $pids)
[ -n "$pids" ] && kill -STOP $pids
trap '[ -n "$pids" ] && kill -CONT $pids' EXIT
"$@"
