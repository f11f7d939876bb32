#!/usr/bin/env bash
# Side-by-side load benchmark on loopback: the same MCP tools/call POST with the same bearer token
# through
#   direct     the upstream itself (the floor)
#   nginx      TLS termination and proxying, no auth
#   haproxy    TLS, RS256 jwt_verify, iss/aud/exp, the tool's scope read from the body
#   scopegate  the shipped customer-service policy (listen.runtime "per-core", the default)
#   scopegate-ws  the same in the "work-stealing" runtime shape
#   scopegate-rl  the same policy with a rate limit on the tool (far above any rate reached, so
#                 every call takes from its bucket and none is refused), buckets in the process
#   scopegate-redis  the same, buckets in Redis ([state] backend = "redis", a local redis-server)
#   scopegate-tenant  the shipped tenant-isolation policy: a CEL condition reading the token's
#                 tenant claim and the call's customer_id, beside the plain policy
#   scopegate-otel  the plain policy with tracing on: every request sampled, spans exported over
#                 OTLP/HTTP to a local sink that answers 200 and discards them
#   scopegate-prev  another scopegate binary (BENCH_PREV, e.g. a build of the previous commit) on
#                 the plain config: a before/after pair measured in the same rounds, which on a
#                 shared machine is the only way to see a difference of a few per cent
# Runs are interleaved and repeated; medians are reported. Then the SSE phase: many event streams
# held open direct and through scopegate, for scopegate's memory per open stream and the latency
# it adds to each event. Stops by itself.
#
#   bench/run.sh            full run (about 5 x ROUNDS x (DURATION + PACED) + 2 x SSE seconds plus
#                           the build)
#   bench/run.sh --smoke    a few seconds per target, debug build: checks that everything still works
#
# Knobs (environment): BENCH_DURATION (s, default 10), BENCH_PACED (s, default 6), BENCH_ROUNDS
# (default 3), BENCH_CONNS (default 32), BENCH_THREADS (wrk threads, default 1), BENCH_PORT (first
# of five ports, default 18080), BENCH_SSE_STREAMS (default 1000), BENCH_SSE_SECONDS (how long the
# streams are held once open, default 20), BENCH_TARGETS (the targets to run, space-separated, in
# the order above; default all of them: e.g. BENCH_TARGETS="direct scopegate scopegate-otel" for a
# short round; the SSE phase runs when direct and scopegate are both among them), BENCH_PREV (a
# scopegate binary for the scopegate-prev target; with it set, that target is among the
# default ones). Ports: BENCH_PORT and the twelve after it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$PATH:/usr/sbin:/sbin"

SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
DURATION=${BENCH_DURATION:-10}
PACED=${BENCH_PACED:-6}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-32}
THREADS=${BENCH_THREADS:-1}
PORT=${BENCH_PORT:-18080}
SSE_STREAMS=${BENCH_SSE_STREAMS:-1000}
SSE_SECONDS=${BENCH_SSE_SECONDS:-20}
PROFILE=release
if ((SMOKE)); then
  DURATION=${BENCH_DURATION:-3}; PACED=${BENCH_PACED:-2}; ROUNDS=${BENCH_ROUNDS:-1}; PROFILE=dev
  SSE_STREAMS=${BENCH_SSE_STREAMS:-50}; SSE_SECONDS=${BENCH_SSE_SECONDS:-3}
