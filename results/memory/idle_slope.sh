#!/usr/bin/env bash
# Marginal memory per idle authenticated connection: starts one engine, lets ringline-loadgen log in N idle
# connections against it at 1,000 a second (--target, so this script owns the engine process), and samples
# the engine's VmRSS and its socket count every half second. Prints and writes to OUT_DIR/slope.txt:
#   - the least-squares slope of RSS over sockets during the ramp (bytes per added connection: one-time
#     start-up costs such as first-touch of per-core buffers and allocator arenas do not count), and
#   - (median RSS at the plateau - RSS before the first connection) / sockets at the plateau, the figure the
#     loadgen report gives, but with the "before" sampled after 2 s of warm-up instead of at first accept.
#
#   results/memory/idle_slope.sh OUT_DIR [ENGINE_BIN] [LOADGEN_BIN] [CONNECTIONS]
set -euo pipefail
out=${1:?usage: idle_slope.sh OUT_DIR [ENGINE_BIN] [LOADGEN_BIN] [CONNECTIONS]}
engine=${2:-./target/release/ringline}
loadgen=${3:-./target/release/ringline-loadgen}
connections=${4:-19000}
mkdir -p "$out"
data=$(mktemp -d /tmp/ringline-slope.XXXXXX)
"$engine" users provision --data-dir "$data" --count "$connections" --keys-out "$data/keys.txt" > /dev/null
RINGLINE_LOG=warn "$engine" serve --listen 127.0.0.1:0 --data-dir "$data" > "$data/stdout" 2> "$out/engine.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$data/stdout" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^ringline listening on \([^ ]*\) .*/\1/p' "$data/stdout")
sample() {
  local rss sockets
  rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$pid/status")
  # find fails when a descriptor closes while it looks: that is not an error here.
  sockets=$( (find "/proc/$pid/fd" -lname 'socket:*' 2> /dev/null || true) | wc -l)
  echo "$(date +%s.%N) $sockets $rss"
}
sleep 2
sample > "$out/samples.txt"
"$loadgen" run --target "$addr" --users "$data/keys.txt" --connections "$connections" --scenario idle \
  --ramp 1000 --duration 15 --report "$out/loadgen.json" > "$out/loadgen.txt" 2>&1 &
loadgen_pid=$!
while kill -0 "$loadgen_pid" 2> /dev/null; do
  sample >> "$out/samples.txt"
  sleep 0.5
done
wait "$loadgen_pid" || true
python3 - "$out/samples.txt" "$connections" <<'PY' | tee "$out/slope.txt"
import sys
rows = [tuple(float(x) for x in line.split()) for line in open(sys.argv[1]) if line.strip()]
target = int(sys.argv[2])
_, sockets0, rss0 = rows[0]
ramp = [(s, r) for _, s, r in rows[1:] if target * 0.1 <= s - sockets0 <= target * 0.95]
n = len(ramp)
mx = sum(s for s, _ in ramp) / n
my = sum(r for _, r in ramp) / n
slope = sum((s - mx) * (r - my) for s, r in ramp) / sum((s - mx) ** 2 for s, _ in ramp)
plateau = [(s, r) for _, s, r in rows if s - sockets0 >= target * 0.99]
print(f"samples during the ramp: {n}")
print(f"slope: {slope:.0f} bytes of RSS per added connection")
if plateau:
    # The median sample of the plateau: RSS moves by a few MiB as the allocator returns memory.
    s, r = sorted(plateau, key=lambda p: p[1])[len(plateau) // 2]
    held = s - sockets0
    print(f"plateau: {held:.0f} sockets, RSS {r / 2**20:.1f} MiB (median of {len(plateau)} samples), "
          f"before {rss0 / 2**20:.1f} MiB: {(r - rss0) / held:.0f} bytes per connection")
PY
