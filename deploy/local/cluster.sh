#!/usr/bin/env bash
# A Candor cluster on this machine, every process on loopback:
#
#   redis-server            127.0.0.1:$REDIS_PORT   shared store (deploy/redis/redis.conf: AOF, fsync always)
#   keyserver-1, -2         127.0.0.1:$PORT+1, +2   --roles keyserver
#   verification-1, -2      127.0.0.1:$PORT+3, +4   --roles verification
#   exporter                127.0.0.1:$PORT+5       --roles exporter (the only one)
#   log                     127.0.0.1:$PORT+6       --roles log (the only transparency log writer)
#   nginx                   127.0.0.1:$PORT         the reverse proxy phones and health workers use
#
# Each Candor process serves /metrics on its own port, 127.0.0.1:$METRICS_PORT+1 … +6
# (deploy/prometheus/prometheus.yml scrapes them), never through nginx.
#
# Usage: deploy/local/cluster.sh start|stop|status|kill NAME
#   start   start everything (a fresh cluster, or the existing one again)
#   stop    stop everything (SIGTERM: in-flight requests finish)
#   status  show the processes and their health
#   kill    SIGKILL one process, e.g. `kill keyserver-1`
#
# Environment: CLUSTER_DIR (default ./cluster), CLUSTER_PORT (8090),
# CLUSTER_METRICS_PORT (9470), CLUSTER_REDIS_PORT (6390), CLUSTER_BIN (bin/candor), REDIS_SERVER
# (redis-server), NGINX_BIN (nginx). Operator commands go to a replica's socket:
#   bin/candor admin realm list --data cluster/verification-1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${CLUSTER_DIR:-$ROOT/cluster}
PORT=${CLUSTER_PORT:-8090}
METRICS_PORT=${CLUSTER_METRICS_PORT:-9470}
REDIS_PORT=${CLUSTER_REDIS_PORT:-6390}
BIN=${CLUSTER_BIN:-$ROOT/bin/candor}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
NGINX_BIN=${NGINX_BIN:-nginx}
# nginx reads NGINX from its environment (inherited sockets): never pass it.
unset NGINX
STORE="redis://127.0.0.1:$REDIS_PORT/0"
PUBLIC="http://127.0.0.1:$PORT"

# name, port offset, roles
PROCESSES=(
  "keyserver-1 1 keyserver"
  "keyserver-2 2 keyserver"
  "verification-1 3 verification"
  "verification-2 4 verification"
  "exporter 5 exporter"
  "log 6 log"
)

die() { echo "cluster: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: apt-get install $2"
}

# http_ok PORT PATH: true when GET answers 200 (bash /dev/tcp: no curl needed).
http_ok() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    IFS= read -r -t 1 line <&3 || exit 1
    [[ $line == *" 200 "* ]]
  ) 2>/dev/null
}