fi
UP_PORT=$PORT NGINX_PORT=$((PORT + 1)) HAPROXY_PORT=$((PORT + 2)) SG_PORT=$((PORT + 3)) SGWS_PORT=$((PORT + 4))
SGRL_PORT=$((PORT + 5)) SGR_PORT=$((PORT + 6)) REDIS_PORT=$((PORT + 7))
SGT_PORT=$((PORT + 8)) SGO_PORT=$((PORT + 9)) SGO_ADMIN_PORT=$((PORT + 10)) OTLP_PORT=$((PORT + 11))
SGP_PORT=$((PORT + 12))
PREV=${BENCH_PREV:-}
ALL_TARGETS=(direct nginx haproxy scopegate scopegate-ws scopegate-rl scopegate-redis scopegate-tenant scopegate-otel scopegate-prev)
DEFAULT_TARGETS=("${ALL_TARGETS[@]}")
[[ -n $PREV ]] || DEFAULT_TARGETS=("${ALL_TARGETS[@]:0:${#ALL_TARGETS[@]}-1}")
read -ra TARGETS <<<"${BENCH_TARGETS:-${DEFAULT_TARGETS[*]}}"
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "BENCH_TARGETS: no target $t (known: ${ALL_TARGETS[*]})" >&2; exit 1; }
done
((${#TARGETS[@]})) || { echo "BENCH_TARGETS names no target" >&2; exit 1; }
selected() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
if selected scopegate-prev && [[ ! -x $PREV ]]; then
  echo "scopegate-prev needs BENCH_PREV, the path of a scopegate binary (got '${PREV}')" >&2; exit 1
fi
ISSUER=https://issuer.bench.local
AUDIENCE=https://localhost:$SG_PORT/mcp

say() { printf '==> %s\n' "$*" >&2; }

# --- what the run needs ---------------------------------------------------------------------
# nginx also serves as scopegate-otel's span sink.
needs=(wrk:wrk h2load:nghttp2-client openssl:openssl curl:curl)
if selected nginx || selected scopegate-otel; then needs+=(nginx:nginx); fi
if selected haproxy; then needs+=(haproxy:haproxy); fi
if selected scopegate-redis; then needs+=(redis-server:redis-server redis-cli:redis-tools); fi
missing=()
for pair in "${needs[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
HAPROXY_VERSION="haproxy not run"
if selected haproxy; then
  HAPROXY_VERSION=$(haproxy -v | sed -n 1p)
  case "$HAPROXY_VERSION" in
    *" version 2."[0-4]"."*|*" version 1."*) echo "HAProxy 2.5 or later is needed for jwt_verify: $HAPROXY_VERSION" >&2; exit 1 ;;
  esac
fi

say "building scopegate, the upstream and the SSE client ($PROFILE)"
cargo build -q --profile "$PROFILE" -p scopegate --bin scopegate
cargo build -q --profile "$PROFILE" -p scopegate-bench --example bench-upstream --example bench-sse
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
OUT=$TARGET_DIR/$([[ $PROFILE == dev ]] && echo debug || echo release)
SCOPEGATE=$OUT/scopegate
UPSTREAM=$OUT/examples/bench-upstream
SSE_CLIENT=$OUT/examples/bench-sse

W=$(mktemp -d)
chmod 755 "$W"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# --- keys, token, certificate ---------------------------------------------------------------
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/jwt.key" 2>/dev/null
openssl pkey -in "$W/jwt.key" -pubout -out "$W/jwt.pub"
modulus=$(openssl rsa -in "$W/jwt.key" -noout -modulus | cut -d= -f2)
N=$(printf '%b' "$(sed 's/../\\x&/g' <<<"$modulus")" | b64url)
printf '{"keys":[{"kty":"RSA","kid":"bench","alg":"RS256","use":"sig","n":"%s","e":"AQAB"}]}' "$N" >"$W/jwks.json"
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"bench"}' | b64url)
# The tenant claim is what scopegate-tenant's condition reads: customer C-1001 is tenant C's.
claims=$(printf '{"iss":"%s","aud":"%s","sub":"bench-agent","client_id":"bench-agent","tenant":"C","scope":"customer:read ticket:create","iat":%d,"exp":%d}' \
  "$ISSUER" "$AUDIENCE" "$now" $((now + 86400)) | b64url)
signature=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign "$W/jwt.key" -binary | b64url)
export BENCH_TOKEN="$header.$claims.$signature"
export BENCH_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":"C-1001"}}}'
printf '%s' "$BENCH_BODY" >"$W/body.json"
# CA:FALSE: a self-signed end-entity certificate, which bench-sse (rustls) accepts as its own
# trust anchor; OpenSSL would mark it a CA, which rustls refuses to see as a server's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE \
  -keyout "$W/tls.key" -out "$W/tls.crt" 2>/dev/null
