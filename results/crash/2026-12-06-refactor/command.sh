#!/usr/bin/env bash
# The long form on main after the issue-18 refactor (ringline-core, poll_output and driver/, shared connection loop):
# 8 runs x 15 kills, 200 pairs, >= 140,000 ACKed per run, segment sizes drawn by seed (16 KiB to 8 MiB).
# Run from the repository root.
set -euo pipefail
RINGLINE_TORTURE_SEED=172001 RINGLINE_TORTURE_RUNS=8 \
RINGLINE_TORTURE_PAIRS=200 RINGLINE_TORTURE_KILLS=15 RINGLINE_TORTURE_ACKED=140000 \
  cargo test --release -p ringline --test crash_torture -- --ignored --nocapture long_form
