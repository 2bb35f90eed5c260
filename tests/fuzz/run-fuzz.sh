#!/bin/sh
# run-fuzz.sh - build the libFuzzer targets with clang and run each: the ctl parser, the
# end-of-run frames of a context's driver, the env file parser, the run header line, what
# an agent answers the daemon
# (FUZZ_TARGETS="NAME:MAX_LEN ..." picks some).
#
# Usage: tests/fuzz/run-fuzz.sh [SECONDS]   (default 60)
# Builds into build-fuzz/ (separate from the gcc build), copies the seed
# corpus to a scratch corpus so new inputs do not dirty the tree, and runs
# for SECONDS each. Exits non-zero if the build fails or the fuzzer finds a crash,
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
# Each target for SECONDS, one after the other: NAME:MAX_LEN. -max_len above a parser's
# limits would make most runs slow; each bound reaches every limit of its parser
# (ctl: 256 words; ctx_proto: a 1 KiB header line, 64 figure lengths, and frames split
# across reads; env: one 64 KiB entry and 1,000 lines; header: CTL_HEADER_MAX; agent: one
# 64 KiB reply, the largest the daemon takes, and a few more frames).
targets=${FUZZ_TARGETS:-"ctl:4096 ctx_proto:4096 env:140000 header:2048 agent:70000"}
status=0
for t in $targets; do
	name=${t%%:*}
	maxlen=${t#*:}
	# Only the fuzz targets: the rest of the tree need not be clang-clean for this.
	ninja -C "$bld" "tests/fuzz/fuzz_$name"
	corpus=$bld/fuzz-corpus/$name
	artifacts=$bld/fuzz-artifacts/
	mkdir -p "$corpus" "$artifacts"
	cp "$src"/tests/fuzz/corpus/"$name"/* "$corpus"/
	echo "== fuzz_$name: $secs s"
	"$bld/tests/fuzz/fuzz_$name" \
		-max_total_time="$secs" \
		-max_len="$maxlen" \
		-timeout=10 \
		-rss_limit_mb=2048 \
		-print_final_stats=1 \
		-artifact_prefix="$artifacts" \
		"$corpus" || status=1
done
exit $status
