#!/usr/bin/env bash
# The adapter's end-to-end suite: the official openai client against `scopegate adapter`, fake
# providers built on the openai and anthropic SDKs' types, and `scopegate demo --serve`.
# Installs its Python packages into a venv under target/ once; a second run reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/adapter-venv
stamp="$venv/.installed"
packages="openai anthropic pytest"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $packages
    echo "$packages" > "$stamp"
fi

cargo build --quiet --bin scopegate
cd tests/python
SCOPEGATE_BIN="$PWD/../../target/debug/scopegate" "../../$venv/bin/python" -m pytest -q -p no:cacheprovider
