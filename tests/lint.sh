#!/usr/bin/env bash
# lint.sh - the static-analysis gate on fusefs/, control/ and backend/:
#   clang-tidy with .clang-tidy: no function over 80 lines or over cognitive complexity 25
#   (errors: they fail the gate); its other checks are printed as warnings to judge;
#   cppcheck --enable=warning,performance,portability: any finding fails the gate;
#   strerror() (not thread-safe) fails it too.
# Usage: bash tests/lint.sh [BUILD_DIR]  (a meson build directory: its compile_commands.json
# gives clang-tidy the flags; made with `meson setup` when missing; default build-ci).
# Environment: LINT_JOBS (parallel clang-tidy processes; default: the number of CPUs).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bld=$(realpath -m "${1:-$src/build-ci}")
status=0

for tool in clang-tidy cppcheck; do
  command -v "$tool" >/dev/null || { echo "lint: $tool is not installed (bash .ci/install-deps.sh --test)"; exit 2; }
done
if [[ ! -f $bld/compile_commands.json ]]; then
  meson setup "$bld" >/dev/null || { echo "lint: meson setup '$bld' failed"; exit 2; }
fi

# git's '*' matches across '/', so new subdirectories are covered; a tarball has no git.
mapfile -t files < <(git ls-files 'fusefs/*.c' 'control/*.c' 'backend/*.c' 2>/dev/null ||
  find fusefs control backend -name '*.c' | sort)
((${#files[@]})) || { echo "lint: no source files found"; exit 2; }

# gcc-only flags (-Wno-format-truncation) are unknown to clang, and clang's own warnings are not
# this gate's business: -Werror from the build must not turn them into errors here.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '%s\n' "${files[@]}" |
  xargs -P "${LINT_JOBS:-$(nproc)}" -n 1 clang-tidy -p "$bld" --quiet \
    --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wno-error >"$out" 2>/dev/null
tidy_rc=$?
sed -E -e 's|^([^ :]*/)?\.\./||' -e "s|^$src/||" "$out" | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error):' | sort -u
errors=$(grep -cE ': error:' "$out")
warnings=$(grep -cE ': warning:' "$out")
echo "clang-tidy: ${#files[@]} files, $errors errors (gate), $warnings warnings (to judge)"
if ((errors > 0 || tidy_rc != 0)); then
  echo "lint: clang-tidy FAILED (split the functions named above; see docs/design.md, Static analysis)"
  status=1
fi

# strerror() may return a buffer shared between threads: the daemon is threaded.
if grep -nE '(^|[^_[:alnum:]])strerror[[:space:]]*\(' "${files[@]}" |
   grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*|//)'; then
  echo "lint: strerror() above: use sbx_errstr() (backend/error.h) or %m"
  status=1
fi

if ! cppcheck --enable=warning,performance,portability --inline-suppr --error-exitcode=1 -q \
     --std=c11 -D_GNU_SOURCE -DFUSE_USE_VERSION=314 fusefs control backend; then
  echo "lint: cppcheck FAILED"
  status=1
else
  echo "cppcheck: clean"
fi
exit $status
