#!/usr/bin/env bash
# TLS capacity figures on this machine, each from a fresh engine:
#   1. heap bytes of one idle TLS session (tls_session_bytes: counting allocator, in process);
#   2. engine RSS per idle logged-in connection, plain against TLS (idle_hold), ROUNDS rounds alternating;
#   3. handshakes per second and engine CPU per handshake: plain connect/close (baseline), full and resumed
#      TLS, each also with a login (HELLO/WELCOME), ROUNDS rounds (tls_handshakes).
# Writes every raw line to OUT_DIR (host.txt, session-bytes.txt, memory.txt, handshakes.txt, engine logs).
#
#   results/tls/measure.sh OUT_DIR [CONNECTIONS] [HANDSHAKES]
# Build first: cargo build --release -p ringline -p ringline-benches
set -euo pipefail
out=${1:?usage: measure.sh OUT_DIR [CONNECTIONS] [HANDSHAKES]}
connections=${2:-10000}
handshakes=${3:-20000}
rounds=${ROUNDS:-3}
bin=${BIN:-./target/release}
mkdir -p "$out"
work=$(mktemp -d /tmp/ringline-tls-measure.XXXXXX)
pid=
stop_engine() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop_engine; rm -rf "$work"' EXIT

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD) $(git status --porcelain | grep -q . && echo '(dirty)' || true)"
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo "memory: $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"
  echo "nofile: $(ulimit -n)"
  echo "tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
} > "$out/host.txt"
cat "$out/host.txt"

"$bin/ringline" users provision --data-dir "$work/data" --count "$connections" --keys-out "$work/keys.txt" > /dev/null
"$bin/ringline" tls dev-cert --out-dir "$work/cert" > "$out/dev-cert.txt"

# Starts an engine on both ports (2 cores); sets pid, plain, tls.
start_engine() {
  local log=$1
  RINGLINE_LOG=warn "$bin/ringline" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
    --tls-cert "$work/cert/cert.pem" --tls-key "$work/cert/key.pem" --data-dir "$work/data" \
    > "$work/stdout" 2>> "$log" &
  pid=$!
  for _ in $(seq 1 100); do
    grep -q "tls listening on" "$work/stdout" 2>/dev/null && break
    sleep 0.1
  done
  plain=$(sed -n 's/^ringline listening on \([^ ]*\) .*/\1/p' "$work/stdout")
  tls=$(sed -n 's/^ringline tls listening on //p' "$work/stdout")
  sleep 2
}

echo "== heap bytes of an idle TLS session" | tee "$out/session-bytes.txt"
"$bin/tls_session_bytes" --count 2000 | tee -a "$out/session-bytes.txt"

echo "== engine RSS per idle logged-in connection ($connections connections)" | tee "$out/memory.txt"
for round in $(seq 1 "$rounds"); do
  for kind in plain tls; do
    start_engine "$out/engine-memory.log"
    if [ "$kind" = tls ]; then
      args=(--target "$tls" --ca "$work/cert/cert.pem")
    else
      args=(--target "$plain")
    fi
    echo -n "round $round load $(cut -d' ' -f1 /proc/loadavg) " | tee -a "$out/memory.txt"
    "$bin/idle_hold" "${args[@]}" --users "$work/keys.txt" --count "$connections" --engine-pid "$pid" \
      2> "$out/memory-samples-$kind-$round.txt" | tee -a "$out/memory.txt"
    stop_engine
  done
done

echo "== handshakes ($handshakes connections a run, 64 in flight, one client thread)" | tee "$out/handshakes.txt"
for round in $(seq 1 "$rounds"); do
  start_engine "$out/engine-handshakes.log"
  for run in "plain $plain" "full $tls" "resumed $tls"; do
    set -- $run
    for login in "" "--users $work/keys.txt"; do
      echo -n "round $round load $(cut -d' ' -f1 /proc/loadavg) " | tee -a "$out/handshakes.txt"
      # shellcheck disable=SC2086
      "$bin/tls_handshakes" --target "$2" --ca "$work/cert/cert.pem" --mode "$1" --count "$handshakes" \
        --in-flight 64 --engine-pid "$pid" $login 2>> "$out/handshakes-warmup.txt" | tee -a "$out/handshakes.txt"
    done
  done
  stop_engine
done
