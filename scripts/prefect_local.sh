#!/usr/bin/env bash
# A Prefect setup for videor1: a server (127.0.0.1 unless told otherwise), the `cpu` and `gpu` process work pools,
# the deployments of prefect.yaml, the automation that crashes flow runs whose worker died (flows/automations.py),
# and process workers that run flows in this checkout.
#
#   bash scripts/prefect_local.sh start       # all of it, one worker per pool; then:
#                                             #   prefect deployment run 'videor1-pipeline/tiny'
#   bash scripts/prefect_local.sh server      # all but the workers
#   bash scripts/prefect_local.sh worker gpu  # one worker for a pool, in this checkout (another clone, another
#                                             # machine: PREFECT_API_URL names the server; see README "Scale out")
#   bash scripts/prefect_local.sh stop        # what this checkout's PREFECT_HOME started
#
# Everything Prefect keeps (settings, the SQLite database, logs of server and workers, pids) lives in
# PREFECT_HOME, by default .prefect/ in the project. Telemetry is off. PREFECT_PORT picks the port (4200).
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 DVC_NO_ANALYTICS=1
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-2}"  # how often workers poll (Prefect's default: 10 s)
PORT="${PREFECT_PORT:-4200}"
# Loopback only by default. To serve other machines (workers on GPU nodes), set PREFECT_SERVER_HOST=0.0.0.0
# (or an interface's address) and PREFECT_SERVER_API_AUTH_STRING=user:password (Prefect's basic auth: every
# API call without it gets 401); clients, workers included, send it from PREFECT_API_AUTH_STRING, set here
# to the same value. Keep it in the environment (a secret store, a file you source), never in params.yaml.
HOST="${PREFECT_SERVER_HOST:-127.0.0.1}"
case "$HOST" in
  127.0.0.1|localhost|::1) ;;
  *) if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
       echo "refusing to serve Prefect on $HOST without PREFECT_SERVER_API_AUTH_STRING=user:password" >&2; exit 2
     fi ;;
esac
if [ -n "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
  export PREFECT_API_AUTH_STRING="$PREFECT_SERVER_API_AUTH_STRING"
fi
# Flow runs send a heartbeat this often; the automation crashes a run silent for VIDEOR1_CRASH_GRACE seconds.
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-30}"
GRACE="${VIDEOR1_CRASH_GRACE:-$((3 * PREFECT_FLOWS_HEARTBEAT_FREQUENCY))}"
if [ "${1:-start}" = worker ]; then  # a worker talks to whichever server PREFECT_API_URL names
  export PREFECT_API_URL="${PREFECT_API_URL:-http://127.0.0.1:${PORT}/api}"
else
  export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
fi
export VIDEOR1_PROJECT="$PWD"  # prefect.yaml's pull step: flow runs of this checkout's workers run here
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

start_worker() {
  $PREFECT worker start --pool "$1" --type process > "$PREFECT_HOME/worker-$1.log" 2>&1 &
  echo $! >> "$PREFECT_HOME/pids"
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  worker)
    case "${2:-}" in cpu|gpu) ;; *) echo "usage: $0 worker {cpu|gpu}" >&2; exit 2 ;; esac
    start_worker "$2"
    echo "worker for pool $2 in $PWD, server $PREFECT_API_URL, log $PREFECT_HOME/worker-$2.log"
    exit 0 ;;
  start|server) ;;
  *) echo "usage: $0 {start|server|worker POOL|stop}" >&2; exit 2 ;;
esac

stop
$PREFECT server start --host "$HOST" --port "$PORT" > "$PREFECT_HOME/server.log" 2>&1 &
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
# Deployed without VIDEOR1_PROJECT, so prefect.yaml's pull step keeps `{{ $VIDEOR1_PROJECT }}` and each worker's flow
# runs fill it in from their own environment: the worker's checkout, not this one.
env -u VIDEOR1_PROJECT $PREFECT --no-prompt deploy --all > "$PREFECT_HOME/deploy.log" 2>&1 \
  || { cat "$PREFECT_HOME/deploy.log" >&2; exit 1; }
"$PY" -m flows.automations --grace "$GRACE" > /dev/null
if [ "${1:-start}" = start ]; then
  for pool in cpu gpu; do start_worker "$pool"; done
  echo "Prefect server $PREFECT_API_URL (UI: http://127.0.0.1:${PORT}), workers for pools cpu and gpu; home $PREFECT_HOME"
else
  echo "Prefect server $PREFECT_API_URL (UI: http://127.0.0.1:${PORT}), no workers; home $PREFECT_HOME"
fi
echo "export PREFECT_API_URL=$PREFECT_API_URL PREFECT_HOME=$PREFECT_HOME"  # plus PREFECT_API_AUTH_STRING if set
