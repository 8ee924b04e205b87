#!/bin/bash
# every 5 s: a few per-core series from /metrics
for i in $(seq 1 ${1:-8}); do
  echo "--- scrape $i at $(date -u +%H:%M:%S)"
  curl -s http://127.0.0.1:9100/metrics | grep -E '^ringline_(connections|sessions|logins_total|messages_in_total|messages_out_total|offline_queue_messages|offline_queue_bytes|outbound_bytes|outbound_full_connections|mesh_outbox_messages|mesh_channel_messages|alert)\{' | grep -v 'alert_threshold' | sort
  sleep ${2:-5}
done
