#!/usr/bin/env bash
# A sequential job queue for long studies on a small machine (one torch-heavy job at a time).
# Usage: cd QUEUE_DIR && nohup bash queue.sh > queue.out 2>&1 &
# Each line of QUEUE_DIR/queue.txt is one bash command (blank lines and # comments skipped), run once, in order.
# queue.log records "START n time command" and "EXIT n status time"; a line started but never exited (the
# machine stopped) is run again, so commands should resume (`morphbias-fast run` does). Lines not yet started
# may be edited, added or reordered while the queue runs: the file is read again before each job.
cd "${QUEUE_DIR:-$PWD}"
touch queue.log
while true; do
  n=0; next=""
  while IFS= read -r line; do
    n=$((n+1)); [ -z "$line" ] && continue; [[ "$line" == \#* ]] && continue
    grep -q "^EXIT $n " queue.log && continue
    next="$line"; break
  done < queue.txt
  [ -z "$next" ] && { echo "queue empty $(date)" >> queue.log; break; }
  echo "START $n $(date +%s) $next" >> queue.log
  echo "$n" > current_job
  bash -c "$next" > "job_$n.log" 2>&1
  echo "EXIT $n $? $(date +%s)" >> queue.log
done
