#!/usr/bin/env bash
# A single-machine Prefect setup for videor1: a server on 127.0.0.1 only, the `cpu` and `gpu` process
# work pools, one worker per pool, and the deployments of prefect.yaml.
#
#   bash scripts/prefect_local.sh start     # then: prefect deployment run 'videor1-pipeline/tiny'
#   bash scripts/prefect_local.sh stop
#
# Everything Prefect keeps (settings, the SQLite database, logs of server and workers, pids) lives in
# PREFECT_HOME, by default .prefect/ in the project. Telemetry is off. PREFECT_PORT picks the port (4200).
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-2}"  # how often workers poll (Prefect's default: 10 s)
PORT="${PREFECT_PORT:-4200}"
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
export VIDEOR1_PROJECT="$PWD"
PY="${PYTHON:-$(command -v python)}"
PREFECT="$PY -m prefect"
mkdir -p "$PREFECT_HOME"

stop() {  # SIGTERM, 10 s to finish, then SIGKILL: a worker whose server is gone may never exit on its own
  [ -f "$PREFECT_HOME/pids" ] || return 0
  local pids pid alive
  pids=$(cat "$PREFECT_HOME/pids")
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 20); do
    alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.5
  done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  rm -f "$PREFECT_HOME/pids"
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 {start|stop}" >&2; exit 2 ;;
esac

stop
$PREFECT server start --host 127.0.0.1 --port "$PORT" > "$PREFECT_HOME/server.log" 2>&1 &
echo $! >> "$PREFECT_HOME/pids"
for _ in $(seq 1 120); do
  "$PY" -c "import urllib.request,sys; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=1)" 2>/dev/null && break
  sleep 0.5
done
"$PY" -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=2)" \
  || { echo "Prefect server did not start; see $PREFECT_HOME/server.log" >&2; exit 1; }

for pool in cpu gpu; do
  $PREFECT work-pool create "$pool" --type process --overwrite > /dev/null
done
$PREFECT --no-prompt deploy --all > "$PREFECT_HOME/deploy.log" 2>&1 \
  || { cat "$PREFECT_HOME/deploy.log" >&2; exit 1; }
for pool in cpu gpu; do
  $PREFECT worker start --pool "$pool" --type process > "$PREFECT_HOME/worker-$pool.log" 2>&1 &
  echo $! >> "$PREFECT_HOME/pids"
done
echo "Prefect server $PREFECT_API_URL (UI: http://127.0.0.1:${PORT}), workers for pools cpu and gpu; home $PREFECT_HOME"
echo "export PREFECT_API_URL=$PREFECT_API_URL PREFECT_HOME=$PREFECT_HOME"
