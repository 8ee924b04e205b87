#!/usr/bin/env bash
# The long form after the replay fix (branch h/wal merged): 8 runs x 15 kills, 200 pairs, >= 140,000 ACKed per
# run, segment sizes drawn by seed (16 KiB to 8 MiB). Run from the repository root. (CARGO_TARGET_DIR only
# kept this build apart from the "before" binaries while both existed.)
set -euo pipefail
RINGLINE_TORTURE_SEED=172001 RINGLINE_TORTURE_RUNS=8 \
RINGLINE_TORTURE_PAIRS=200 RINGLINE_TORTURE_KILLS=15 RINGLINE_TORTURE_ACKED=140000 \
CARGO_TARGET_DIR=target/after \
  cargo test --release -p ringline --test crash_torture -- --ignored --nocapture long_form