cat "$W/tls.crt" "$W/tls.key" >"$W/tls.pem"

# --- the targets ---------------------------------------------------------------------------
sed -e "s|@W@|$W|g" -e "s|@UP@|$UP_PORT|g" -e "s|@PORT@|$NGINX_PORT|g" bench/nginx.conf >"$W/nginx.conf"
sed -e "s|@W@|$W|g" -e "s|@UP@|$UP_PORT|g" -e "s|@PORT@|$HAPROXY_PORT|g" \
  -e "s|@ISSUER@|$ISSUER|g" -e "s|@AUDIENCE@|$AUDIENCE|g" bench/haproxy.cfg >"$W/haproxy.cfg"
sed -e "s|@W@|$W|g" -e "s|@UP@|$UP_PORT|g" -e "s|@PORT@|$SG_PORT|g" -e "s|@ROOT@|$ROOT|g" \
  -e "s|@ISSUER@|$ISSUER|g" -e "s|@AUDIENCE@|$AUDIENCE|g" bench/scopegate.toml >"$W/scopegate.toml"
sed -e "s|:$SG_PORT\"|:$SGWS_PORT\"|" "$W/scopegate.toml" >"$W/scopegate-ws.toml"
sed -e "s|:$SG_PORT\"|:$SGP_PORT\"|" "$W/scopegate.toml" >"$W/scopegate-prev.toml"
# The rate-limited pair: the same policy with a limit on the benchmarked tool, its buckets in the
# process or in Redis.
sed '/^name = "get_customer_info"/a rate_limit = "1000000/s"' policies/customer-service.toml >"$W/policy-rl.toml"
sed -e "s|:$SG_PORT\"|:$SGRL_PORT\"|" -e "s|^file = .*|file = \"$W/policy-rl.toml\"|" \
  "$W/scopegate.toml" >"$W/scopegate-rl.toml"
sed -e "s|:$SGRL_PORT\"|:$SGR_PORT\"|" "$W/scopegate-rl.toml" >"$W/scopegate-redis.toml"
printf '\n[state]\nbackend = "redis"\nurl = "redis://127.0.0.1:%s/0"\n' "$REDIS_PORT" >>"$W/scopegate-redis.toml"
# Tenant isolation: the shipped policy, its condition true for the benchmarked call.
sed -e "s|:$SG_PORT\"|:$SGT_PORT\"|" -e "s|^file = .*|file = \"$ROOT/policies/tenant-isolation.toml\"|" \
  "$W/scopegate.toml" >"$W/scopegate-tenant.toml"
# Tracing on: every request sampled and exported. The sink is a second nginx that answers each
# OTLP/HTTP export with 200 and logs it (what a collector costs is not scopegate's). The admin
# port is fixed, for the export and drop counts after the run.
sed -e "s|:$SG_PORT\"|:$SGO_PORT\"|" -e "s|^address = \"127.0.0.1:0\"|address = \"127.0.0.1:$SGO_ADMIN_PORT\"|" \
  "$W/scopegate.toml" >"$W/scopegate-otel.toml"
printf '\n[telemetry]\notlp_endpoint = "http://127.0.0.1:%s"\nsample_ratio = 1.0\n' "$OTLP_PORT" >>"$W/scopegate-otel.toml"
mkdir -p "$W/otlp"
sed -e "s|@W@|$W/otlp|g" -e "s|@PORT@|$OTLP_PORT|g" bench/otlp-sink.conf >"$W/otlp/nginx.conf"

# Every SSE stream through scopegate holds two descriptors there (client and upstream side), and
# one each in the upstream and the client.
fds=$((2 * SSE_STREAMS + 1024))
if [[ $(ulimit -Sn) != unlimited ]] && (($(ulimit -Sn) < fds)); then
  ulimit -Sn "$fds" || { echo "the SSE phase needs $fds open files: raise the hard limit (ulimit -Hn)" >&2; exit 1; }
