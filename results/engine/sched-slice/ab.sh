#!/bin/bash
# A/B: default EEVDF slice vs a short custom slice on every engine and agent thread, 100k connected chat.
out=${OUT:-results/engine/sched-slice}; mkdir -p $out
LG=${LOADGEN:-./target/release/ringline-loadgen}   # run from the repository root
one() { # tag slice_ns rate
  tag=$1; slice=$2; rate=$3
  $LG run --spawn-engine --connections 100000 --scenario chat --rate $rate --ramp 10000 --duration 20 --report $out/$tag-r$rate.json > $out/$tag-r$rate.txt 2>&1 &
  lg=$!
  # Both arms set a slice (the default 1.4 ms or the short one), so both pay for the script.
  while kill -0 $lg 2>/dev/null; do python3 results/engine/sched-slice/slice.py $slice "ringline serve" "ringline-loadgen agent" > /dev/null; sleep 2; done
  wait $lg
  echo "$tag rate $rate: $(grep -E 'latency ack' $out/$tag-r$rate.txt) | $(grep verdict $out/$tag-r$rate.txt)"
}
for round in 1 2; do
  for rate in 5000 10000; do
    one base-$round 1400000 $rate
    one slice-$round ${SLICE_NS:-300000} $rate
  done
done
