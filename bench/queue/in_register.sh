#!/usr/bin/env bash
# Exit 0 while the queue's current job is inside a `register` stage (whose training is time-budgeted, so a
# pause there would change its result). Reads the stage messages `morphbias-fast` prints.
cd "${QUEUE_DIR:-$PWD}"
n=$(cat current_job 2>/dev/null) || exit 1
grep -q "^EXIT $n " queue.log && exit 1
last=$(tr '\r' '\n' < "job_$n.log" | grep -oE "^\[morphbias-fast\] (classify|register|discover|mitigate|unbiased|synth|seed)" | tail -1)
[[ "$last" == *register ]]
