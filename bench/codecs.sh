#!/usr/bin/env bash
# Instructions per call of each conversion step, under callgrind, with no sockets (examples/codec_cost.rs):
# the quick loop for work on a codec. bench/instructions.sh stays the figure for whole requests.
#
#   bench/codecs.sh                          # every step
#   bench/codecs.sh ant-oai-request raw-body # some steps
# Environment: ITERATIONS (2000), BODY (a client body file to use instead of the bench's, for the decode and
# request steps).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITERATIONS=${ITERATIONS:-2000}
STEPS=("$@")
((${#STEPS[@]})) || STEPS=(raw-body oai-decode ant-decode rsp-decode gem-decode
    ant-oai-request oai-ant-request rsp-oai-request rsp-ant-request
    ant-oai-answer oai-ant-answer rsp-oai-answer rsp-ant-answer
    ant-oai-stream oai-ant-stream rsp-oai-stream rsp-ant-stream gem-oai-request gem-ant-request gem-oai-answer
    gem-ant-answer gem-oai-stream gem-ant-stream token-count)

command -v valgrind >/dev/null || { echo "bench: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -j2 --manifest-path "$ROOT/Cargo.toml" --example codec_cost >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/codec_cost
out=$(mktemp)
trap 'rm -f "$out"' EXIT

printf '%-18s %14s\n' step 'instr/call'
for step in "${STEPS[@]}"; do
    valgrind -q --tool=callgrind --callgrind-out-file="$out" --toggle-collect='codec_cost::measure' \
        "$BIN" "$step" "$ITERATIONS" >/dev/null
    total=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$out")
    printf '%-18s %14d\n' "$step" $((total / ITERATIONS))
done
