#!/bin/bash
# cpu.sh TAG ENGINE RATE [CONNS]: one chat run; engine and agent CPU over 6 s of the hold
TAG=$1; ENGINE=$2; RATE=$3; N=${4:-1000}
/work/main/target/release/ringline-loadgen run --spawn-engine --engine-bin $ENGINE --connections $N --ramp 1000 --duration 12 --rate $RATE --scenario chat $EXTRA --report $TAG.json > $TAG.log 2>&1 &
sleep 5; EP=$(pgrep -x ringline | head -1); [ -z "$EP" ] && EP=$(pgrep -f "$ENGINE serve" | head -1); LP=$(pgrep -f 'ringline-loadgen agent' | head -1)
E0=$(awk '{print $14+$15}' /proc/$EP/stat); L0=$(awk '{print $14+$15}' /proc/$LP/stat)
sleep 6
E1=$(awk '{print $14+$15}' /proc/$EP/stat); L1=$(awk '{print $14+$15}' /proc/$LP/stat)
wait
echo "$TAG rate $RATE: engine $(( (E1-E0) )) agent $(( (L1-L0) )) (cs per 6 s); $(grep -E 'latency ack' $TAG.log | awk '{print $7,$8}'); $(grep '^messages' $TAG.log | awk '{print $(NF-1)}') msgs/s; $(grep ledger $TAG.log)"
