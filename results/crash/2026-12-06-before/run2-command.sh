#!/usr/bin/env bash
# The second "before" run: the same test binary (built at b532c68, engine as of 73dc840, before the fixes), run
# directly so that cargo does not rebuild it, with 8 MiB segments (many groups per segment for replay to read),
# stopping after the first run that loses an ACKed message. Run from the repository root.
set -euo pipefail
RINGLINE_TORTURE_SEED=171001 RINGLINE_TORTURE_RUNS=8 RINGLINE_TORTURE_UNTIL_LOST=true \
RINGLINE_TORTURE_PAIRS=200 RINGLINE_TORTURE_KILLS=15 RINGLINE_TORTURE_ACKED=140000 \
RINGLINE_TORTURE_SEGMENT_BYTES=8388608 \
  target/release/deps/crash_torture-878eb0528ed732ac --ignored --nocapture long_form
