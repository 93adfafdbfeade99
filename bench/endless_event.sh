#!/usr/bin/env bash
# The endless-event case: an upstream answers a streamed request with one SSE event that never ends (96 MiB
# without a newline, then it closes). Prints how long the client waited for the end of its answer, what it
# received, and the router's peak RSS, so a build can be compared with another in one run:
#
#   bench/endless_event.sh                      # target/release/llm-router (built first)
#   ROUTER_BIN=/path/to/llm-router bench/endless_event.sh
#
# Environment: ROUTER_BIN (skip the build and use this binary), FLOOD_MIB (default 96).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOOD_MIB=${FLOOD_MIB:-96}
if [[ -z "${ROUTER_BIN:-}" ]]; then
    cargo build --release -j2 --manifest-path "$ROOT/Cargo.toml" >&2
    ROUTER_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/llm-router
fi
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port)
router_port=$(free_port)

# The flooding upstream: reads one request, answers 200 text/event-stream, writes the endless event, closes.
python3 - "$upstream_port" "$FLOOD_MIB" <<'EOF' &
import socket, sys
port, mib = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(8)
piece = b"a" * 65536
while True:
    conn, _ = server.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            break
        data += more
    if b"\r\n\r\n" not in data:
        conn.close()
        continue
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    try:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: {\"id\":\"")
        for _ in range(mib * 16):
            conn.sendall(piece)
    except OSError:
        pass
    conn.close()
EOF
pids+=($!)
until (: >"/dev/tcp/127.0.0.1/$upstream_port") 2>/dev/null; do sleep 0.05; done

cat >"$work/config.yaml" <<EOF
model_list:
  - model_name: flood
    llm_params: {api_type: openai, model: m, api_base: "http://127.0.0.1:$upstream_port", timeout: 120}
router_settings:
  num_retries: 0
EOF
"$ROUTER_BIN" -c "$work/config.yaml" -i 127.0.0.1 -p "$router_port" -l warn 2>"$work/router.log" &
router=$!
pids+=($router)
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$router_port/health" && break
    sleep 0.05
done

start=$(date +%s.%N)
curl -s -N -o "$work/answer" -w '%{http_code}' --max-time 120 \
    -H 'content-type: application/json' \
    -d '{"model":"flood","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$router_port/v1/chat/completions" >"$work/status" || true
end=$(date +%s.%N)
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$router/status")
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$router/stat")

printf 'router: %s\n' "$ROUTER_BIN"
printf 'client: HTTP %s, %s bytes, answer closed after %.2f s\n' "$(cat "$work/status")" \
    "$(stat -c %s "$work/answer")" "$(echo "$end - $start" | bc)"
printf 'router: peak RSS %.1f MiB, CPU %.2f s\n' "$(echo "$rss_kib / 1024" | bc -l)" \
    "$(echo "$cpu_ticks / $(getconf CLK_TCK)" | bc -l)"
printf 'answer starts: %s\n' "$(head -c 200 "$work/answer")"
