#!/usr/bin/env bash
# CI: the load benchmark in smoke mode (debug build, one short round per target). It proves the
# benchmark still runs end to end: every target answers 200, HAProxy and every scopegate refuse a
# missing scope (403) and a bad signature (401), the tenant-isolation target refuses another
# tenant's customer, the tracing target's spans reach its OTLP sink, no request fails under load,
# and SSE streams open and deliver every event, direct and through scopegate. The numbers it prints are not meant
# to be read. Installs nginx, HAProxy, wrk and h2load when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
BENCH_CONNS=${BENCH_CONNS:-8} bench/run.sh --smoke
echo "bench smoke: $((SECONDS - start)) s"
