#!/usr/bin/env python3
"""Whether a chat run meets the side-by-side table's bar: delivery p99 at most P99_MAX_MS, something delivered,
and nothing lost, duplicated or reordered. The one definition of it: summarize.py imports `passes`, and run.sh
runs this file to steer its knee search: chat_verdict.py REPORT.json P99_MAX_MS exits 0 when the run passes."""

import json
import sys


def passes(report, p99_max_ms):
    """`report` is a ringline-loadgen JSON report, as loaded."""
    clean = report["lost"] == 0 and report["duplicated"] == 0 and report["reordered"] == 0
    delivered = report["messages_delivered"] > 0
    return clean and delivered and report["latency_delivery_us"]["p99"] / 1000.0 <= p99_max_ms


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        sys.exit(0 if passes(json.load(f), float(sys.argv[2])) else 1)
