#!/usr/bin/env bash
# Capacity sweeps on one box (issue 8, "Find the limits"):
#   1. message rate with 100,000 connected, open loop, up the ladder: where does p99 pass 10 ms?
#   2. idle connections from 100,000 up: what each one costs (engine, kernel, load generator) and the CPU it takes.
# Each step is one `ringline-loadgen run --spawn-engine` with its JSON report kept; sweep.tsv, sweep.md and two SVG
# plots (gnuplot) summarize them. Run from the repository root after `cargo build --release`:
#   results/capacity/sweep.sh [OUT_DIR] [RATES] [CONNECTION_COUNTS]
# Defaults: OUT_DIR results/capacity/sweep-<host>-<UTC time>, RATES "5000 10000 20000 30000 40000 50000",
# CONNECTION_COUNTS "100000 250000 500000 750000". Tune the host first (ringline-tune apply --profile loopback-million).
set -euo pipefail
cd "$(dirname "$0")/../.."
loadgen=./target/release/ringline-loadgen
[ -x "$loadgen" ] || { echo "sweep: build first: cargo build --release" >&2; exit 2; }
command -v gnuplot >/dev/null || apt-get install -y gnuplot-nox >/dev/null || { echo "sweep: gnuplot is needed" >&2; exit 2; }
out=${1:-results/capacity/sweep-$(hostname)-$(date -u +%Y%m%dT%H%M%SZ)}
rates=${2:-5000 10000 20000 30000 40000 50000}
counts=${3:-100000 250000 500000 750000}
mkdir -p "$out"
out=$(cd "$out" && pwd)
git rev-parse --short HEAD > "$out/commit.txt"
{ uname -a; nproc; free -b | head -2; } > "$out/machine.txt"

# Steps whose verdict is FAIL are kept: where a ladder breaks is the finding.
run_step() { # name, args...
  local name=$1; shift
  echo "== $name: $*"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  "$loadgen" run --spawn-engine "$@" --report "$out/$name.json" > "$out/$name.txt" 2>&1 || true
  tail -n 3 "$out/$name.txt"
}

for rate in $rates; do
  run_step "rate-$rate" --connections 100000 --scenario chat --rate "$rate" --ramp 10000 --duration 20
done
for count in $counts; do
  run_step "conns-$count" --connections "$count" --scenario idle --ramp 5000 --duration 20 --ping-interval 120 \
    --connect-timeout-ms 30000 --engine-arg=--handshake-timeout --engine-arg=30s
done

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
steps = sorted((n[:-5] for n in os.listdir(out) if n.endswith(".json")),
               key=lambda n: (n.split("-")[0], int(n.split("-")[1])))
rate_rows, conn_rows = [], []
for name in steps:
    d = load(name)
    if d is None:
        continue
    busy = d.get("cpu_busy_per_core") or []
    busy = sum(busy) / len(busy) if busy else 0.0
    run_s = d.get("run_seconds") or 1.0
    clean = d["lost"] == 0 and d["duplicated"] == 0 and d["reordered"] == 0 and d["connections_peak"] >= d["connections_target"]
    if name.startswith("rate-"):
        rate_rows.append((int(name[5:]), d["throughput_msgs_per_s"], d["latency_ack_us"]["p50"] / 1e3,
                          d["latency_ack_us"]["p99"] / 1e3, d["latency_delivery_us"]["p99"] / 1e3, busy,
                          d["server_cpu_seconds"] / run_s, d["loadgen_cpu_seconds"] / run_s, clean))
    else:
        conn_rows.append((int(name[6:]), d["connections_peak"], d["ramp_seconds"] or 0.0,
                          d["server_rss_per_connection_bytes"], d["host_slab_per_connection_bytes"],
                          d["loadgen_rss_peak_bytes"] / max(d["connections_peak"], 1), busy, clean))
with open(os.path.join(out, "rate.tsv"), "w") as f:
    for row in rate_rows:
        f.write("\t".join(str(x) for x in row[:-1]) + "\n")
with open(os.path.join(out, "conns.tsv"), "w") as f:
    for row in conn_rows:
        f.write("\t".join(str(x) for x in row[:-1]) + "\n")
with open(os.path.join(out, "sweep.md"), "w") as f:
    f.write("## Message rate, 100,000 connected\n\n| asked msgs/s | delivered msgs/s | ACK p50 ms | ACK p99 ms | delivery p99 ms "
            "| CPU busy (mean of cores) | engine cores used | loadgen cores used | ledger clean |\n|---|---|---|---|---|---|---|---|---|\n")
    for r in rate_rows:
        f.write(f"| {r[0]:,} | {r[1]:,.0f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.0%} | {r[6]:.2f} | {r[7]:.2f} | {'yes' if r[8] else 'NO'} |\n")
    f.write("\n## Idle connections\n\n| asked | peak up | ramp s | engine B/conn | kernel slab B/conn (pair) | loadgen B/conn "
            "| CPU busy in hold | clean |\n|---|---|---|---|---|---|---|---|\n")
    for c in conn_rows:
        f.write(f"| {c[0]:,} | {c[1]:,} | {c[2]:.1f} | {c[3]:,.0f} | {c[4]:,.0f} | {c[5]:,.0f} | {c[6]:.0%} | {'yes' if c[7] else 'NO'} |\n")
PY

gnuplot <<GP
set terminal svg size 800,450 dynamic background rgb 'white'
set datafile separator "\t"
set grid
set output "$out/rate.svg"
set title "ringline, 100,000 connected: ACK latency by offered rate (2-core box, engine and loadgen together)"
set xlabel "offered msgs/s"
set ylabel "ms"
set logscale y
plot "$out/rate.tsv" using 1:4 with linespoints title "ACK p99", \
     "$out/rate.tsv" using 1:3 with linespoints title "ACK p50", \
     10 with lines dashtype 2 title "10 ms target"
unset logscale y
set output "$out/conns.svg"
set title "ringline: bytes per idle connection by connections held"
set xlabel "connections"
set ylabel "bytes per connection"
plot "$out/conns.tsv" using 1:4 with linespoints title "engine user space", \
     "$out/conns.tsv" using 1:5 with linespoints title "kernel slab (both ends)", \
     "$out/conns.tsv" using 1:6 with linespoints title "load generator user space"
GP
echo "sweep: $out/sweep.md, rate.svg, conns.svg"
cat "$out/sweep.md"
