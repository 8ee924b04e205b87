#!/bin/sh
# usage: run_flood.sh ENGINE_BINARY PORT OUT_DIR IDLE_SECONDS [extra serve flags]
set -e
engine=$1; port=$2; out=$3; idle=$4; shift 4
mkdir -p "$out"; data=$(mktemp -d /tmp/flood-data.XXXX)
"$engine" users provision --data-dir "$data" --count 3000 --keys-out "$data/users.keys" > /dev/null
"$engine" serve --listen 127.0.0.1:$port --data-dir "$data" "$@" > "$out/engine.log" 2>&1 &
pid=$!
sleep 1
./target/release/memory_flood --target 127.0.0.1:$port --users "$data/users.keys" --engine-pid $pid \
    --messages 2500000 --window 1024 --stalled 1000 --idle-seconds "$idle" > "$out/driver.txt" 2>&1 || echo "driver failed: $?" >> "$out/driver.txt"
grep -E "VmRSS|VmHWM" /proc/$pid/status >> "$out/driver.txt"
kill $pid; wait $pid || true
rm -rf "$data"
