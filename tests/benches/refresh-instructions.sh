#!/bin/bash
# Instructions per token refresh, counted by valgrind's callgrind: repeatable
# on a noisy machine, where req/s are not. Usage:
#   tests/benches/refresh-instructions.sh BIN PORT N
# e.g. tests/benches/refresh-instructions.sh target/release/auth-server 9431 1000
# Starts BIN in default mode in a temporary directory under callgrind, registers
# one customer, warms up with 20 refreshes, zeroes the counters, sends N
# refreshes over one keep-alive connection, and prints instructions per refresh.
# Needs valgrind, curl and python3.
set -euo pipefail
BIN=$(realpath "$1"); PORT=$2; N=$3
D=$(mktemp -d); cd $D
valgrind --tool=callgrind --callgrind-out-file=$D/cg.out $BIN serve --listen 127.0.0.1:$PORT > server.log 2>&1 &
VPID=$!
for i in $(seq 1 120); do curl -s -o /dev/null http://127.0.0.1:$PORT/health && break; sleep 1; done
TOKEN=$(curl -s -X POST http://127.0.0.1:$PORT/auth/customer/emailpass/register -H 'Content-Type: application/json' -d '{"email":"cg@example.com","password":"pw-cg-123"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["token"])')
# refreshes COUNT: COUNT refreshes over one keep-alive connection.
refreshes() {
python3 - "$PORT" "$TOKEN" "$1" <<'PY'
import http.client,sys
port,token,n=int(sys.argv[1]),sys.argv[2],int(sys.argv[3])
c=http.client.HTTPConnection("127.0.0.1",port)
for _ in range(n):
    c.request("POST","/auth/token/refresh",headers={"Authorization":"Bearer "+token}); r=c.getresponse(); r.read(); assert r.status==200
PY
}
refreshes 20
callgrind_control -z $VPID >/dev/null
refreshes "$N"

callgrind_control -d $VPID >/dev/null
sleep 1
kill $VPID; wait $VPID 2>/dev/null || true
TOTAL=$(grep -h -E "^summary:" $D/cg.out.1 | awk "{s+=\$2} END {print s}")
echo "$BIN: $TOTAL instructions for $N refreshes = $((TOTAL / N)) per refresh"
cd /; rm -rf "$D"
