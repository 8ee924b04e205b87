#!/bin/bash
for i in $(seq 1 ${1:-8}); do
  echo "--- scrape $i at $(date -u +%H:%M:%S)"
  curl -s http://127.0.0.1:9100/metrics | grep -E '^ringline_(offline_queue_messages|offline_queue_bytes|outbound_bytes|outbound_full_connections|alert)\{' | grep -v 'alert_threshold' | grep -v ' 0$' | sort
  sleep ${2:-3}
done