fi
# Only the chosen targets are started (the upstream always: it serves the key set too).
"$UPSTREAM" "127.0.0.1:$UP_PORT" "$W/jwks.json" & PIDS+=($!); UP_PID=$!
if selected nginx; then
  nginx -p "$W" -e "$W/nginx.err" -c "$W/nginx.conf" -g 'daemon off;' & PIDS+=($!); NGINX_PID=$!
fi
if selected haproxy; then haproxy -f "$W/haproxy.cfg" -q & PIDS+=($!); HAPROXY_PID=$!; fi
if selected scopegate; then
  "$SCOPEGATE" run --config "$W/scopegate.toml" >"$W/scopegate.log" 2>&1 & PIDS+=($!); SG_PID=$!
fi
# The same proxy in its other runtime shape (listen.runtime), on the next port.
if selected scopegate-ws; then
  SCOPEGATE_LISTEN_RUNTIME=work-stealing "$SCOPEGATE" run --config "$W/scopegate-ws.toml" >"$W/scopegate-ws.log" 2>&1 &
  PIDS+=($!); SGWS_PID=$!
fi
if selected scopegate-redis; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$W" >"$W/redis.log" 2>&1 &
  PIDS+=($!); REDIS_PID=$!
  "$SCOPEGATE" run --config "$W/scopegate-redis.toml" >"$W/scopegate-redis.log" 2>&1 & PIDS+=($!); SGR_PID=$!
fi
if selected scopegate-rl; then
  "$SCOPEGATE" run --config "$W/scopegate-rl.toml" >"$W/scopegate-rl.log" 2>&1 & PIDS+=($!); SGRL_PID=$!
fi
if selected scopegate-tenant; then
  "$SCOPEGATE" run --config "$W/scopegate-tenant.toml" >"$W/scopegate-tenant.log" 2>&1 & PIDS+=($!); SGT_PID=$!
fi
if selected scopegate-prev; then
  "$PREV" run --config "$W/scopegate-prev.toml" >"$W/scopegate-prev.log" 2>&1 & PIDS+=($!); SGP_PID=$!
fi
if selected scopegate-otel; then
  nginx -p "$W/otlp" -e "$W/otlp/nginx.err" -c "$W/otlp/nginx.conf" -g 'daemon off;' & PIDS+=($!)
  "$SCOPEGATE" run --config "$W/scopegate-otel.toml" >"$W/scopegate-otel.log" 2>&1 & PIDS+=($!); SGO_PID=$!
fi

declare -A URL=(
  [direct]="http://127.0.0.1:$UP_PORT/mcp"
  [nginx]="https://127.0.0.1:$NGINX_PORT/mcp"
  [haproxy]="https://127.0.0.1:$HAPROXY_PORT/mcp"
  [scopegate]="https://127.0.0.1:$SG_PORT/mcp"
  [scopegate-ws]="https://127.0.0.1:$SGWS_PORT/mcp"
  [scopegate-rl]="https://127.0.0.1:$SGRL_PORT/mcp"
  [scopegate-redis]="https://127.0.0.1:$SGR_PORT/mcp"
  [scopegate-tenant]="https://127.0.0.1:$SGT_PORT/mcp"
  [scopegate-otel]="https://127.0.0.1:$SGO_PORT/mcp"
  [scopegate-prev]="https://127.0.0.1:$SGP_PORT/mcp"
)

call() { # URL [TOKEN] [BODY] -> status
  curl -sk -o /dev/null -w '%{http_code}' -X POST "$1" -H "Authorization: Bearer ${2:-$BENCH_TOKEN}" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    --data "${3:-$BENCH_BODY}" || true
}
for t in "${TARGETS[@]}"; do
  deadline=$((SECONDS + 60))
  until [[ $(call "${URL[$t]}") == 200 ]]; do
    if ((SECONDS > deadline)); then
      echo "$t never answered 200 at ${URL[$t]}" >&2
      cat "$W/$t.log" "$W/nginx.err" "$W/otlp/nginx.err" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
