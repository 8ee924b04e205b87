#!/usr/bin/env bash
set -u
out=$1; bin=${BIN:-target/release}
data=$(mktemp -d /tmp/ops-perf-XXXX); mkdir -p $out
"$bin/ringline-loadgen" run --spawn-engine --data-dir "$data" --connections 20000 --ramp 5000 --scenario chat --rate 5000 --duration 20 > "$out/loadgen.txt" 2>&1 &
lg=$!
sleep 12
pids=$(pgrep -x ringline -P "$lg" | tr '\n' ' ')
p=$(echo $pids | awk '{print $1}')
perf record -g -o $out/perf.data -p $p 2> $out/perf-record.txt &
pr=$!
sleep 0.5
for q in $pids; do kill -TERM $q; done
wait $pr
wait $lg
cp $data/engine-*.log $out/; rm -rf $data
