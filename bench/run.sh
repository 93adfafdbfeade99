#!/usr/bin/env bash
# Router vs direct, in one run: the same load (wrk) against a fast mock upstream (examples/bench_upstream.rs)
# directly and through llm-router. See bench/README.md for what the columns mean.
#
#   bench/run.sh                       # defaults: 5 s per cell, 1 s warm-up, concurrency 1 and 64
#   BENCH_DURATION=10 bench/run.sh     # longer cells
#   BENCH_ONLY='^oai' bench/run.sh     # only the scenarios whose name matches this (extended) regex
#
# Environment: BENCH_DURATION (s, default 5), BENCH_WARMUP (s, default 1, 0 = none), BENCH_CONCURRENCY
# (default "1 64"), BENCH_THREADS (wrk threads, default 1), BENCH_ONLY (regex), BENCH_BUILD (0 = use the
# binaries already built), BENCH_CSV (also write every cell to this CSV file), CARGO_TARGET_DIR as for cargo.
set -euo pipefail

DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-"1 64"}
THREADS=${BENCH_THREADS:-1}
ONLY=${BENCH_ONLY:-}
BUILD=${BENCH_BUILD:-1}
CSV=${BENCH_CSV:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
REQUESTS=$BENCH/requests

# The scenarios. One row each: a client body (in bench/requests) posted to the router's path with its
# "model" set to the group; and the body and path of the equivalent direct call to the upstream (what the
# router itself sends upstream). Converted routes are rows whose client protocol differs from the group's.
# optional=yes: when the router answers non-2xx, the row is reported as skipped instead of failing the run.
# Direct cells are measured once per (direct body, direct path, concurrency) and shared between rows.
SCENARIOS=(
  # name            client body            router path           group      direct body            direct path           optional
  "oai              openai.json            /v1/chat/completions  oai-group  openai.json            /v1/chat/completions  no"
  "oai-stream       openai-stream.json     /v1/chat/completions  oai-group  openai-stream.json     /v1/chat/completions  no"
  "ant              anthropic.json         /v1/messages          ant-group  anthropic.json         /v1/messages          no"
  "ant-stream       anthropic-stream.json  /v1/messages          ant-group  anthropic-stream.json  /v1/messages          no"
  "ant->oai         anthropic.json         /v1/messages          oai-group  openai.json            /v1/chat/completions  yes"
  "ant->oai-stream  anthropic-stream.json  /v1/messages          oai-group  openai-stream.json     /v1/chat/completions  yes"
  "oai->ant         openai.json            /v1/chat/completions  ant-group  anthropic.json         /v1/messages          yes"
  "oai->ant-stream  openai-stream.json     /v1/chat/completions  ant-group  anthropic-stream.json  /v1/messages          yes"
)

log() { printf '%s\n' "$*" >&2; }
die() {
  log "bench: $*"
  exit 1
}

for n in "$DURATION" "$WARMUP" "$THREADS"; do
  [[ $n =~ ^[0-9]+$ ]] || die "BENCH_DURATION, BENCH_WARMUP and BENCH_THREADS must be whole numbers"
done
((DURATION > 0 && THREADS > 0)) || die "BENCH_DURATION and BENCH_THREADS must be positive"
for c in $CONCURRENCY; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONCURRENCY must be positive whole numbers, got '$c'"
done
[[ -r /proc/self/stat ]] || die "needs Linux /proc (CPU time and RSS are read from it)"

# --- tools -----------------------------------------------------------------------------------------------

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    log "bench: installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    die "missing ${missing[*]}: install it (Debian/Ubuntu: apt-get install ${missing[*]}; macOS: brew install ${missing[*]})"
  fi
fi

cd "$ROOT"
if [[ $BUILD != 0 ]]; then
  log "bench: building llm-router and examples/bench_upstream (release)"
  cargo build --release -j2 --bin llm-router --example bench_upstream >&2
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $TARGET ]] || die "cannot find cargo's target directory"
ROUTER_BIN=$TARGET/release/llm-router
UPSTREAM_BIN=$TARGET/release/examples/bench_upstream
[[ -x $ROUTER_BIN && -x $UPSTREAM_BIN ]] || die "binaries not found under $TARGET/release (run without BENCH_BUILD=0)"

