#!/usr/bin/env bash
# User-space instructions per request under callgrind: the repeatable figure on a noisy machine (see
# bench/README.md). The router and the mock upstream (examples/bench_upstream.rs) both run under callgrind;
# for each scenario both counters are zeroed, wrk sends load at one connection, and each total is divided
# by the requests completed. The upstream's own figure is the cost of answering directly, so the ratio
# says how much the router adds relative to the upstream's own work.
#
#   bench/instructions.sh                           # every scenario, target/release binaries (built first)
#   ROUTER_BIN=/other/llm-router bench/instructions.sh oai oai-stream
#
# Scenarios: oai ant oai-stream ant-stream ant-oai oai-ant ant-oai-stream oai-ant-stream, and the Responses
# client on both upstream kinds: rsp-oai rsp-ant rsp-oai-stream rsp-ant-stream (a Codex-shaped body: typed
# items, content as lists of parts), and rsp-plain-ant (the same conversation as the Chat body, in the
# Responses API's short form: role and string content, as the OpenAI SDK sends it); the Gemini client on both:
# gem-oai gem-ant gem-oai-stream gem-ant-stream (the same conversation, the group in the path); and the
# built-in mock upstream (`api_type: mock`, no network upstream at all: the router's own cost, its upstream
# column 0): oai-mock ant-mock oai-mock-stream ant-mock-stream
# Environment: ROUTER_BIN (a router binary to measure instead of this tree's), SECONDS_PER_SCENARIO (5),
# RULES=10 (the ten routing rules of bench/rules.yaml, which every request is checked against and none
# matches, so the whole rule path is paid), PROFILE_DIR (keep each scenario's router dumps there, as
# NAME.router.*, for `callgrind_annotate --inclusive=yes`; build with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
# to see file names and lines).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_SCENARIO=${SECONDS_PER_SCENARIO:-5}
SCENARIOS=("$@")
((${#SCENARIOS[@]})) || SCENARIOS=(oai ant oai-stream ant-stream ant-oai oai-ant ant-oai-stream oai-ant-stream
    rsp-oai rsp-ant rsp-oai-stream rsp-ant-stream rsp-plain-ant gem-oai gem-ant gem-oai-stream gem-ant-stream
    oai-mock ant-mock oai-mock-stream ant-mock-stream)

for tool in valgrind callgrind_control wrk curl; do
    command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install valgrind wrk curl)" >&2; exit 1; }
done
cargo build --release -j2 --manifest-path "$ROOT/Cargo.toml" --bin llm-router --example bench_upstream >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
ROUTER_BIN=${ROUTER_BIN:-$TARGET/llm-router}

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
    for _ in $(seq 200); do
        curl -s -o /dev/null "$1" && return
        sleep 0.1
    done
    echo "bench: $1 never answered" >&2
    exit 1
}
upstream_port=$(free_port)
router_port=$(free_port)

valgrind -q --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/upstream.out" \
    "$TARGET/examples/bench_upstream" "$upstream_port" >/dev/null 2>"$work/upstream.log" &
upstream=$!
pids+=($upstream)
cat >"$work/config.yaml" <<EOF
model_list:
  - model_name: oai
    llm_params: {api_type: openai, model: bench-model, api_base: "http://127.0.0.1:$upstream_port/v1", api_key: sk-bench}
  - model_name: ant
    llm_params: {api_type: anthropic, model: bench-model, api_base: "http://127.0.0.1:$upstream_port", api_key: sk-bench}
  - model_name: mock
    llm_params: {api_type: mock, model: bench-model, mock_stream_chunk_chars: 4}
router_settings:
  model_groups:
    - {name: oai-group, models: [{name: oai}]}
    - {name: ant-group, models: [{name: ant}]}
    - {name: mock-group, models: [{name: mock}]}
EOF
# The ten rules of bench/rules.yaml, under router_settings.
[[ ${RULES:-0} == 10 ]] && cat "$ROOT/bench/rules.yaml" >>"$work/config.yaml"
valgrind -q --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/router.out" \
    "$ROUTER_BIN" -i 127.0.0.1 -p "$router_port" -c "$work/config.yaml" -l error 2>"$work/router.log" &
router=$!
pids+=($router)
wait_http "http://127.0.0.1:$router_port/health"
wait_http "http://127.0.0.1:$upstream_port/"

