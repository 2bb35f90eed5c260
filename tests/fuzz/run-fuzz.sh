#!/bin/sh
# run-fuzz.sh - build the libFuzzer targets with clang and fuzz the ctl parser.
#
# Usage: tests/fuzz/run-fuzz.sh [SECONDS]   (default 60)
# Builds into build-fuzz/ (separate from the gcc build), copies the seed
# corpus to a scratch corpus so new inputs do not dirty the tree, and runs
# for SECONDS. Exits non-zero if the build fails or the fuzzer finds a crash,
# leak or sanitizer error (the reproducer lands in build-fuzz/fuzz-artifacts/).
set -eu

secs=${1:-60}
case $secs in
''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

src=$(cd "$(dirname "$0")/../.." && pwd)
bld=$src/build-fuzz

if [ ! -f "$bld/build.ninja" ]; then
	CC=clang meson setup "$bld" "$src" -Dfuzz=true
fi
# Only the fuzz target: the rest of the tree need not be clang-clean for this.
ninja -C "$bld" tests/fuzz/fuzz_ctl

corpus=$bld/fuzz-corpus/ctl
artifacts=$bld/fuzz-artifacts/
mkdir -p "$corpus" "$artifacts"
cp "$src"/tests/fuzz/corpus/ctl/* "$corpus"/

# -max_len above CTL_LINE_MAX would make most runs slow; 4 KiB reaches the
# word limit (256 words) and every parser path.
exec "$bld/tests/fuzz/fuzz_ctl" \
	-max_total_time="$secs" \
	-max_len=4096 \
	-timeout=10 \
	-rss_limit_mb=2048 \
	-print_final_stats=1 \
	-artifact_prefix="$artifacts" \
	"$corpus"