# --- processes -------------------------------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/llm-router-bench.XXXXXX")
UPSTREAM_PID=
ROUTER_PID=
cleanup() {
  local pid
  for pid in $ROUTER_PID $UPSTREAM_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $ROUTER_PID $UPSTREAM_PID; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits for "... listening on http://127.0.0.1:PORT" in a log file and prints PORT.
wait_port() {
  local file=$1 pid=$2 name=$3 port
  for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$file" | head -n1)
    if [[ -n $port ]]; then
      printf '%s\n' "$port"
      return
    fi
    kill -0 "$pid" 2>/dev/null || {
      cat "$file" >&2
      die "$name exited at startup"
    }
    sleep 0.05
  done
  cat "$file" >&2
  die "$name did not start listening"
}

"$UPSTREAM_BIN" 0 1 >"$TMP/upstream.log" 2>&1 &
UPSTREAM_PID=$!
UPSTREAM_PORT=$(wait_port "$TMP/upstream.log" "$UPSTREAM_PID" bench_upstream)
UPSTREAM=http://127.0.0.1:$UPSTREAM_PORT

cat >"$TMP/config.yaml" <<EOF
model_list:
  - model_name: oai
    llm_params: {api_type: openai, model: bench-model, api_base: "$UPSTREAM/v1", api_key: sk-bench}
  - model_name: ant
    llm_params: {api_type: anthropic, model: bench-model, api_base: "$UPSTREAM", api_key: sk-bench}
router_settings:
  model_groups:
    - name: oai-group
      models: [{name: oai}]
    - name: ant-group
      models: [{name: ant}]
EOF

# The router's own flags only: no token, no proxy, whatever the caller's environment says.
env -u LLM_ROUTER_TOKEN -u LLM_ROUTER_PROXY -u LLM_ROUTER_CONFIG -u LLM_ROUTER_LOG_LEVEL -u RUST_LOG \
  "$ROUTER_BIN" -i 127.0.0.1 -p 0 -c "$TMP/config.yaml" -l error >"$TMP/router.log" 2>&1 &
ROUTER_PID=$!
ROUTER_PORT=$(wait_port "$TMP/router.log" "$ROUTER_PID" llm-router)
ROUTER=http://127.0.0.1:$ROUTER_PORT

# --- measuring -------------------------------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)

# utime + stime of a process (all its threads), in clock ticks.
cpu_ticks() {
  local line rest
  read -r line <"/proc/$1/stat"
  rest=${line##*) } # fields from 3 (state) on; the command name may hold spaces
  # shellcheck disable=SC2086
  set -- $rest
  printf '%s\n' $((${12} + ${13}))
}

rss_kib() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# A body file with its top-level "model" set: prepared_body FILE MODEL -> path of the copy.
prepared_body() {
  local src=$REQUESTS/$1 out="$TMP/body.${2}.$1"
  [[ -r $src ]] || die "no request body $src"
  [[ -e $out ]] || sed -E "s/\"model\"[[:space:]]*:[[:space:]]*\"[^\"]*\"/\"model\": \"$2\"/" "$src" >"$out"
  printf '%s\n' "$out"
}

# One POST with curl: prints the HTTP status; the answer is left in $TMP/probe.out.
probe() {
  curl -sS --noproxy '*' -o "$TMP/probe.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H 'anthropic-version: 2023-06-01' --data-binary "@$2" "$1" || printf '000'
}

# run_wrk URL BODY CONCURRENCY SECONDS: prints wrk's RESULT line as "key=value ..." words.
run_wrk() {
  local threads=$THREADS out
  ((threads > $3)) && threads=$3
  out=$(wrk -t "$threads" -c "$3" -d "${4}s" --timeout 10s -s "$BENCH/wrk.lua" "$1" -- "$2" 2>&1) ||
    die "wrk failed on $1: $out"
  grep '^RESULT ' <<<"$out" | sed 's/^RESULT //' || die "wrk printed no result on $1: $out"
}

# field NAME "k=v k=v ..." -> v
field() {
  local kv
  for kv in $2; do
    [[ ${kv%%=*} == "$1" ]] && {
      printf '%s\n' "${kv#*=}"
      return
    }
  done
  printf '0\n'
}

# measure URL BODY CONCURRENCY [router]: warm-up, then the measured run. Prints
# "rps p50 p99 errors router_cpu_us_per_req upstream_cpu_us_per_req router_rss_kib".
measure() {
  local url=$1 body=$2 conc=$3 with_router=${4:-} r0=0 r1=0 u0 u1 result requests seconds errors e
  ((WARMUP > 0)) && run_wrk "$url" "$body" "$conc" "$WARMUP" >/dev/null
  [[ -n $with_router ]] && r0=$(cpu_ticks "$ROUTER_PID")
  u0=$(cpu_ticks "$UPSTREAM_PID")
  result=$(run_wrk "$url" "$body" "$conc" "$DURATION")
  u1=$(cpu_ticks "$UPSTREAM_PID")
  [[ -n $with_router ]] && r1=$(cpu_ticks "$ROUTER_PID")
  requests=$(field requests "$result")
  seconds=$(field duration_us "$result")
  errors=0
  for e in err_status err_connect err_read err_write err_timeout; do
    errors=$((errors + $(field "$e" "$result")))
  done
  awk -v n="$requests" -v us="$seconds" -v p50="$(field p50_us "$result")" -v p99="$(field p99_us "$result")" \
    -v err="$errors" -v rt=$((r1 - r0)) -v ut=$((u1 - u0)) -v hz="$CLK_TCK" -v router="$with_router" \
    -v rss="$([[ -n $with_router ]] && rss_kib "$ROUTER_PID" || echo -)" 'BEGIN {
      rps = us > 0 ? n / (us / 1e6) : 0
      per = n > 0 ? 1e6 / hz / n : 0
      rcpu = router ? sprintf("%.1f", rt * per) : "-"
      printf "%.0f %d %d %d %s %.1f %s\n", rps, p50, p99, err, rcpu, ut * per, rss
    }'
}

# --- the run ---------------------------------------------------------------------------------------------

log "bench: upstream $UPSTREAM (pid $UPSTREAM_PID), router $ROUTER (pid $ROUTER_PID)"
log "bench: ${DURATION}s per cell after ${WARMUP}s warm-up; concurrency: $CONCURRENCY; wrk threads: $THREADS"

declare -A DIRECT=() # "direct body|direct path|concurrency" -> measure line
CELLS=()             # "name conc target rps p50 p99 errors router_cpu upstream_cpu rss"
RATIOS=()            # "name conc rps_ratio added_p50 p99_ratio router_cpu rss" or "name - skipped ..."

for row in "${SCENARIOS[@]}"; do
  read -r name body path group direct_body direct_path optional <<<"$row"
  [[ -n $ONLY && ! $name =~ $ONLY ]] && continue

  router_body=$(prepared_body "$body" "$group")
  up_body=$(prepared_body "$direct_body" bench-model)

  status=$(probe "$UPSTREAM$direct_path" "$up_body")
  [[ $status == 2?? ]] || die "$name: the upstream answered $status on $direct_path: $(head -c 300 "$TMP/probe.out")"
  status=$(probe "$ROUTER$path" "$router_body")
  if [[ $status != 2?? ]]; then
    if [[ $optional == yes ]]; then
      log "bench: $name: skipped (router answered $status)"
      RATIOS+=("$name skipped (router answered $status)")
      continue
    fi
    die "$name: the router answered $status on $path: $(head -c 300 "$TMP/probe.out")"
  fi

  for conc in $CONCURRENCY; do
    key="$direct_body|$direct_path|$conc"
    if [[ -z ${DIRECT[$key]:-} ]]; then
      log "bench: $name c=$conc direct"
      DIRECT[$key]=$(measure "$UPSTREAM$direct_path" "$up_body" "$conc")
    fi
    log "bench: $name c=$conc router"
    via=$(measure "$ROUTER$path" "$router_body" "$conc" router)
    CELLS+=("$name $conc direct ${DIRECT[$key]}" "$name $conc router $via")
    RATIOS+=("$(awk -v name="$name" -v c="$conc" -v d="${DIRECT[$key]}" -v r="$via" 'BEGIN {
      split(d, a, " "); split(r, b, " ")
      rps = a[1] > 0 ? b[1] / a[1] : 0
      p99 = a[3] > 0 ? b[3] / a[3] : 0
      printf "%s %s %.2f %+d %.2f %s %s\n", name, c, rps, b[2] - a[2], p99, b[5], b[7]
    }')")
  done
done

# --- report ----------------------------------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
# Uncommitted changes, not counting Cargo.lock (cargo rewrites it itself when it lags Cargo.toml).
dirty=
if [[ -n $(git -C "$ROOT" status --porcelain -- . ':!Cargo.lock' 2>/dev/null) ]]; then
  dirty=+dirty
fi
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "llm-router bench: commit $commit$dirty, $(nproc) cores (${cpu:-unknown cpu}), wrk -t$THREADS, ${DURATION}s per cell after ${WARMUP}s warm-up"
echo
printf '%-16s %5s %-7s %9s %9s %9s %7s %12s %12s %9s\n' \
  scenario conc target req/s p50_us p99_us errors router_cpu_us up_cpu_us rss_MiB
for cell in "${CELLS[@]}"; do
  read -r name conc target rps p50 p99 errors rcpu ucpu rss <<<"$cell"
  [[ $rss == - ]] || rss=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
  printf '%-16s %5s %-7s %9s %9s %9s %7s %12s %12s %9s\n' \
    "$name" "$conc" "$target" "$rps" "$p50" "$p99" "$errors" "$rcpu" "$ucpu" "$rss"
done
echo
echo "router / direct (same concurrency, measured back to back)"
printf '%-16s %5s %10s %12s %10s %14s %9s\n' scenario conc req/s_ratio added_p50_us p99_ratio router_cpu_us rss_MiB
for line in "${RATIOS[@]}"; do
  read -r name rest <<<"$line"
  if [[ $rest == skipped* ]]; then
    printf '%-16s %5s %s\n' "$name" - "$rest"
    continue
  fi
  read -r conc rps_ratio added p99_ratio rcpu rss <<<"$rest"
  rss=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
  printf '%-16s %5s %10s %12s %10s %14s %9s\n' "$name" "$conc" "$rps_ratio" "$added" "$p99_ratio" "$rcpu" "$rss"
done

if [[ -n $CSV ]]; then
  {
    echo "scenario,concurrency,target,req_per_s,p50_us,p99_us,errors,router_cpu_us_per_req,upstream_cpu_us_per_req,router_rss_kib"
    for cell in "${CELLS[@]}"; do
      tr ' ' ',' <<<"$cell"
    done
  } >"$CSV"
  log "bench: cells written to $CSV"
fi

# Errors in any cell make the numbers suspect: say so in the exit code.
for cell in "${CELLS[@]}"; do
  read -r _ _ _ _ _ _ errors _ <<<"$cell"
  if ((errors > 0)); then
    log "bench: some cells had errors (non-2xx answers, timeouts or broken connections): see the errors column"
    exit 2
  fi
done
