#!/usr/bin/env bash
# Policies: `policy check` on every policy in policies/ (warnings fail too), and `policy test`
# for each against the cases file beside it. A policy without a cases file fails: every example
# policy ships its cases.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin scopegate
scopegate=target/debug/scopegate

policies=()
for file in policies/*.toml; do
    case "$file" in *.cases.toml) continue ;; esac
    policies+=("$file")
done
if [ "${#policies[@]}" -eq 0 ]; then
    echo "no policies in policies/" >&2
    exit 1
fi

"$scopegate" policy check --deny-warnings "${policies[@]}"
# The folder form: policies and cases files alike, each cases file run against the policy it names.
"$scopegate" policy check --deny-warnings policies/

status=0
for policy in "${policies[@]}"; do
    cases="${policy%.toml}.cases.toml"
    if [ ! -f "$cases" ]; then
        echo "$policy: error: no cases file ($cases)" >&2
        status=1
        continue
    fi
    printf '\n%s\n' "$policy"
    "$scopegate" policy test "$policy" --cases "$cases" || status=1
done
exit "$status"
