#!/usr/bin/env bash
# Memory per idle authenticated connection and chat throughput of one engine build, with ringline-loadgen.
#
#   results/memory/measure.sh OUT_DIR [ENGINE_BIN] [LOADGEN_BIN]
#
# Idle: 19,000 connections log in and stay idle for 10 s; the report's server_rss_per_connection_bytes is
# (engine RSS at the connection plateau - engine RSS before any connection) / connections at the plateau.
# Chat: 2,000 connections at 10,000 messages/s for 10 s; the report has msgs/s and latency percentiles.
# Each is run RUNS times (default 3), one engine process per run.
# Set ENGINE_COMMIT to record which commit ENGINE_BIN was built from (default: this work tree's HEAD).
set -euo pipefail
out=${1:?usage: measure.sh OUT_DIR [ENGINE_BIN] [LOADGEN_BIN]}
engine=${2:-./target/release/ringline}
loadgen=${3:-./target/release/ringline-loadgen}
runs=${RUNS:-3}
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "engine commit: ${ENGINE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  echo "engine: $engine (sha256 $(sha256sum "$engine" | cut -c1-16))"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "nofile: $(ulimit -n)"
  echo "memlock_kib: $(ulimit -l)"
} > "$out/host.txt"
for run in $(seq 1 "$runs"); do
  "$loadgen" run --spawn-engine --engine-bin "$engine" --connections 19000 --scenario idle --duration 10 \
    --report "$out/idle-$run.json" > "$out/idle-$run.txt" 2>&1
  "$loadgen" run --spawn-engine --engine-bin "$engine" --connections 2000 --scenario chat --rate 10000 \
    --duration 10 --report "$out/chat-$run.json" > "$out/chat-$run.txt" 2>&1
done
cat "$out/host.txt"
for run in $(seq 1 "$runs"); do
  echo "run $run"
  grep -h 'server rss\|^connections' "$out/idle-$run.txt" | sed 's/^/  idle  /'
  grep -h '^messages\|latency ack\|latency deliver\|verdict' "$out/chat-$run.txt" | sed 's/^/  chat  /'
done
