#!/usr/bin/env bash
# Why the engine prefers AES-128-GCM: engine CPU per handshake when the client offers only AES-128-GCM
# (SHA-256 key schedule) against only AES-256-GCM (SHA-384, what rustls clients list first), full and
# resumed, ROUNDS rounds alternating; then a `perf` profile of the engine during a resumed storm with the
# default client (where the engine's time goes). Writes OUT_DIR/suites.txt and OUT_DIR/perf-resumed.txt.
#
#   results/tls/suites.sh OUT_DIR [HANDSHAKES]
set -euo pipefail
out=${1:?usage: suites.sh OUT_DIR [HANDSHAKES]}
handshakes=${2:-20000}
rounds=${ROUNDS:-3}
bin=${BIN:-./target/release}
mkdir -p "$out"
work=$(mktemp -d /tmp/ringline-tls-suites.XXXXXX)
pid=
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/ringline" users provision --data-dir "$work/data" --count 10 --keys-out "$work/keys.txt" > /dev/null
"$bin/ringline" tls dev-cert --out-dir "$work/cert" > /dev/null
RINGLINE_LOG=warn "$bin/ringline" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
  --tls-cert "$work/cert/cert.pem" --tls-key "$work/cert/key.pem" --data-dir "$work/data" > "$work/stdout" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "tls listening on" "$work/stdout" 2>/dev/null && break
  sleep 0.1
done
tls=$(sed -n 's/^ringline tls listening on //p' "$work/stdout")
sleep 2
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, kernel $(uname -r)" | tee "$out/suites.txt"
for round in $(seq 1 "$rounds"); do
  for mode in full resumed; do
    for suite in aes128 aes256; do
      echo -n "round $round load $(cut -d' ' -f1 /proc/loadavg) suite=$suite " | tee -a "$out/suites.txt"
      "$bin/tls_handshakes" --target "$tls" --ca "$work/cert/cert.pem" --mode "$mode" --suite "$suite" \
        --count "$handshakes" --in-flight 64 --engine-pid "$pid" 2> /dev/null | tee -a "$out/suites.txt"
    done
  done
done
if command -v perf > /dev/null; then
  "$bin/tls_handshakes" --target "$tls" --ca "$work/cert/cert.pem" --mode resumed --count 100000 \
    --in-flight 64 --engine-pid "$pid" > "$work/storm.txt" 2> /dev/null &
  storm=$!
  sleep 2
  perf record -F 2000 -g -p "$pid" -o "$work/perf.data" -- sleep 5 2> /dev/null
  wait "$storm" || true
  {
    echo "perf record -F 2000 -g -p ENGINE -- sleep 5, during: $(cat "$work/storm.txt")"
    echo "== by object"
    perf report -i "$work/perf.data" --no-children --sort dso --stdio 2> /dev/null | grep -E '^ +[0-9]'
    echo "== top symbols"
    perf report -i "$work/perf.data" --no-children --sort sym --stdio 2> /dev/null | grep -E '^ +[0-9]' | head -25
  } > "$out/perf-resumed.txt"
  cat "$out/perf-resumed.txt"
fi
