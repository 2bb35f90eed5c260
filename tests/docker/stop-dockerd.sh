#!/bin/sh
# stop-dockerd.sh - stops the private dockerd that start-dockerd.sh started (and its containerd).
# Usage: tests/docker/stop-dockerd.sh [--purge]   (--purge also removes its data root)
set -u

# SBXFS_DOCKERD=NAME: the engine start-dockerd.sh started under that name.
NAME=${SBXFS_DOCKERD:-sbxfs-test-docker}
case $NAME in
*[!A-Za-z0-9_-]* | "") echo "stop-dockerd: bad SBXFS_DOCKERD '$NAME'" >&2; exit 2 ;;
esac
PIDFILE=/run/$NAME.pid
ROOT=/var/lib/$NAME

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
	grep -E " ($ROOT|/run/$NAME)/" /proc/mounts | awk '{print $2}' | sort -r |
		while read -r m; do umount -l "$m"; done
	rm -rf "$ROOT" "/run/$NAME"
fi
exit 0