# Sums the instruction totals of the dumps callgrind wrote since the last call (one per thread); with a
# second argument, moves them into PROFILE_DIR under that name instead of deleting them.
dumped() {
    local prefix=$1 keep=${2:-} total=0 file
    for file in "$prefix".*; do
        [[ -e $file ]] || continue
        total=$((total + $(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$file")))
        if [[ -n $keep && -n ${PROFILE_DIR:-} ]]; then
            mkdir -p "$PROFILE_DIR"
            mv "$file" "$PROFILE_DIR/$keep.router.${file##*.}"
        else
            rm -f "$file"
        fi
    done
    echo "$total"
}

# name: client body, router path, group
declare -A BODY=([oai]=openai [ant]=anthropic [oai-stream]=openai-stream [ant-stream]=anthropic-stream
    [ant-oai]=anthropic [oai-ant]=openai [ant-oai-stream]=anthropic-stream [oai-ant-stream]=openai-stream
    [rsp-oai]=responses [rsp-ant]=responses [rsp-oai-stream]=responses-stream [rsp-ant-stream]=responses-stream
    [rsp-plain-ant]=responses-plain [gem-oai]=gemini [gem-ant]=gemini [gem-oai-stream]=gemini [gem-ant-stream]=gemini
    [oai-mock]=openai [ant-mock]=anthropic [oai-mock-stream]=openai-stream [ant-mock-stream]=anthropic-stream)
declare -A GROUP=([oai]=oai-group [ant]=ant-group [oai-stream]=oai-group [ant-stream]=ant-group
    [ant-oai]=oai-group [oai-ant]=ant-group [ant-oai-stream]=oai-group [oai-ant-stream]=ant-group
    [rsp-oai]=oai-group [rsp-ant]=ant-group [rsp-oai-stream]=oai-group [rsp-ant-stream]=ant-group
    [rsp-plain-ant]=ant-group [gem-oai]=oai-group [gem-ant]=ant-group [gem-oai-stream]=oai-group
    [gem-ant-stream]=ant-group [oai-mock]=mock-group [ant-mock]=mock-group [oai-mock-stream]=mock-group
    [ant-mock-stream]=mock-group)

printf 'router: %s\n' "$ROUTER_BIN"
printf '%-16s %10s %14s %16s %8s\n' scenario requests 'router instr' 'upstream instr' ratio
callgrind_control -i on "$router" >/dev/null 2>&1
callgrind_control -i on "$upstream" >/dev/null 2>&1
for name in "${SCENARIOS[@]}"; do
    body=${BODY[$name]:?unknown scenario $name}
    path=/v1/chat/completions
    [[ $body == anthropic* ]] && path=/v1/messages
    [[ $body == responses* ]] && path=/v1/responses
    # A Gemini client names the group, and asks for a stream, in the path.
    if [[ $body == gemini ]]; then
        path=/v1beta/models/${GROUP[$name]}:generateContent
        [[ $name == *-stream ]] && path=/v1beta/models/${GROUP[$name]}:streamGenerateContent?alt=sse
    fi
    sed "s/\"model\": \"[^\"]*\"/\"model\": \"${GROUP[$name]}\"/" "$ROOT/bench/requests/$body.json" >"$work/body.json"
    url=http://127.0.0.1:$router_port$path
    wrk -t1 -c1 -d2s -s "$ROOT/bench/wrk.lua" "$url" -- "$work/body.json" >/dev/null
    callgrind_control -z "$router" >/dev/null 2>&1
    callgrind_control -z "$upstream" >/dev/null 2>&1
    result=$(wrk -t1 -c1 -d"${SECONDS_PER_SCENARIO}s" -s "$ROOT/bench/wrk.lua" "$url" -- "$work/body.json" | grep '^RESULT')
    callgrind_control -d "$router" >/dev/null 2>&1
    callgrind_control -d "$upstream" >/dev/null 2>&1
    requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$result")
    if [[ -z $requests || $requests == 0 ]]; then
        # E.g. the first Anthropic stream on an OpenAI upstream loads the tokenizer, slow under callgrind.
        printf '%-16s %10s (no request completed; try a longer SECONDS_PER_SCENARIO)\n' "$name" 0
        dumped "$work/router.out" >/dev/null
        dumped "$work/upstream.out" >/dev/null
        continue
    fi
    errors=$(sed -n 's/.*err_status=\([0-9]*\).*/\1/p' <<<"$result")
    ((errors == 0)) || echo "bench: $name: $errors non-2xx answers" >&2
    r=$(($(dumped "$work/router.out" "$name") / requests))
    u=$(($(dumped "$work/upstream.out") / requests))
    # The mock scenarios leave the upstream idle (a few stray instructions at most).
    if ((u < 100)); then
        printf '%-16s %10d %14d %16d %8s\n' "$name" "$requests" "$r" "$u" -
    else
        printf '%-16s %10d %14d %16d %8.2f\n' "$name" "$requests" "$r" "$u" "$(echo "$r / $u" | bc -l)"
    fi
done
