#!/usr/bin/env bash
# The Grafana dashboard against Grafana's own dashboard model: the JSON is type-checked as a
# `Dashboard` of the pinned @grafana/schema (the types Grafana generates from its CUE schema),
# with TypeScript's excess-property checks, so a misspelt or misplaced key fails as well as a
# wrong type. Installs both into a folder under target/ once; a second run reuses it.
# (Which metrics the queries name is checked against a live /metrics by tests/it/dashboard.rs.)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=target/grafana-schema
stamp="$dir/.installed"
packages="@grafana/schema@13.2.3 typescript@5.9.3"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund --no-save $packages)
    echo "$packages" > "$stamp"
fi

{
    echo "import type { Dashboard } from '@grafana/schema';"
    # Enums are JSON strings in a dashboard file: each enum type is read as its values.
    echo 'type Json<T> = T extends string ? `${T}` : T extends (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;'
    printf 'const dashboard: Json<Dashboard> = '
    cat deploy/grafana/scopegate.json
    echo ";"
    echo "export default dashboard;"
} > "$dir/scopegate.dashboard.ts"
"$dir/node_modules/.bin/tsc" --noEmit --strict --skipLibCheck --target es2022 \
    --module esnext --moduleResolution bundler "$dir/scopegate.dashboard.ts"
echo "deploy/grafana/scopegate.json: a valid Grafana Dashboard (@grafana/schema 13.2.3)"
