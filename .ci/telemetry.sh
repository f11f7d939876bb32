#!/usr/bin/env bash
# Traces through the real proxy, received by an OTLP/HTTP endpoint that decodes them with the
# official OpenTelemetry protobuf types (tests/python/otlp_receiver.py, tests/it/telemetry.rs).
# Installs opentelemetry-proto into a venv under target/ once; a second run reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/otlp-venv
stamp="$venv/.installed"
packages="opentelemetry-proto==1.45.2"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $packages
    echo "$packages" > "$stamp"
fi

SCOPEGATE_OTLP_PYTHON="$PWD/$venv/bin/python" cargo test --test it telemetry:: -- --ignored
