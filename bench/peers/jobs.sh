#!/usr/bin/env bash
# `jobs` as one more peer of the shared peer benchmarks (../shared/bench/peers beside this
# project, or PEERS_DIR): the same operations, measured by the same common.sh, against the
# same Redis. usage: bench/peers/jobs.sh setup|enqueue|bulk|process|latency|monitor|all
PEER=jobs
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$ROOT/../shared/bench/peers}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench"

peer_setup() {
  command -v cargo >/dev/null || die "cargo is required"
  (cd "$ROOT" && cargo build --release --quiet --example bench) >&2 || die "cargo build failed"
}
peer_version() { awk -F'"' '/^version = / {print $2; exit}' "$ROOT/Cargo.toml"; }
peer_produce() { exec "$BIN" produce "$@"; }
peer_worker() { exec "$BIN" work "$@"; }

[ -f "$PEERS_DIR/common.sh" ] || { echo "no common.sh in $PEERS_DIR; set PEERS_DIR" >&2; exit 2; }
source "$PEERS_DIR/common.sh"
peer_main "$@"
