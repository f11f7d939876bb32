#!/usr/bin/env bash
# Every shipped TOML that names a JSON Schema on a `#:schema` line (what Taplo and Even Better
# TOML read) is valid against it, and every shipped config file names one. The schemas are
# generated from the Rust types (tests/it/schemas.rs keeps schemas/ current). Installs jsonschema
# into a venv under target/ once; a second run reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schema-venv
stamp="$venv/.installed"
packages="jsonschema==4.26.0"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$packages" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $packages
    echo "$packages" > "$stamp"
fi

"$venv/bin/python" - <<'PY'
import json, pathlib, sys, tomllib
import jsonschema

failed = False
checked = 0
for path in sorted(pathlib.Path(".").glob("**/*.toml")):
    if path.parts[0] in ("target", "fuzz") or path.name in ("Cargo.toml", "Cargo.lock"):
        continue
    text = path.read_text()
    first = text.splitlines()[0] if text else ""
    if not first.startswith("#:schema "):
        if "[upstream]" in text and "[auth]" in text:
            print(f"{path}: a config file without a #:schema line")
            failed = True
        continue
    schema_path = (path.parent / first.split(None, 1)[1].strip()).resolve()
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for error in validator.iter_errors(tomllib.loads(text)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top)"
        print(f"{path}: {where}: {error.message}")
        failed = True
    checked += 1
print(f"{checked} TOML files checked against their schemas")
sys.exit(1 if failed else 0)
PY
