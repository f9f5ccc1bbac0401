#!/usr/bin/env bash
# Checks the Kubernetes example without a cluster: every file parses, every
# volume, ConfigMap, Secret and claim a pod refers to exists, every probe names
# a declared port, every container is locked down (non-root, read-only root,
# no privilege escalation, no capabilities, resource limits), and the
# kyma-certd configuration fits the pod (metrics port, certificate directory
# and pid file on mounted volumes). With a kyma-certd binary given, also runs
# its check-config on the embedded configuration.
#
# Usage: packaging/kubernetes/check.sh [PATH-TO-kyma-certd]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

command -v python3 >/dev/null || { echo "check.sh: python3 is not installed" >&2; exit 2; }
python3 -c 'import yaml' 2>/dev/null || { echo "check.sh: python3 needs PyYAML (python3-yaml)" >&2; exit 2; }

config=$(mktemp --suffix=.toml)
trap 'rm -f "$config"' EXIT

python3 - packaging/kubernetes "$config" <<'EOF'
import pathlib
import sys
import tomllib

import yaml

base, config_out = pathlib.Path(sys.argv[1]), sys.argv[2]
problems = []
objects = {}
kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
files = list(kustomization["resources"]) + ["secret.yaml"]
for name in files:
    for doc in yaml.safe_load_all((base / name).read_text()):
        objects[(doc["kind"], doc["metadata"]["name"])] = doc

deployments = [d for (kind, _), d in objects.items() if kind == "Deployment"]
if not deployments:
    problems.append("no Deployment")
for dep in deployments:
    spec = dep["spec"]["template"]["spec"]
    pod_sc = spec.get("securityContext", {})
    if not pod_sc.get("runAsNonRoot"):
        problems.append("the pod does not set runAsNonRoot")
    if not spec.get("shareProcessNamespace"):
        problems.append("the pod does not share its process namespace (signal hook)")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        for key, kind, ref in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName"),
                               ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):
            if key in v and (kind, v[key][ref]) not in objects:
                problems.append(f"volume {v['name']}: {kind} {v[key][ref]} is not defined")
    mounts = {}
    for c in spec.get("initContainers", []) + spec["containers"]:
        cname = c["name"]
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem") \
                or sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"container {cname} is not locked down")
        if not c.get("resources", {}).get("limits"):
            problems.append(f"container {cname} has no resource limits")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in c and c[probe]["httpGet"]["port"] not in ports:
                problems.append(f"container {cname}: {probe} names an undeclared port")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"container {cname} mounts undeclared volume {m['name']}")
        mounts[cname] = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    daemon = next((c for c in spec["containers"] if c["name"] == "kyma-certd"), None)
    if daemon is None:
        problems.append("no kyma-certd container")
        continue
    probes = {daemon.get("readinessProbe", {}).get("httpGet", {}).get("path"),
              daemon.get("livenessProbe", {}).get("httpGet", {}).get("path")}
    if probes != {"/readyz", "/healthz"}:
        problems.append(f"kyma-certd probes are {probes}, want /readyz and /healthz")

    cm = objects[("ConfigMap", volumes[mounts["kyma-certd"]["/etc/kyma-certd"]]["configMap"]["name"])]
    text = cm["data"]["config.toml"]
    with open(config_out, "w", encoding="utf-8") as out:
        out.write(text)
    cfg = tomllib.loads(text)
    port = int(cfg["metrics"]["listen"].rsplit(":", 1)[1])
    if not cfg["metrics"]["listen"].startswith("0.0.0.0:"):
        problems.append("metrics listen must be reachable by the kubelet (0.0.0.0)")
    if port not in [p["containerPort"] for p in daemon["ports"]]:
        problems.append(f"metrics port {port} is not a container port of kyma-certd")

    def volume_of(container, path):
        best = max((m for m in mounts[container] if path.startswith(m.rstrip("/") + "/")), key=len, default=None)
        return mounts[container].get(best)

    for cert in cfg["certificate"]:
        vol = volume_of("kyma-certd", cert["dir"] + "/x")
        if vol is None or vol != volume_of("kyma-certd-enroll", cert["dir"] + "/x"):
            problems.append(f"certificate {cert['name']}: {cert['dir']} is not on a volume shared with the init container")
        for hook in cert.get("on_renew", []):
            if "pid_file" in hook:
                shared = volume_of("kyma-certd", hook["pid_file"])
                if shared is None or shared not in mounts["nginx"].values():
                    problems.append(f"pid file {hook['pid_file']} is not on a volume shared with nginx")

for p in problems:
    print("FAIL:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"ok: {len(objects)} objects consistent")
EOF

if [ $# -ge 1 ]; then
    echo "== $1 check-config on the ConfigMap's configuration"
    "$1" --config "$config" check-config
fi
echo "PASS"
