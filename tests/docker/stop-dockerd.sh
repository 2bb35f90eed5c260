#!/bin/sh
# stop-dockerd.sh - stops the private dockerd that start-dockerd.sh started (and its containerd).
# Usage: tests/docker/stop-dockerd.sh [--purge]   (--purge also removes its data root)
set -u

PIDFILE=/run/sbxfs-test-docker.pid
ROOT=/var/lib/sbxfs-test-docker

if [ -f "$PIDFILE" ]; then
	pid=$(cat "$PIDFILE")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null; do
			i=$((i + 1))
			[ $i -gt 150 ] && { kill -KILL "$pid" 2>/dev/null; break; }
			sleep 0.2
		done
	fi
	rm -f "$PIDFILE"
fi
if [ "${1:-}" = --purge ]; then
	# Container layers may still be mounted when the engine died hard.
	grep " $ROOT/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$ROOT"
fi
exit 0
