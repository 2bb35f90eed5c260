#!/usr/bin/env bash
# run-all.sh - installs what is missing, builds sbxfs with AddressSanitizer and
# UBSan, and runs every test: the static-analysis gate (tests/lint.sh), C unit
# tests (meson test), the ctl parser fuzzer for a bounded time, and the pytest
# behaviour suite through real mounts on the local and docker backends. Run as root on Debian 12:
#     bash tests/run-all.sh
# Environment: FUZZ_SECONDS (default 60), SBXFS_BACKENDS (default "local,docker"; "local" leaves the
# docker backend out), PYTEST_ARGS (extra arguments for pytest), SBXFS_DOCKER_TCP (default
# tcp://127.0.0.1:2375: the test engine's tcp listener, for the tcp:// engine test).
# With docker, a private engine (tests/docker/start-dockerd.sh) is started before the C tests, so
# that the docker_backend meson test runs instead of skipping; it is stopped at the end only if
# this script started it (others may be using it).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
bld=$src/build-ci
status=0
summary=()

step() { printf '\n==== %s ====\n' "$*"; }
record() {  # name, exit code
  if [[ $2 -eq 0 ]]; then summary+=("PASS $1"); else summary+=("FAIL $1 (exit $2)"); status=1; fi
}

step "installing packages"
bash .ci/install-deps.sh --test || { echo "package install failed"; exit 1; }

step "building with ASan and UBSan"
if [[ ! -f $bld/build.ninja ]]; then
  meson setup "$bld" -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug >/dev/null || exit 1
fi
ninja -C "$bld" || exit 1

# The quick start builds meson's default (debugoptimized): gcc's -O2 warnings (format-overflow,
# maybe-uninitialized) differ from -O0's, and -Werror makes them build failures.
step "building the default configuration (-O2, as the quick start does)"
if [[ ! -f $src/build-opt/build.ninja ]]; then
  meson setup "$src/build-opt" >/dev/null || exit 1
fi
ninja -C "$src/build-opt" >/dev/null || { ninja -C "$src/build-opt"; exit 1; }

# The daemon and the C tests run under the sanitizers; a leak or UB report fails the test.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# LeakSanitizer needs ptrace, which the sandbox's seccomp filter refuses: the
# agent inside sandboxes runs without leak detection (it never exits cleanly).
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp

backends=${SBXFS_BACKENDS:-local,docker}
engine_started=0
if [[ $backends == *docker* ]]; then
  step "starting a test dockerd"
  export SBXFS_DOCKER_TCP=${SBXFS_DOCKER_TCP:-tcp://127.0.0.1:2375}
  curl -sf --max-time 2 --unix-socket /run/sbxfs-test-docker.sock http://docker/_ping >/dev/null 2>&1 ||
    engine_started=1
  if bash tests/docker/start-dockerd.sh "$SBXFS_DOCKER_TCP"; then
    export DOCKER_HOST=unix:///run/sbxfs-test-docker.sock
  else
    echo "dockerd did not start: the docker backend tests will fail"
    record "start dockerd" 1
  fi
fi

step "static analysis (clang-tidy gate, cppcheck)"
bash tests/lint.sh "$bld"
record "lint" $?

step "C unit tests (meson test)"
meson test -C "$bld" --print-errorlogs
record "meson test" $?

step "fuzzing the parsers for ${FUZZ_SECONDS:-60} s each"
bash tests/fuzz/run-fuzz.sh "${FUZZ_SECONDS:-60}" > "$bld/fuzz.log" 2>&1
rc=$?
grep -E "^(Done|INFO: Seed|==[0-9]+==|SUMMARY)" "$bld/fuzz.log" | tail -5
[[ $rc -eq 0 ]] || tail -40 "$bld/fuzz.log"
record "fuzz parsers" $rc

step "behaviour tests through real mounts (pytest, backends: $backends)"
SBXFS_BIN=$bld/sbxfs SBXFS_BACKENDS=$backends \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/pytest ${PYTEST_ARGS:-}
rc=$?
[[ $rc -eq 5 ]] && rc=1  # "no tests collected" is a failure here
record "pytest" $rc

if [[ $backends == *docker* ]]; then
  # (pytest itself fails when a container of its sandboxes is left on the engine)
  if [[ $engine_started -eq 1 ]]; then
    bash tests/docker/stop-dockerd.sh >/dev/null 2>&1 || true
  fi
  # The engines test_docker.py starts for itself stop with their tests; should pytest have been
  # killed first, they go here (each is only stopped when its pid file names a live engine).
  for e in sbxfs-test-docker-restart sbxfs-test-docker-xfs sbxfs-test-docker-userns; do
    [[ -f /run/$e.pid ]] && SBXFS_DOCKERD=$e bash tests/docker/stop-dockerd.sh --purge >/dev/null 2>&1
  done
fi

step "summary"
printf '%s\n' "${summary[@]}"
echo "wall time: $((SECONDS / 60)) min $((SECONDS % 60)) s"
exit $status
