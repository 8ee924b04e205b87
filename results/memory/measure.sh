#!/usr/bin/env bash
# Memory per idle authenticated connection and chat throughput of one engine build, with ringline-loadgen.
#
#   results/memory/measure.sh OUT_DIR [ENGINE_BIN] [LOADGEN_BIN]
#
# Idle: 19,000 connections log in and sit idle for 10 s; the report's server_rss_per_connection_bytes is
# (engine RSS at the connection plateau - engine RSS before any connection) / connections.
# Chat: 2,000 connections at 10,000 messages/s for 10 s; the report has msgs/s and latency percentiles.
# Set ENGINE_COMMIT to record which commit ENGINE_BIN was built from (default: this work tree's HEAD).
set -euo pipefail
out=${1:?usage: measure.sh OUT_DIR [ENGINE_BIN] [LOADGEN_BIN]}
engine=${2:-./target/release/ringline}
loadgen=${3:-./target/release/ringline-loadgen}
mkdir -p "$out"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "engine commit: ${ENGINE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
  echo "engine: $engine ($(sha256sum "$engine" | cut -c1-16))"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc)"
  echo "nofile: $(ulimit -n)"
  echo "memlock_kib: $(ulimit -l)"
} > "$out/host.txt"
"$loadgen" run --spawn-engine --engine-bin "$engine" --connections 19000 --scenario idle --duration 10 \
  --report "$out/idle.json" > "$out/idle.txt" 2>&1
"$loadgen" run --spawn-engine --engine-bin "$engine" --connections 2000 --scenario chat --rate 10000 \
  --duration 10 --report "$out/chat.json" > "$out/chat.txt" 2>&1
cat "$out/host.txt"
grep -E '"server_rss' "$out/idle.json" || true
cat "$out/chat.txt" | tail -20
