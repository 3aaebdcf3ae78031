#!/usr/bin/env bash
# The chat example (or another app) on N telefunc processes behind HAProxy, sharing broadcast
# through Redis, all on 127.0.0.1:
#
#   examples/scale-out/run.sh [--workers N] [--port PORT] [--app DIR] [--run-dir DIR]
#                             [--worker-ports P1,P2,...] [--no-install]
#
# --workers N     telefunc processes (default 3), named s1..sN, on ports 3001..3000+N
# --port PORT     HAProxy's port (default 8080): open http://127.0.0.1:PORT/
# --app DIR       the app root (default examples/chat, whose front end is built first)
# --run-dir DIR   where haproxy.cfg, the logs (sK.log, haproxy.log, redis.log) and the pid files
#                 (sK.pid, haproxy.pid, redis.pid) go (default: a new temporary folder)
# --worker-ports  the processes' ports instead of 3001..; --redis-port (default 6390) likewise
# --no-install    skip the install step (bootstrap.sh, the chat bundle)
#
# Installs what it needs first (Debian haproxy and redis-server when missing and root, the venv,
# npm packages). Prints "ready: http://127.0.0.1:PORT/" once everything answers; Ctrl-C (or
# SIGTERM) stops every process it started.
set -euo pipefail
export PATH="$PATH:/usr/sbin"  # Debian's haproxy lives there, outside a user's PATH
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

workers=3
port=8080
app="$repo/examples/chat"
run_dir=""
worker_ports=""
redis_port=6390
install=1
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --app) app=$(cd "$2" && pwd); shift 2 ;;
    --run-dir) run_dir=$2; shift 2 ;;
    --worker-ports) worker_ports=$2; shift 2 ;;
    --redis-port) redis_port=$2; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$workers" in ''|*[!0-9]*|0) echo "run.sh: --workers must be a positive number" >&2; exit 2 ;; esac

if [ "$install" = 1 ]; then
  TELEFUNC_APT_PACKAGES="haproxy redis-server" bash "$repo/scripts/bootstrap.sh"
  if [ "$app" = "$repo/examples/chat" ]; then
    echo "==> building the chat front end (telefunc codegen + esbuild)"
    (cd "$repo/js" && node scripts/build-example.mjs chat)
  fi
fi

if [ -z "$worker_ports" ]; then
  worker_ports=$(seq -s, 3001 $((3000 + workers)))
fi
IFS=, read -r -a ports <<<"$worker_ports"
if [ "${#ports[@]}" != "$workers" ]; then
  echo "run.sh: --worker-ports names ${#ports[@]} ports for $workers workers" >&2
  exit 2
fi
if [ -z "$run_dir" ]; then run_dir=$(mktemp -d -t telefunc-scale-out.XXXXXX); fi
mkdir -p "$run_dir"

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (bounded) until something accepts TCP connections on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
      echo "run.sh: $3 exited during start-up (log: $run_dir/$3.log)" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "run.sh: nothing listens on port $1 after 30 s (log: $run_dir/$3.log)" >&2
  exit 1
}

echo "==> redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$run_dir" >"$run_dir/redis.log" 2>&1 &
pids+=($!); echo $! >"$run_dir/redis.pid"
wait_port "$redis_port" $! redis

use_servers=""
servers=""
for k in $(seq 1 "$workers"); do
  name="s$k"
  p=${ports[$((k - 1))]}
  echo "==> telefunc serve $name on 127.0.0.1:$p"
  "$repo/.venv/bin/telefunc" serve "$app" --host 127.0.0.1 --port "$p" \
    --redis "redis://127.0.0.1:$redis_port" --server-id "$name" >"$run_dir/$name.log" 2>&1 &
  pids+=($!); echo $! >"$run_dir/$name.pid"
  use_servers+="    use-server $name if { urlp(session) -m beg $name. }"$'\n'
  use_servers+="    use-server $name if { req.hdr(x-telefunc-session) -m beg $name. }"$'\n'
  servers+="    server $name 127.0.0.1:$p cookie $name check inter 500ms fall 2 rise 2"$'\n'
done
for k in $(seq 1 "$workers"); do
  wait_port "${ports[$((k - 1))]}" "$(cat "$run_dir/s$k.pid")" "s$k"
done

cfg="$run_dir/haproxy.cfg"
while IFS= read -r line; do
  case "$line" in
    @USE_SERVERS@) printf '%s' "$use_servers" ;;
    @SERVERS@) printf '%s' "$servers" ;;
    *) printf '%s\n' "${line//@PORT@/$port}" ;;
  esac
done <"$here/haproxy.cfg.in" >"$cfg"
haproxy -c -q -f "$cfg"
echo "==> haproxy on 127.0.0.1:$port ($cfg)"
haproxy -db -f "$cfg" >"$run_dir/haproxy.log" 2>&1 &
pids+=($!); echo $! >"$run_dir/haproxy.pid"
wait_port "$port" $! haproxy

echo "ready: http://127.0.0.1:$port/ ($workers processes; logs and pids in $run_dir)"
# Until HAProxy exits (or Ctrl-C): a telefunc process may die (try kill -9 on one) while its
# clients fail over to the others.
wait "$(cat "$run_dir/haproxy.pid")" || true
echo "run.sh: haproxy exited; stopping the other processes" >&2
