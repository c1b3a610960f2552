#!/bin/bash
# Cold start of the default server: milliseconds from spawning BIN to its
# first `/health` 200, on a new database (migrations included) and again on
# the existing one, RUNS times each; prints every run and the medians.
# Usage: tests/benches/cold-start.sh BIN PORT [RUNS]
# e.g.   tests/benches/cold-start.sh target/release/auth-server 9432 5
# Needs curl and python3.
set -euo pipefail
BIN=$(realpath "$1"); PORT=$2; RUNS=${3:-5}
measure() {  # DIR: one start in DIR, prints milliseconds to the first 200
python3 - "$BIN" "$PORT" "$1" <<'PY'
import subprocess, sys, time, urllib.request
binary, port, cwd = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.monotonic()
p = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], cwd=cwd,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            time.sleep(0.001)
        if time.monotonic() - t0 > 30:
            sys.exit("no /health answer in 30 s")
    print(f"{(time.monotonic() - t0) * 1000:.1f}")
finally:
    p.terminate(); p.wait()
PY
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
NEW=(); EXISTING=()
for i in $(seq 1 "$RUNS"); do
  D=$(mktemp -d)
  NEW+=("$(measure "$D")")
  EXISTING+=("$(measure "$D")")
  rm -rf "$D"
done
echo "new database (ms):      ${NEW[*]}  median $(printf '%s\n' "${NEW[@]}" | median)"
echo "existing database (ms): ${EXISTING[*]}  median $(printf '%s\n' "${EXISTING[@]}" | median)"