done
# The authorizing targets must refuse what they should: a wrong scope and a bad signature.
denied_body=${BENCH_BODY/get_customer_info/calculate_account_value}
for t in haproxy scopegate scopegate-ws scopegate-rl scopegate-redis scopegate-tenant scopegate-otel scopegate-prev; do
  selected "$t" || continue
  s1=$(call "${URL[$t]}" "$BENCH_TOKEN" "$denied_body")
  s2=$(call "${URL[$t]}" "${BENCH_TOKEN%?????}AAAAA")
  if [[ $s1 != 403 || $s2 != 401 ]]; then
    echo "$t does not enforce: missing scope gave $s1 (want 403), bad signature $s2 (want 401)" >&2
    # What the proxy logged, so the failure can be diagnosed from CI's output alone.
    [[ $t == scopegate* ]] && tail -n 20 "$W/$t.log" >&2
    exit 1
  fi
done
# The tenant target's condition must hold the call to the token's tenant: another tenant's
# customer is refused.
if selected scopegate-tenant; then
  s=$(call "${URL[scopegate-tenant]}" "$BENCH_TOKEN" "${BENCH_BODY/C-1001/D-1001}")
  if [[ $s != 403 ]]; then
    echo "scopegate-tenant let another tenant's customer through: $s (want 403)" >&2
    tail -n 20 "$W/scopegate-tenant.log" >&2
    exit 1
  fi
fi
# The tracing target must export its spans: the sink logs an export answered 200.
if selected scopegate-otel; then
  deadline=$((SECONDS + 10))
  until grep -qs '"POST /v1/traces HTTP/1.1" 200' "$W/otlp/access.log"; do
    if ((SECONDS > deadline)); then
      echo "scopegate-otel exported no spans to the sink" >&2
      tail -n 20 "$W/scopegate-otel.log" "$W/otlp/nginx.err" >&2
      exit 1
    fi
    sleep 0.2
  done
fi
# The Redis target's calls must take from a bucket in Redis (its script ran), not from its own.
if selected scopegate-redis && ! redis-cli -p "$REDIS_PORT" info commandstats | grep -Eq '^cmdstat_evalsha?:calls=[1-9]'; then
  echo "scopegate-redis keeps no bucket in Redis" >&2
  tail -n 20 "$W/scopegate-redis.log" >&2
  exit 1
fi
sleep 1
SG_IDLE_KB=0
if selected scopegate; then SG_IDLE_KB=$(awk '/VmRSS/{print $2}' "/proc/$SG_PID/status"); fi