wait_for() { # what, command...: up to 30 s
  local what=$1 deadline=$((SECONDS + 30))
  shift
  while ((SECONDS < deadline)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  die "$what did not come up within 30 s (logs in $DIR)"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_redis() {
  mkdir -p "$DIR/redis"
  if alive "$DIR/redis/pid"; then return; fi
  # The shipped configuration, on this cluster's port and directory.
  "$REDIS_SERVER" "$ROOT/deploy/redis/redis.conf" --port "$REDIS_PORT" --dir "$DIR/redis" \
    --daemonize no --logfile "$DIR/redis/redis.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$DIR/redis/pid"
  wait_for redis-server redis_ok
}

redis_ok() {
  (
    exec 4<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
    printf 'PING\r\n' >&4
    IFS= read -r -t 1 line <&4 || exit 1
    [[ $line == "+PONG"* ]]
  ) 2>/dev/null
}

start_candor() { # name offset roles
  local name=$1 port=$((PORT + $2)) roles=$3
  # Candor refuses a data directory other users can enter.
  mkdir -p "$DIR/$name"
  chmod 700 "$DIR/$name"
  if alive "$DIR/$name/pid"; then return; fi
  # One master key for all (the first process creates it); every process
  # its own data directory (operator socket, export files, log).
  CANDOR_STORE=$STORE "$BIN" serve --data "$DIR/$name" --addr "127.0.0.1:$port" --roles "$roles" \
    --metrics-addr "127.0.0.1:$((METRICS_PORT + $2))" \
    --master-key "$DIR/master.key" --public-url "$PUBLIC" --trusted-proxies 127.0.0.1/32 \
    --log-format json </dev/null >>"$DIR/$name/stdout.log" 2>>"$DIR/$name/stderr.log" &
  echo $! >"$DIR/$name/pid"
  wait_for "$name" http_ok "$port" /ready
}

start_nginx() {
  mkdir -p "$DIR/nginx/tmp"
  if alive "$DIR/nginx/nginx.pid"; then return; fi
  sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@KS1@|$((PORT + 1))|g" -e "s|@KS2@|$((PORT + 2))|g" \
    -e "s|@VS1@|$((PORT + 3))|g" -e "s|@VS2@|$((PORT + 4))|g" \
    -e "s|@EX@|$((PORT + 5))|g" -e "s|@LOG@|$((PORT + 6))|g" \
    "$ROOT/deploy/local/nginx.conf.in" >"$DIR/nginx/nginx.conf"
  "$NGINX_BIN" -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" -g 'daemon on;' \
    </dev/null >>"$DIR/nginx/stdout.log" 2>&1 || die "nginx did not start (see $DIR/nginx/error.log)"
  wait_for nginx http_ok "$PORT" /health
}

cmd_start() {
  need "$REDIS_SERVER" redis-server
  need "$NGINX_BIN" nginx
  [[ -x $BIN ]] || die "$BIN is missing: make build"
  mkdir -p "$DIR"
  start_redis
  # One at a time: the first process creates the keysets and the master
  # key, the others load them.
  for p in "${PROCESSES[@]}"; do
    # shellcheck disable=SC2086
    start_candor $p
  done
  start_nginx
  cmd_status
  # The demo realm's API keys, printed once by the first verification replica.
  grep -h "API key:" "$DIR/verification-1/stdout.log" 2>/dev/null | head -2 || true
}

cmd_stop() {
  local left=0 pid
  if alive "$DIR/nginx/nginx.pid"; then kill -QUIT "$(cat "$DIR/nginx/nginx.pid")"; fi
  for p in "${PROCESSES[@]}"; do
    set -- $p
    if alive "$DIR/$1/pid"; then kill -TERM "$(cat "$DIR/$1/pid")"; fi
  done
  # Wait for each process; one that does not stop within 10 s is killed
  # and reported, never left running silently.
  for p in "${PROCESSES[@]}"; do
    set -- $p
    for _ in $(seq 1 100); do alive "$DIR/$1/pid" || break; sleep 0.1; done
    if alive "$DIR/$1/pid"; then
      pid=$(cat "$DIR/$1/pid"); echo "$1 (pid $pid) did not stop; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true; left=1
    fi
    rm -f "$DIR/$1/pid"
  done
  for _ in $(seq 1 100); do alive "$DIR/nginx/nginx.pid" || break; sleep 0.1; done
  if alive "$DIR/nginx/nginx.pid"; then
    echo "nginx did not stop; killing it" >&2
    kill -KILL "$(cat "$DIR/nginx/nginx.pid")" 2>/dev/null || true; left=1
  fi
  if alive "$DIR/redis/pid"; then
    kill -TERM "$(cat "$DIR/redis/pid")"
    for _ in $(seq 1 100); do alive "$DIR/redis/pid" || break; sleep 0.1; done
    if alive "$DIR/redis/pid"; then kill -KILL "$(cat "$DIR/redis/pid")" 2>/dev/null || true; left=1; fi
  fi
  rm -f "$DIR/redis/pid"
  echo "cluster stopped (data kept in $DIR)"
  return $left
}

cmd_status() {
  printf '%-16s %-8s %-22s %s\n' process pid address state
  local state
  for p in "${PROCESSES[@]}"; do
    set -- $p
    state=down
    if alive "$DIR/$1/pid"; then
      state=running
      http_ok $((PORT + $2)) /health && state=live
      http_ok $((PORT + $2)) /ready && state=ready
    fi
    printf '%-16s %-8s %-22s %s (%s)\n' "$1" "$(cat "$DIR/$1/pid" 2>/dev/null || echo -)" "127.0.0.1:$((PORT + $2))" "$state" "$3"
  done
  state=down; alive "$DIR/redis/pid" && state=running
  printf '%-16s %-8s %-22s %s\n' redis-server "$(cat "$DIR/redis/pid" 2>/dev/null || echo -)" "127.0.0.1:$REDIS_PORT" "$state"
  state=down; alive "$DIR/nginx/nginx.pid" && state=running
  printf '%-16s %-8s %-22s %s\n' nginx "$(cat "$DIR/nginx/nginx.pid" 2>/dev/null || echo -)" "127.0.0.1:$PORT" "$state"
  echo
  echo "Candor is reachable at $PUBLIC (publish $PUBLIC/v1/publish, verification $PUBLIC/api/…,"
  echo "exports $PUBLIC/exports/…, log $PUBLIC/log/checkpoint, page $PUBLIC/transparency)."
}

cmd_kill() {
  local name=${1:?name of a process}
  alive "$DIR/$name/pid" || die "$name is not running"
  kill -KILL "$(cat "$DIR/$name/pid")"
  echo "$name killed with SIGKILL"
}

case ${1:-start} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) shift; cmd_kill "$@" ;;
  *) die "usage: $0 start|stop|status|kill NAME" ;;
esac
