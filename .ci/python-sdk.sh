#!/usr/bin/env bash
# Interop with the official MCP Python SDK 2.x through the real proxy: a dual-era SDK server as
# the upstream, the SDK client in auto, pinned 2026-07-28 and legacy modes (tests/it/python_sdk.rs), and
# tool pins against that server changing a description mid-run (tests/it/integrity.rs).
# Installs the SDK into a venv under target/ once; a second run reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/mcp-venv
stamp="$venv/.installed"
packages="mcp==2.3.0"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $packages
    echo "$packages" > "$stamp"
fi

SCOPEGATE_PYTHON="$PWD/$venv/bin/python" cargo test --test it python_sdk:: -- --ignored
# Tool integrity against the SDK server changing a description mid-run.
SCOPEGATE_PYTHON="$PWD/$venv/bin/python" cargo test --test it integrity:: -- --ignored
