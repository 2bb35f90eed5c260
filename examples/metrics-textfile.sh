#!/usr/bin/env bash
# metrics-textfile.sh - hands sbxfs's metrics to the node exporter's textfile collector
# (Debian: prometheus-node-exporter, which reads /var/lib/prometheus/node-exporter/*.prom).
#   bash examples/metrics-textfile.sh /mnt/sbxfs &
# Each copy is written beside the target and renamed over it, so the collector never
# reads half a file.
set -euo pipefail
mnt=${1:-/mnt/sbxfs}
dir=${2:-/var/lib/prometheus/node-exporter}
while sleep 15; do
  cat "$mnt/metrics" > "$dir/sbxfs.prom.$$" && mv "$dir/sbxfs.prom.$$" "$dir/sbxfs.prom"
done