# --- measurement helpers --------------------------------------------------------------------
TCK=$(getconf CLK_TCK)
pids_of() { # a target's processes: nginx's master and its workers
  case $1 in
    direct) echo "$UP_PID" ;;
    nginx) echo "$NGINX_PID" $(awk -v p="$NGINX_PID" '$4 == p {print $1}' /proc/[0-9]*/stat 2>/dev/null) ;;
    haproxy) echo "$HAPROXY_PID" $(awk -v p="$HAPROXY_PID" '$4 == p {print $1}' /proc/[0-9]*/stat 2>/dev/null) ;;
    scopegate) echo "$SG_PID" ;;
    scopegate-ws) echo "$SGWS_PID" ;;
    scopegate-rl) echo "$SGRL_PID" ;;
    # Redis' own work is part of what the shared buckets cost.
    scopegate-redis) echo "$SGR_PID" "$REDIS_PID" ;;
    scopegate-tenant) echo "$SGT_PID" ;;
    # The span sink is the collector's cost, not scopegate's.
    scopegate-otel) echo "$SGO_PID" ;;
    scopegate-prev) echo "$SGP_PID" ;;
  esac
}
cpu_ticks() { local sum=0 pid; for pid in $(pids_of "$1"); do
  sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$sum"; }
hwm_kb() { local sum=0 pid; for pid in $(pids_of "$1"); do
  sum=$((sum + $(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done; echo "$sum"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

RESULTS=$W/results.tsv
run_wrk() { # target phase conns seconds delay_ms
  local t=$1 before after line
  before=$(cpu_ticks "$t")
  line=$(BENCH_DELAY_MS=$5 wrk -t"$THREADS" -c"$3" -d"$4s" --timeout 5s -s bench/wrk.lua "${URL[$t]}" | grep '^RESULT')
  after=$(cpu_ticks "$t")
  # shellcheck disable=SC2086
  set -- $line
  local req=${2#*=} rps=${4#*=} p50=${5#*=} p99=${6#*=} p999=${7#*=} err=${8#*=}
  local cpu10k
  cpu10k=$(awk -v d=$((after - before)) -v r="$req" -v h="$TCK" 'BEGIN {printf "%.3f", r ? d / h / r * 10000 : 0}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$PHASE" "$rps" "$p50" "$p99" "$p999" "$err" "$cpu10k" "$(loadavg)" >>"$RESULTS"
  printf '    %-16s %-5s %9.0f req/s  p50 %6d us  p99 %6d us  p99.9 %6d us  cpu %s s/10k  errors %s  load %s\n' \
    "$t" "$PHASE" "$rps" "$p50" "$p99" "$p999" "$cpu10k" "$err" "$(loadavg)" >&2
  if ((err > 0)); then echo "$t: $err failed requests" >&2; FAILED=1; fi
}

FAILED=0
say "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | sed -n 1p), load $(cat /proc/loadavg)"
say "versions: $("$SCOPEGATE" --version); $(nginx -v 2>&1); $HAPROXY_VERSION; $(wrk -v 2>&1 | sed -n 1p); $(h2load --version | sed -n 1p); $(openssl version)"
say "wrk: $THREADS thread(s), $CONNS connections, ${DURATION}s peak runs, ${PACED}s paced runs, $ROUNDS round(s)"

# The paced phase runs at about half of one target's peak: scopegate's, or the first chosen.
PACE_BY=${TARGETS[0]}
if selected scopegate; then PACE_BY=scopegate; fi
PACED_CONNS=
for ((round = 1; round <= ROUNDS; round++)); do
  # Rotate the order every round, so no target always runs first or right after a cold one, and
  # reverse it every second round, so no target always runs right after the same one (a pair
  # such as scopegate and scopegate-prev would otherwise always run in the same order).
  shift_by=$(((round - 1) % ${#TARGETS[@]}))
  order=("${TARGETS[@]:$shift_by}" "${TARGETS[@]:0:$shift_by}")
  if ((round % 2 == 0)); then
    for ((i = 0, j = ${#order[@]} - 1; i < j; i++, j--)); do
      t=${order[i]} order[i]=${order[j]} order[j]=$t
    done
  fi
  say "round $round: ${order[*]}"
  PHASE=peak
  for t in "${order[@]}"; do run_wrk "$t" peak "$CONNS" "$DURATION" 0; done
  if [[ -z $PACED_CONNS ]]; then
    # Half of that peak rate: each paced connection sends one request per ~1 ms.
    sg_peak=$(awk -F'\t' -v t="$PACE_BY" '$1 == t && $2 == "peak" {print $3}' "$RESULTS" | sed -n 1p)
    PACED_CONNS=$(awk -v r="$sg_peak" 'BEGIN {c = int(r / 2 / 900 + 0.5); print c < 1 ? 1 : c}')
    say "paced phase: $PACED_CONNS connections, 1 ms between a connection's requests (~half of $PACE_BY's peak)"
  fi
  PHASE=paced
  for t in "${order[@]}"; do run_wrk "$t" paced "$PACED_CONNS" "$PACED" 1; done
done

# HTTP/2 (h2load: no percentiles, so throughput and mean latency only) for the two that speak it
# to clients; HAProxy's numbers are HTTP/1.1 only to keep its run short.
H2=$W/h2.tsv
: >"$H2"
for t in nginx scopegate scopegate-ws scopegate-prev; do
  selected "$t" || continue
  h2out=$(h2load -D "$DURATION" -c "$CONNS" -m 1 -t "$THREADS" -d "$W/body.json" \
    -H "authorization: Bearer $BENCH_TOKEN" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' "${URL[$t]}" 2>&1)
  rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$h2out")
  ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$h2out")
  mean=$(awk '/^time for request:/ {print $5}' <<<"$h2out")
  printf '%s\t%s\t%s\t%s\n' "$t" "$rps" "$mean" "$ok" >>"$H2"
  printf '    %-16s h2    %9.0f req/s  mean %s  2xx %s\n' "$t" "$rps" "$mean" "$ok" >&2
done

declare -A HWM
for t in "${TARGETS[@]}"; do HWM[$t]=$(hwm_kb "$t"); done

# --- SSE: open streams and event latency ----------------------------------------------------
# After the peak RSS is read, so the table's column stays the request load's. The same streams,
# direct and through scopegate (HTTP/1.1 over TLS); scopegate's VmRSS is sampled while they are
# open.
declare -A SSE_P50 SSE_P99 SSE_P999
SSE_RSS_KB=0
run_sse() { # target
  local t=$1 out=$W/sse.$1 pid rss
  "$SSE_CLIENT" "${URL[$t]}" "$SSE_STREAMS" "$SSE_SECONDS" "$W/tls.crt" >"$out" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [[ $t == scopegate ]] && grep -qs '^OPEN' "$out"; then
      rss=$(awk '/VmRSS/{print $2}' "/proc/$SG_PID/status")
      if ((rss > SSE_RSS_KB)); then SSE_RSS_KB=$rss; fi
    fi
    sleep 0.5
  done
  wait "$pid" || { echo "bench-sse failed against $t" >&2; exit 1; }
  # shellcheck disable=SC2046
  set -- $(grep '^RESULT' "$out")
  local streams=${2#*=} events=${3#*=} lost=${7#*=} fail=${8#*=}
  SSE_P50[$t]=${4#*=}; SSE_P99[$t]=${5#*=}; SSE_P999[$t]=${6#*=}
  printf '    %-16s sse   %5d streams %7d events  p50 %6d us  p99 %6d us  p99.9 %6d us  lost %s  failures %s  load %s\n' \
    "$t" "$streams" "$events" "${SSE_P50[$t]}" "${SSE_P99[$t]}" "${SSE_P999[$t]}" "$lost" "$fail" "$(loadavg)" >&2
  if ((streams != SSE_STREAMS || fail > 0 || lost > 0)); then
    echo "$t: of $SSE_STREAMS SSE streams $streams opened, $fail failed, $lost events lost" >&2
    FAILED=1
  fi
}
SSE=0
if selected direct && selected scopegate; then SSE=1; fi
if ((SSE)); then
  say "SSE: $SSE_STREAMS streams, held ${SSE_SECONDS}s once open, one event per stream per second"
  for t in direct scopegate; do run_sse "$t"; done
else
  say "SSE phase skipped: it needs direct and scopegate among BENCH_TARGETS"
fi

# --- the table ------------------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {print NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : 0}'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {print a - b}'; }
col() { awk -F'\t' -v t="$1" -v p="$2" -v c="$3" '$1 == t && $2 == p {print $c}' "$RESULTS" | median; }
declare -A RPS P50 P99 P999 CPU PP50 PP99 PRPS
for t in "${TARGETS[@]}"; do
  RPS[$t]=$(col "$t" peak 3); P50[$t]=$(col "$t" peak 4); P99[$t]=$(col "$t" peak 5)
  P999[$t]=$(col "$t" peak 6); CPU[$t]=$(col "$t" peak 8)
  PRPS[$t]=$(col "$t" paced 3); PP50[$t]=$(col "$t" paced 4); PP99[$t]=$(col "$t" paced 5)
done
echo
echo "Medians of $ROUNDS round(s); HTTP/1.1 keep-alive, $CONNS connections (peak) and $PACED_CONNS paced connections (~half of $PACE_BY's peak); latency in microseconds."
echo
echo "| target | req/s | p50 | p99 | p99.9 | paced req/s | paced p50 | paced p99 | added p50 / p99 (paced, over direct) | CPU s / 10k req | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in "${TARGETS[@]}"; do
  if [[ $t == direct ]] || ! selected direct; then added="—"; else
    added="$(minus "${PP50[$t]}" "${PP50[direct]}") / $(minus "${PP99[$t]}" "${PP99[direct]}")"
  fi
  printf '| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %.1f MiB |\n' "$t" "${RPS[$t]}" "${P50[$t]}" \
    "${P99[$t]}" "${P999[$t]}" "${PRPS[$t]}" "${PP50[$t]}" "${PP99[$t]}" "$added" "${CPU[$t]}" "$(awk -v k="${HWM[$t]}" 'BEGIN {print k / 1024}')"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
if [[ -s $H2 ]]; then
  echo "HTTP/2 (h2load, $CONNS connections, 1 stream each): $(awk -F'\t' '{printf "%s %.0f req/s (mean %s); ", $1, $2, $3}' "$H2")"
fi
h2rps() { awk -F'\t' -v t="$1" '$1 == t {print $2}' "$H2"; }
# One line per comparison whose targets were all run.
for t in scopegate scopegate-ws; do
  if selected "$t" && selected nginx && selected haproxy; then
    echo "Ratios (req/s) for $t: /nginx $(ratio "${RPS[$t]}" "${RPS[nginx]}"), /haproxy $(ratio "${RPS[$t]}" "${RPS[haproxy]}"); h2 /nginx $(ratio "$(h2rps "$t")" "$(h2rps nginx)")"
  fi
done
compare() { # what, target, baseline's what, baseline: req/s ratio, added paced p50 / p99, CPU per 10k requests of both
  if selected "$2" && selected "$4"; then
    echo "$1 ($2) against $3 ($4): req/s $(ratio "${RPS[$2]}" "${RPS[$4]}"), added p50 / p99 (paced) $(minus "${PP50[$2]}" "${PP50[$4]}") / $(minus "${PP99[$2]}" "${PP99[$4]}") us, CPU s / 10k req ${CPU[$2]} against ${CPU[$4]}"
  fi
}
compare "Rate-limited tool, buckets in Redis" scopegate-redis "in the process" scopegate-rl
compare "Tenant isolation, a condition on the token's tenant and the call's customer" scopegate-tenant "the plain policy" scopegate
compare "Tracing on, every request sampled and exported" scopegate-otel "tracing off" scopegate
compare "This build" scopegate "the build in BENCH_PREV" scopegate-prev
if selected scopegate-otel; then
  # What the tracing target sent: export requests by result, and spans the full queue dropped.
  otel_metrics=$(curl -s "http://127.0.0.1:$SGO_ADMIN_PORT/metrics" || true)
  figure() { awk -v m="$1" '$1 == m {printf "%d", $2; found = 1} END {if (!found) printf "?"}' <<<"$otel_metrics"; }
  echo "scopegate-otel spans: $(figure 'scopegate_trace_exports_total{result="success"}') exports answered, $(figure 'scopegate_trace_exports_total{result="failure"}') failed, $(figure scopegate_trace_spans_dropped_total) spans dropped"
fi
if selected scopegate; then
  echo "scopegate RSS: idle $(mib "$SG_IDLE_KB") MiB, peak $(mib "${HWM[scopegate]}") MiB. Load average at the end: $(cat /proc/loadavg)"
else
  echo "Load average at the end: $(cat /proc/loadavg)"
fi
if ((SSE)); then echo "SSE: $SSE_STREAMS streams through scopegate: RSS $(mib "$SSE_RSS_KB") MiB (idle $(mib "$SG_IDLE_KB") MiB); event latency p50/p99 direct ${SSE_P50[direct]}/${SSE_P99[direct]} us, scopegate ${SSE_P50[scopegate]}/${SSE_P99[scopegate]} us, added $(minus "${SSE_P50[scopegate]}" "${SSE_P50[direct]}")/$(minus "${SSE_P99[scopegate]}" "${SSE_P99[direct]}") us (p99.9 direct ${SSE_P999[direct]}, scopegate ${SSE_P999[scopegate]} us)"; fi
if ((FAILED)); then echo "some requests or streams failed" >&2; exit 1; fi
