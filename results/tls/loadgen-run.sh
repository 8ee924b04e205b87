#!/usr/bin/env bash
# The load generator's TLS measurements (issue 7): the same chat workload plain and over TLS (alternated, so a
# noisy neighbour hits both), a rate ladder, reconnect storms over TLS with and without resumption, and
# handshake latency. Release build; every run writes loadgen-NAME.json and loadgen-NAME.txt here.
# Usage: results/tls/loadgen-run.sh [NAME...]   (default: every run, in the order below)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/tls
cargo build --release -p ringline -p ringline-loadgen
bin=./target/release/ringline-loadgen
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)'), $(nproc) cores," \
    "$(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), started $(date -u +%FT%TZ)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/loadgen-machine.txt"

chat=(--spawn-engine --connections 2000 --scenario chat --duration 20)
storm=(--spawn-engine --connections 2000 --scenario reconnect-storm --rate 1000 --duration 20)
storm10k=(--spawn-engine --connections 10000 --ramp 2000 --scenario reconnect-storm --storm-share 0.5 --rate 1000 --duration 30)
args_of() {
    case "$1" in
        chat-5k-plain-r*) echo "${chat[*]} --rate 5000" ;;
        chat-5k-tls-r*) echo "${chat[*]} --rate 5000 --tls" ;;
        chat-10k-plain) echo "${chat[*]} --rate 10000" ;;
        chat-10k-tls) echo "${chat[*]} --rate 10000 --tls" ;;
        chat-15k-plain) echo "${chat[*]} --rate 15000" ;;
        chat-15k-tls) echo "${chat[*]} --rate 15000 --tls" ;;
        chat-20k-plain) echo "${chat[*]} --rate 20000" ;;
        chat-20k-tls) echo "${chat[*]} --rate 20000 --tls" ;;
        storm-tls) echo "${storm[*]} --storm-share 0.5 --tls" ;;
        storm-tls-no-resumption) echo "${storm[*]} --storm-share 0.5 --tls --tls-no-resumption" ;;
        storm-plain) echo "${storm[*]} --storm-share 0.5" ;;
        storm10pct-tls) echo "${storm[*]} --storm-share 0.1 --tls" ;;
        storm10pct-tls-no-resumption) echo "${storm[*]} --storm-share 0.1 --tls --tls-no-resumption" ;;
        storm10k-tls) echo "${storm10k[*]} --tls" ;;
        storm10k-tls-no-resumption) echo "${storm10k[*]} --tls --tls-no-resumption" ;;
        storm10k-plain) echo "${storm10k[*]}" ;;
        *) echo "unknown run $1" >&2; exit 2 ;;
    esac
}
all=(chat-5k-plain-r1 chat-5k-tls-r1 chat-5k-plain-r2 chat-5k-tls-r2 chat-10k-plain chat-10k-tls chat-15k-plain
    chat-15k-tls chat-20k-plain chat-20k-tls storm-tls storm-tls-no-resumption storm-plain storm10pct-tls
    storm10pct-tls-no-resumption storm10k-tls
    storm10k-tls-no-resumption storm10k-plain)
for name in "${@:-${all[@]}}"; do
    read -r -a args <<< "$(args_of "$name")"
    echo "== $name: ringline-loadgen run ${args[*]} --report $out/loadgen-$name.json" | tee -a "$out/loadgen-commands.txt"
    "$bin" run "${args[@]}" --report "$out/loadgen-$name.json" > "$out/loadgen-$name.txt" 2>&1 || true
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/loadgen-$name.txt"
done
