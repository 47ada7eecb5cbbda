#!/usr/bin/env bash
# One command for BENCHMARKS.md: `jobs` and its peers (Ruby Sidekiq, BullMQ, rusty-sidekiq,
# apalis, arq) on one dedicated Redis, in one run, interleaved, then the tables.
#
#   bench/run.sh                      # REPS=3 N=100000 (about 30 minutes on 2 cores)
#   REPS=1 N=20000 bench/run.sh       # a quick look
#   PEERS="jobs bullmq" bench/run.sh  # a subset
#
# It starts its own redis-server (no persistence) on a free port and stops it at the end. It
# first runs `cargo run --release --example bench` (the figures no peer script measures:
# concurrent enqueue, the scheduler, one-at-a-time enqueue against raw LPUSH round trips),
# then each operation for each peer in turn through the peers' common.sh. Results go to
# $BENCH_TMP/results-<time>.txt; the summary is printed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PEERS_DIR="${PEERS_DIR:-$ROOT/../shared/bench/peers}"
PEERS="${PEERS:-jobs sidekiq_ruby bullmq rusty_sidekiq apalis arq}"
REPS="${REPS:-3}"
RAW="${RAW:-1}"
export N="${N:-100000}" LAT_N="${LAT_N:-1000}" LAT_GAP_MS="${LAT_GAP_MS:-5}"
CONCS="${CONCS:-10 50}"
export BENCH_TMP="${BENCH_TMP:-/tmp/jobs-bench}"
mkdir -p "$BENCH_TMP"
RESULTS="${RESULTS:-$BENCH_TMP/results-$(date +%Y%m%d-%H%M%S).txt}"

script_of() { # the peer's script: ours in this project, the others beside common.sh
  if [ "$1" = jobs ]; then echo "$ROOT/bench/peers/jobs.sh"; else echo "$PEERS_DIR/$1.sh"; fi
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --save '' --appendonly no --daemonize yes \
  --pidfile "$BENCH_TMP/redis-$port.pid" >/dev/null
trap 'kill "$(cat "$BENCH_TMP/redis-$port.pid")" 2>/dev/null || true' EXIT
export REDIS_URL="redis://127.0.0.1:$port"
for _ in $(seq 1 50); do redis-cli -u "$REDIS_URL" PING >/dev/null 2>&1 && break; sleep 0.1; done

echo "# bench/run.sh $(date -Is) N=$N CONCS='$CONCS' REPS=$REPS LAT_N=$LAT_N cores=$(nproc) redis=$(redis-server --version | sed -E 's/.* v=([^ ]+).*/\1/')" | tee -a "$RESULTS"
for p in $PEERS; do "$(script_of "$p")" setup; done
(cd "$ROOT" && "${CARGO_TARGET_DIR:-target}/release/examples/bench" extras "$N") | tee -a "$RESULTS"

rotate() { local first=$1; shift; echo "$@" "$first"; }
order="$PEERS"
for r in $(seq 1 "$REPS"); do
  echo "# rep $r order: $order" | tee -a "$RESULTS"
  if [ "$RAW" = 1 ]; then REPS=1 "$PEERS_DIR/raw_redis.sh" | tee -a "$RESULTS"; fi
  for p in $order; do "$(script_of "$p")" enqueue | tee -a "$RESULTS"; done
  for p in $order; do "$(script_of "$p")" bulk | tee -a "$RESULTS"; done
  for c in $CONCS; do
    for p in $order; do CONCS="$c" "$(script_of "$p")" process | tee -a "$RESULTS"; done
  done
  for p in $order; do "$(script_of "$p")" latency | tee -a "$RESULTS"; done
  order=$(rotate $order)
done
echo "# done $(date -Is)" | tee -a "$RESULTS"
echo "results: $RESULTS" >&2
"$PEERS_DIR/summarize.py" "$RESULTS"
