#!/usr/bin/env bash
# quickstart.sh - on a fresh Debian 12 machine, as root: installs what sbxfs
# needs, builds and installs it, mounts it at /mnt/sbxfs with the local
# backend, and shows a sandbox being created and running code.
#     bash examples/quickstart.sh
# Leaves the mount in place; unmount with `fusermount3 -u /mnt/sbxfs`
# (sandboxes keep running; mount again and they are all there).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
mnt=${SBXFS_MOUNT:-/mnt/sbxfs}

bash "$src/.ci/install-deps.sh"
cd "$src"
[[ -f build/build.ninja ]] || meson setup build --prefix=/usr/local >/dev/null
ninja -C build
meson install -C build --quiet

mkdir -p "$mnt"
mountpoint -q "$mnt" || sbxfs "$mnt"

set -x
ls "$mnt"
[[ -d $mnt/demo ]] || echo 'new demo ttl=3600' > "$mnt/ctl"
cat "$mnt/demo/status"
echo 'import platform, os; print("hello from", platform.node(), "as uid", os.getuid())' > "$mnt/demo/run.py"
cat "$mnt/demo/stdout" "$mnt/demo/exit"
echo 'console.log([1, 2, 3].map(x => x * 2))' > "$mnt/demo/run.js"
cat "$mnt/demo/stdout"
echo 'echo "files here:"; ls /home/user; echo hi > /home/user/note.txt' > "$mnt/demo/run.sh"
cat "$mnt/demo/stdout" "$mnt/demo/files/home/user/note.txt"
cat "$mnt/demo/metrics"
