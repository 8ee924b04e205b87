#!/usr/bin/env bash
# The first "before" run (64 KiB segments, the default at b532c68): the torture's long form on the code before the fixes (engine as of 73dc840), stopping after
# the first run that loses an ACKed message. Run from the repository root.
set -euo pipefail
RINGLINE_TORTURE_SEED=170001 RINGLINE_TORTURE_RUNS=8 RINGLINE_TORTURE_UNTIL_LOST=true \
RINGLINE_TORTURE_PAIRS=200 RINGLINE_TORTURE_KILLS=15 RINGLINE_TORTURE_ACKED=140000 RINGLINE_TORTURE_SEGMENT_BYTES=65536 \
  cargo test --release -p ringline --test crash_torture -- --ignored --nocapture long_form
