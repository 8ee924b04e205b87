#!/bin/bash
# The --io-coalesce A/B of results/engine/README.md ("Wake-up coalescing"): each rate with the window off (0s)
# and at the default (1ms), one run each, 100,000 connections over 6 engines and 6 agents, --durability sync.
# Run from the repository root after `cargo build --release`; writes next to this script.
set -u
out=$(dirname "$0")
for rate in 5000 10000 20000; do
  for window in 0s 1ms; do
    ./target/release/ringline-loadgen run --spawn-engine --connections 100000 --scenario chat --rate "$rate" \
      --ramp 10000 --duration 20 --engine-arg=--io-coalesce --engine-arg="$window" \
      --report "$out/rate-$rate-$window.json" > "$out/rate-$rate-$window.txt" 2>&1
  done
done
