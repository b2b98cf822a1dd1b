#!/usr/bin/env bash
# GET /api/jobs?limit=1000 (a page of 1,000 jobs) under wrk, against nginx serving the very same bytes as a static
# file, in the same run. Prints requests/s and p99 of both and their ratio.
#   bash bench/api_bench.sh [path/to/cronvisor]   (env: JOBS=1000 DURATION=10s CONNS=50 THREADS=2)
set -euo pipefail
BIN=${1:-build/cronvisor}
BIN=$(readlink -f "$BIN")
JOBS=${JOBS:-1000}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
TOKEN=bench-viewer-token
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "nginx is needed (apt-get install nginx)"; exit 2; }

TMP=$(mktemp -d /tmp/cv-api-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as another user
CVPID= NGPID=
cleanup() {
    [ -n "$CVPID" ] && kill "$CVPID" 2>/dev/null && wait "$CVPID" 2>/dev/null || true
    [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

{
    printf 'server:\n  listen: "127.0.0.1:0"\nauth:\n  tokens:\n    - name: bench\n      role: viewer\n      token: %s\njobs:\n' "$TOKEN"
    for i in $(seq 1 "$JOBS"); do
        printf '  - name: job%04d\n    title: Benchmark job %d\n    schedule: "%d %d * * *"\n    timezone: Europe/Stockholm\n    command: "true"\n' \
            "$i" "$i" $((i % 60)) $((i % 24))
    done
} >"$TMP/cv.yaml"

(cd "$TMP" && exec "$BIN" run -c cv.yaml --log-level info 2>"$TMP/cv.log") &
CVPID=$!
for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/cv.log" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$TMP/cv.log"; exit 1; }
mkdir -p "$TMP/www/api"
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/jobs?limit=$JOBS" >"$TMP/www/api/jobs"
SIZE=$(stat -c %s "$TMP/www/api/jobs")

NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/nginx.conf" <<NG
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on; # as Debian's nginx.conf serves static files (the stronger baseline)
    tcp_nopush on;
    default_type application/json;
    server {
        listen 127.0.0.1:$NPORT;
        root $TMP/www;
        location / { }
    }
}
NG
"$NGINX" -c "$TMP/nginx.conf" -p "$TMP" 2>/dev/null || "$NGINX" -c "$TMP/nginx.conf" -p "$TMP"
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$NPORT/api/jobs" -o /dev/null && break; sleep 0.1; done

run_wrk() { # url [header] -> "rps p99"
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" ${2:+-H "$2"} "$1" >"$TMP/wrk.out"
    local rps p99
    rps=$(awk '/^Requests\/sec/ {print $2}' "$TMP/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk.out")
    grep -q "Non-2xx" "$TMP/wrk.out" && { cat "$TMP/wrk.out"; echo "errors!"; exit 1; }
    echo "$rps $p99"
}
echo "GET /api/jobs?limit=$JOBS: $JOBS jobs, $SIZE bytes; wrk -t$THREADS -c$CONNS -d$DURATION; $(nproc) CPU(s)"
read -r CV_RPS CV_P99 <<<"$(run_wrk "http://127.0.0.1:$PORT/api/jobs?limit=$JOBS")"
read -r NG_RPS NG_P99 <<<"$(run_wrk "http://127.0.0.1:$NPORT/api/jobs")"
printf '%-10s %12s req/s  p99 %s\n' cronvisor "$CV_RPS" "$CV_P99" nginx "$NG_RPS" "$NG_P99"
python3 -c "print('ratio cronvisor/nginx: %.2f' % ($CV_RPS / $NG_RPS))"
if [ -n "${GZIP:-}" ]; then # the gzip variant, and a revalidation answered 304
    read -r GZ_RPS GZ_P99 <<<"$(run_wrk "http://127.0.0.1:$PORT/api/jobs?limit=$JOBS" "Accept-Encoding: gzip")"
    ETAG=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/jobs?limit=$JOBS" | awk 'tolower($1) == "etag:" {print $2}' | tr -d '\r')
    read -r NM_RPS NM_P99 <<<"$(run_wrk "http://127.0.0.1:$PORT/api/jobs?limit=$JOBS" "If-None-Match: $ETAG")"
    printf '%-10s %12s req/s  p99 %s\n' "gzip" "$GZ_RPS" "$GZ_P99" "304" "$NM_RPS" "$NM_P99"
fi
echo "cronvisor RSS after: $(awk '/VmRSS/ {print $2, $3}' /proc/$CVPID/status)"
