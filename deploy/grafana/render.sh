#!/usr/bin/env bash
# The README's picture of the Grafana dashboard, drawn from a real demo run (run by hand, not in
# CI): `scopegate demo --serve` with demo clients calling it (traffic.py) for RENDER_SECONDS
# (default 75), scraped every 2 s by a real Prometheus on a free port; then every panel's own
# PromQL is evaluated through Prometheus' HTTP API and the panels are drawn in the dashboard's
# grid (render.py, matplotlib) to docs/dashboard.png.
#
#   deploy/grafana/render.sh            # about 2 minutes after the build
#
# Installs the Debian package `prometheus` when missing, and matplotlib into a venv under target/
# once (a second run reuses it). Stops what it started and removes what it made, on failure too.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_OF_TRAFFIC=${RENDER_SECONDS:-75}
SCRAPE=2
OUT=docs/dashboard.png

say() { printf '==> %s\n' "$*" >&2; }

if ! command -v prometheus >/dev/null 2>&1; then
  say "installing prometheus"
  SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
venv=target/dashboard-venv
stamp="$venv/.installed"
packages="matplotlib==3.11.2"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
  say "installing $packages into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $packages
  echo "$packages" >"$stamp"
fi

say "building scopegate"
cargo build -q -p scopegate --bin scopegate
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SCOPEGATE=$TARGET_DIR/debug/scopegate

W=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

wait_for() { # what, seconds, command...
  local what=$1 deadline=$((SECONDS + $2)); shift 2
  until "$@"; do
    if ((SECONDS > deadline)); then echo "$what did not come up" >&2; return 1; fi
    sleep 0.2
  done
}

say "starting the demo"
"$SCOPEGATE" demo --serve --endpoints-file "$W/demo.json" >"$W/demo.log" 2>&1 & PIDS+=($!)
wait_for "the demo" 120 test -s "$W/demo.json" || { cat "$W/demo.log" >&2; exit 1; }
metrics_url=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metrics_url"])' "$W/demo.json")
target=${metrics_url#http://}
target=${target%%/*}

# A free port for Prometheus: the kernel picks one, Prometheus binds it right after.
PROM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$W/prometheus.yml" <<EOF
global:
  scrape_interval: ${SCRAPE}s
  evaluation_interval: ${SCRAPE}s
scrape_configs:
  - job_name: scopegate
    metrics_path: /metrics
    static_configs:
      - targets: ["$target"]
EOF
say "starting Prometheus on 127.0.0.1:$PROM_PORT, scraping $target every ${SCRAPE}s"
prometheus --config.file="$W/prometheus.yml" --storage.tsdb.path="$W/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$W/prometheus.log" 2>&1 & PIDS+=($!)
PROM=http://127.0.0.1:$PROM_PORT
scraped() { curl -s "$PROM/api/v1/query?query=up" | grep -q '"value":\[[0-9.]*,"1"\]'; }
wait_for "Prometheus' first scrape" 60 scraped || { cat "$W/prometheus.log" >&2; exit 1; }

say "traffic for ${SECONDS_OF_TRAFFIC}s"
start=$(date +%s)
"$venv/bin/python" deploy/grafana/traffic.py "$W/demo.json" "$SECONDS_OF_TRAFFIC"
# The window ends with a scrape taken after the last request, so it is in Prometheus.
end=$(($(date +%s) + 1))
scraped_since() { curl -s "$PROM/api/v1/query" --data-urlencode "query=timestamp(up) >= $1" | grep -q '"metric"'; }
wait_for "a scrape after the traffic" 30 scraped_since "$end" || exit 1

mkdir -p "$(dirname "$OUT")"
"$venv/bin/python" deploy/grafana/render.py deploy/grafana/scopegate.json "$PROM" "$start" "$end" "$SCRAPE" "$OUT"
