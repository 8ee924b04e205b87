#!/usr/bin/env bash
# The load generator's TLS measurements (issue 7): the same chat workload plain and over TLS, alternated so
# that a noisy neighbour hits both, a reconnect storm over TLS, and handshake latency. Release build.
# Usage: results/tls/loadgen-run.sh [OUT_DIR]   (default: results/tls)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-results/tls}"
mkdir -p "$out"
cargo build --release -p ringline -p ringline-loadgen
bin=./target/release/ringline-loadgen
{
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
    echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
    echo "started $(date -u +%FT%TZ)"
} > "$out/loadgen-machine.txt"

run() { # name, then loadgen args
    local name="$1"; shift
    echo "== $name: $bin run $*" | tee -a "$out/loadgen-commands.txt"
    "$bin" run "$@" --report "$out/loadgen-$name.json" > "$out/loadgen-$name.txt" 2>&1 || true
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/loadgen-$name.txt"
    tail -n 25 "$out/loadgen-$name.txt"
}

chat=(--spawn-engine --connections 2000 --scenario chat --duration 20)
for round in 1 2; do
    run "chat-5k-plain-r$round" "${chat[@]}" --rate 5000
    run "chat-5k-tls-r$round" "${chat[@]}" --rate 5000 --tls
done
run chat-20k-plain "${chat[@]}" --rate 20000
run chat-20k-tls "${chat[@]}" --rate 20000 --tls
storm=(--spawn-engine --connections 2000 --scenario reconnect-storm --storm-share 0.5 --rate 1000 --duration 20)
run storm-tls "${storm[@]}" --tls
run storm-plain "${storm[@]}"
echo "finished $(date -u +%FT%TZ)" >> "$out/loadgen-machine.txt"
