#!/usr/bin/env bash
# Runs each ringline-benches target in turn (`cargo bench -p ringline-benches --bench NAME`), first waiting up to
# 10 minutes for no engine or load generator process to run (other sessions share the box), and records the load:
#   results/bench-capacity/run.sh OUT_DIR
# writes OUT_DIR/NAME.txt (criterion's stdout), NAME.err, load.txt, procs-NAME.txt (every 5 s), vmstat-NAME.txt.
set -u
out=$1; mkdir -p "$out"
cd "$(dirname "$0")/../.."
for bench in codec mesh home_core offline_queue wal; do
  for i in $(seq 1 120); do
    n=$(( $(pgrep -c -x ringline) + $(pgrep -c -f '^[^ ]*ringline-loadgen') ))
    [ "$n" = 0 ] && break
    sleep 5
  done
  { echo "== $bench start $(date -u +%T) waited $((i*5-5))s engines+loadgens=$n"; uptime; } >> "$out/load.txt"
  vmstat 5 > "$out/vmstat-$bench.txt" & vm=$!
  ( while sleep 5; do echo "$(date -u +%T) $(pgrep -c -x ringline) engines, $(pgrep -c -f '^[^ ]*ringline-loadgen') loadgens, $(cut -d' ' -f1-3 /proc/loadavg)"; done ) > "$out/procs-$bench.txt" & pr=$!
  cargo bench -p ringline-benches --bench "$bench" > "$out/$bench.txt" 2> "$out/$bench.err"
  kill "$vm" "$pr"
  { echo "== $bench end $(date -u +%T)"; uptime; } >> "$out/load.txt"
done
echo done >> "$out/load.txt"
