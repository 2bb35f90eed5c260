#!/usr/bin/env bash
# agent-session.sh - what an agent that only knows file I/O does with sbxfs:
# make a sandbox, put data in, keep state in a Python context, run a job in
# the background and wait for it with inotify, read the history, clean up.
#     bash examples/agent-session.sh [MOUNT]      (default /mnt/sbxfs; mount it first)
set -euo pipefail
m=${1:-/mnt/sbxfs}
box=agent-demo-$$

echo "new $box ttl=600 mem=256M env.GREETING=hello" > "$m/ctl"
trap 'echo "kill $box" > "$m/ctl"' EXIT

# Data in through files/, as cp would put it on any disk.
printf 'x,y\n1,2\n3,4\n' > "$m/$box/files/home/user/data.csv"

# A context keeps variables between runs, like a notebook.
mkdir "$m/$box/contexts/nb"
echo 'import csv; rows = list(csv.DictReader(open("data.csv")))' > "$m/$box/contexts/nb/run.py"
echo 'sum(int(r["y"]) for r in rows)' > "$m/$box/contexts/nb/run.py"
echo "context result: $(cat "$m/$box/contexts/nb/result")"

# A longer job in the background; inotifywait wakes when `exit` appears.
echo 'import time, os; time.sleep(1); print(os.environ["GREETING"], "from the background")' > "$m/$box/run.py" &
if command -v inotifywait >/dev/null; then
	inotifywait -qq -e create "$m/$box" --include 'exit$' || true
fi
cat "$m/$box/wait" >/dev/null   # or block on wait: returns when no run is in progress
wait
echo "background run said: $(cat "$m/$box/stdout") (exit $(cat "$m/$box/exit"))"

# Every run is kept under runs/N.
ls "$m/$box/runs"
cat "$m/$box/metrics"
