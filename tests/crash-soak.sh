#!/usr/bin/env bash
# crash-soak.sh - the crash soak of tests/pytest/test_crash_soak.py, long: N daemon SIGKILLs
# (default 500) under several writers, on each backend of SBXFS_BACKENDS (default local), then the
# counts. Run as root from anywhere, after building (build/sbxfs, or SBXFS_BIN):
#     bash tests/crash-soak.sh 500
# Environment: SBXFS_BIN, SBXFS_BACKENDS, DOCKER_HOST (docker: the test engine, see
# tests/docker/start-dockerd.sh), SBXFS_SOAK_WRITERS (3), SBXFS_SOAK_SEED (the time), and
# SBXFS_SOAK_REPORT (a file the counts and violations are appended to; default
# build/crash-soak.txt). The daemon runs under whatever sanitizers it was built with.
set -uo pipefail

n=${1:-500}
[[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || { echo "usage: $0 [CRASHES]" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
export SBXFS_BIN=${SBXFS_BIN:-$src/build/sbxfs}
export SBXFS_BACKENDS=${SBXFS_BACKENDS:-local}
export SBXFS_SOAK_CRASHES=$n
export SBXFS_SOAK_REPORT=${SBXFS_SOAK_REPORT:-$src/build/crash-soak.txt}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$src/tests/lsan.supp}
[[ -x $SBXFS_BIN ]] || { echo "no daemon at $SBXFS_BIN: build first (ninja -C build)" >&2; exit 2; }
mkdir -p "$(dirname "$SBXFS_SOAK_REPORT")"
echo "crash soak: $n crashes on $SBXFS_BACKENDS; counts go to $SBXFS_SOAK_REPORT"
/usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/pytest/test_crash_soak.py
rc=$?
echo "---- $SBXFS_SOAK_REPORT (last lines)"
tail -n 5 "$SBXFS_SOAK_REPORT" 2>/dev/null
exit $rc
