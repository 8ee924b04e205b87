#!/usr/bin/env bash
# Login storm against one engine, with 1, 2 and 3 client threads; a fresh engine per thread count.
# Usage: results/engine/login-storm-threads/run.sh OUT_DIR   (from the repository root, after cargo build --release)
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR}
bin=$(pwd)/target/release
mkdir -p "$out"
work=$(mktemp -d)
trap 'pkill -f "ringline serve --listen 127.0.0.1:7016" || true; rm -rf "$work"' EXIT
"$bin/ringline" users provision --data-dir "$work/d" --count 19000 --keys-out "$work/d.keys" > /dev/null
{
  echo "commit $(git rev-parse HEAD)"; echo "host $(hostname), $(nproc) cores, $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/environment.txt"
for threads in ${THREADS:-1 2 3}; do
  "$bin/ringline" serve --listen 127.0.0.1:7016 --data-dir "$work/d" > "$out/engine-$threads.log" 2>&1 &
  engine=$!
  sleep 1
  command="login_storm --target 127.0.0.1:7016 --users d.keys --count 19000 --in-flight 1024 --rounds 5 --threads $threads"
  echo "\$ $command" > "$out/threads-$threads.txt"
  "$bin/login_storm" --target 127.0.0.1:7016 --users "$work/d.keys" --count 19000 --in-flight 1024 --rounds 5 \
    --threads "$threads" >> "$out/threads-$threads.txt"
  ticks=$(awk '{print $14 + $15}' "/proc/$engine/stat")
  echo "engine CPU over the 5 rounds (95,000 logins and their closes): $(echo "scale=2; $ticks / $(getconf CLK_TCK)" | bc) s" \
    >> "$out/threads-$threads.txt"
  kill -TERM "$engine"; wait "$engine" || true
  cat "$out/threads-$threads.txt"
done
