#!/usr/bin/env bash
# QUEUE_DIR=DIR bash quiet.sh CMD...: run CMD on a quiet machine. Waits until the queue's job is out of its
# register stage, pauses every morphbias-fast process (SIGSTOP), runs CMD, resumes them. For tests and timed
# benchmarks beside a long study.
here="$(dirname "$0")"
while bash "$here/in_register.sh"; do sleep 20; done
pids=$(pgrep -f "python.*morphbias" | tr '\n' ' ')
[ -n "$pids" ] && kill -STOP $pids
trap '[ -n "$pids" ] && kill -CONT $pids' EXIT
"$@"
