#!/usr/bin/env bash
# The real Redis that tests/it/state.rs starts on free ports (Debian's redis-server): installed
# when missing. The tests start and stop their own servers; nothing here is left running.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
redis-server --version
