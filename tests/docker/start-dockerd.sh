#!/bin/sh
# start-dockerd.sh - installs docker.io if needed and starts a private dockerd for sbxfs tests.
#
# Usage: tests/docker/start-dockerd.sh [tcp://127.0.0.1:PORT]
# The engine listens on unix:///run/sbxfs-test-docker.sock (and on the tcp address when one is
# given), keeps its data under /var/lib/sbxfs-test-docker, has no bridge and touches no iptables.
# SBXFS_DOCKERD=NAME starts another engine of its own beside it (/run/NAME.sock,
# /var/lib/NAME, ...): a test that stops its engine uses one, so that other tests sharing the
# first engine are not disturbed. SBXFS_DOCKERD_ARGS adds dockerd options to such an engine.
# Idempotent: when that engine already answers, it only prints its address. Exits non-zero when
# the engine does not answer within 60 s. Stop it with tests/docker/stop-dockerd.sh.
set -eu

NAME=${SBXFS_DOCKERD:-sbxfs-test-docker}
case $NAME in
*[!A-Za-z0-9_-]* | "") echo "start-dockerd: bad SBXFS_DOCKERD '$NAME'" >&2; exit 2 ;;
esac
SOCK=/run/$NAME.sock
ROOT=/var/lib/$NAME
EXEC_ROOT=/run/$NAME
PIDFILE=/run/$NAME.pid
LOG=/var/log/$NAME.log
TCP=${1:-}

answers() {
	curl -sf --max-time 2 --unix-socket "$SOCK" http://docker/_ping >/dev/null 2>&1
}

if answers; then
	if [ -z "$TCP" ] || curl -sf --max-time 2 "http://${TCP#tcp://}/_ping" >/dev/null 2>&1; then
		echo "unix://$SOCK"
		exit 0
	fi
	# Running, but without the tcp listener asked for: restart with it.
	"$(dirname "$0")/stop-dockerd.sh" >/dev/null
fi

if ! command -v dockerd >/dev/null 2>&1; then
	[ "$(id -u)" = 0 ] || { echo "start-dockerd: dockerd missing and not root" >&2; exit 1; }
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y docker.io >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y docker.io >/dev/null; }
fi
command -v curl >/dev/null 2>&1 || apt-get install -y curl >/dev/null

# A stale pid file of a dead engine would make dockerd refuse to start.
if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
	rm -f "$PIDFILE"
fi

mkdir -p "$ROOT" "$EXEC_ROOT"
set -- --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
	--host "unix://$SOCK" --data-root "$ROOT" --exec-root "$EXEC_ROOT" \
	--pidfile "$PIDFILE" --storage-driver overlay2
if [ -n "$TCP" ]; then
	set -- "$@" --host "$TCP"
fi
# SBXFS_DOCKERD_ARGS: more dockerd options for an engine of one's own (e.g. --userns-remap=U).
# shellcheck disable=SC2086
set -- "$@" ${SBXFS_DOCKERD_ARGS:-}
# setsid: the engine must outlive the shell (and its process group) that started it.
setsid dockerd "$@" >"$LOG" 2>&1 </dev/null &

i=0
while ! answers; do
	i=$((i + 1))
	if [ $i -gt 300 ]; then
		echo "start-dockerd: engine did not answer within 60 s; see $LOG" >&2
		tail -5 "$LOG" >&2
		exit 1
	fi
	sleep 0.2
done
echo "unix://$SOCK"
