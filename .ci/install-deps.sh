#!/usr/bin/env bash
# install-deps.sh - installs what sbxfs needs to build, run and be tested, on Debian 12, as root.
#   bash .ci/install-deps.sh          build and run (quick start)
#   bash .ci/install-deps.sh --test   also everything the test suite, fuzzing and docker tests use
set -euo pipefail

run_pkgs=(
  meson ninja-build pkg-config gcc
  libfuse3-dev fuse3 libjson-c-dev libseccomp-dev libcap-dev libcurl4-openssl-dev
  bubblewrap e2fsprogs util-linux procps iproute2
  python3 nodejs bash coreutils
)
test_pkgs=(
  clang libclang-rt-14-dev clang-tidy cppcheck
  python3-pytest python3-matplotlib
  inotify-tools vim git rsync tar
  docker.io xfsprogs curl gnuplot-nox hyperfine valgrind
)

pkgs=("${run_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The MCP filesystem server (tests/pytest/test_mcp.py drives it as agents do), pinned; it runs
# on Debian 12's Node.js 18. npm comes with other Node.js builds; Debian packages it apart.
MCP_DIR=/opt/sbxfs-test MCP_PKG=@modelcontextprotocol/server-filesystem MCP_VER=2026.8.31
if [[ "${1:-}" == "--test" ]] &&
   ! grep -qs "\"version\": \"$MCP_VER\"" "$MCP_DIR/node_modules/$MCP_PKG/package.json"; then
  if ! command -v npm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  mkdir -p "$MCP_DIR"
  npm install --prefix "$MCP_DIR" --no-audit --no-fund --loglevel=error "$MCP_PKG@$MCP_VER" >/dev/null
fi
# promtool (tests/pytest/test_metrics.py checks the metrics file with it) from Debian's
# prometheus package, taken out of the .deb: installing the package would also pull ~90 MB of
# web assets and start a Prometheus server on port 9090.
if [[ "${1:-}" == "--test" ]] && ! command -v promtool >/dev/null; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1 ||
     { apt-get update -qq && apt-get download prometheus >/dev/null; })
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$tmp"
fi
# /dev/fuse must exist (containers sometimes lack the node).
[[ -e /dev/fuse ]] || { mknod -m 666 /dev/fuse c 10 229 || true; }
modprobe fuse 2>/dev/null || true
modprobe loop 2>/dev/null || true
