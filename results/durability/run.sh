#!/usr/bin/env bash
# Durability benchmark: ACK latency and throughput per --durability level, with the loadgen.
# Usage: results/durability/run.sh LABEL RATE SCENARIO [ENGINE_BIN] [--engine-arg=... ...]
# Writes results/durability/LABEL.json (loadgen report), LABEL.txt (loadgen output) and
# LABEL.engine.log (the engine's log, with each core's "log summary" line at stop).
set -euo pipefail
label=$1 rate=$2 scenario=$3 bin=$4
shift 4
out=results/durability
data=/tmp/ringline-durability-$label
rm -rf "$data"
./target/release/ringline-loadgen run --spawn-engine --engine-bin "$bin" --data-dir "$data" \
  --connections 2000 --scenario "$scenario" --rate "$rate" --duration 10 --offline-share 0.3 \
  "$@" --report "$out/$label.json" > "$out/$label.txt" 2>&1
cp "$data/engine-0.log" "$out/$label.engine.log"
rm -rf "$data"
grep -E "^(messages|ledger|latency|verdict)" "$out/$label.txt"
