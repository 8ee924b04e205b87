#!/usr/bin/env bash
# The same 100,000-connection chat run with kernel.sched_autogroup_enabled 1, 0, 1, 0 (put back as found at
# the end). Usage, from the repository root after cargo build --release: results/capacity/autogroup/run.sh OUT_DIR
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR}
key=/proc/sys/kernel/sched_autogroup_enabled
[ -w "$key" ] || { echo "run.sh: needs root and a kernel with autogroup ($key)" >&2; exit 2; }
mkdir -p "$out"
before=$(cat "$key")
trap 'echo "$before" > "$key"' EXIT
args=(--spawn-engine --connections 100000 --scenario chat --rate "${RATE:-2000}" --ramp 10000 --duration 20)
{
  echo "commit $(git rev-parse HEAD)"; echo "host $(hostname), $(nproc) cores, $(uname -r)"
  echo "command: ringline-loadgen run ${args[*]} --report <step>.json"
} > "$out/environment.txt"
step=0
for value in 1 0 1 0; do
  step=$((step + 1))
  echo "$value" > "$key"
  name="$step-autogroup-$value"
  ./target/release/ringline-loadgen run "${args[@]}" --report "$out/$name.json" > "$out/$name.txt" 2>&1 || true
  echo "$name: $(grep -E '^latency ack' "$out/$name.txt")"
done
