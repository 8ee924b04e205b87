#!/usr/bin/env bash
#   results/memory/chat_cpu.sh ENGINE_BIN LOADGEN_BIN
# Engine CPU seconds (user+system) spent serving one chat run: 2,000 connections, 10,000 msgs/s, 10 s.
set -euo pipefail
engine=$1; loadgen=$2
data=$(mktemp -d /tmp/ringline-cpu.XXXXXX)
"$engine" users provision --data-dir "$data" --count 2000 --keys-out "$data/keys.txt" > /dev/null
RINGLINE_LOG=warn "$engine" serve --listen 127.0.0.1:0 --data-dir "$data" > "$data/stdout" 2> /dev/null &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$data/stdout" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^ringline listening on \([^ ]*\) .*/\1/p' "$data/stdout")
before=$(awk '{print $14 + $15}' /proc/$pid/stat)
"$loadgen" run --target "$addr" --users "$data/keys.txt" --connections 2000 --scenario chat --rate 10000 --duration 10 2>&1 | grep -E "^messages|latency ack" | sed 's/^/  /'
after=$(awk '{print $14 + $15}' /proc/$pid/stat)
echo "  engine cpu: $(( (after - before) )) ticks ($(getconf CLK_TCK)/s)"
kill -TERM $pid; wait $pid || true; rm -rf "$data"
