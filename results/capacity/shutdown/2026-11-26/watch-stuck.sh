#!/bin/bash
# Dumps the threads of engines whose shutdown reports "no tick for" 5 s or more, once per engine.
out=/tmp/exp/stuck; mkdir -p $out; declare -A done
end=$((SECONDS+900))
while [ $SECONDS -lt $end ]; do
  for log in /tmp/sd1m/engine-*.log; do
    [ -f "$log" ] || continue
    name=$(basename $log .log)
    [ -n "${done[$name]}" ] && continue
    if grep -qE "no tick for ([5-9]|[1-9][0-9])\.[0-9] s" "$log"; then
      if [ "$name" = "engine-0" ]; then dir=/tmp/sd1m; else dir=/tmp/sd1m/$name; fi
      pid=$(pgrep -f -- "--data-dir $dir( |$)" | head -1)
      [ -z "$pid" ] && continue
      done[$name]=1
      f=$out/$name.txt
      { date +%T.%N; for t in /proc/$pid/task/*; do echo "== $(cat $t/comm) $(basename $t) state=$(awk '{print $3}' $t/stat) wchan=$(cat $t/wchan)"; cat $t/stack 2>/dev/null; done;
        timeout 20 gdb -p $pid -batch -ex "thread apply all bt 25" 2>&1 | grep -vE "^\[New LWP|^$" | head -300; } > $f 2>&1 &
    fi
  done
  [ -f /tmp/exp/sd1m-c.done ] && break
  sleep 0.5
done
