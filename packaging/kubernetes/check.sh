#!/usr/bin/env bash
# Checks the Kubernetes example without a cluster. Every manifest is validated
# against the real Kubernetes OpenAPI schemas by kubernetes-validate (strict:
# unknown fields are errors). Then the checks only this project can make:
# every volume, ConfigMap, Secret and claim a pod refers to exists, every probe
# names a declared port, every container is locked down (non-root, read-only
# root, no privilege escalation, no capabilities, resource limits), the
# kyma-certd configuration fits the pod (metrics port, certificate directory
# and pid file on mounted volumes), and the NetworkPolicy lets only one
# namespace reach the metrics port. The PodMonitor (a Prometheus Operator kind,
# which kubernetes-validate has no schema for) is checked against the operator's
# fields and the pod it selects. With a kyma-certd binary given, also runs its
# check-config on the embedded configuration.
#
# Needs python3 with PyYAML and kubernetes-validate (tests/setup.sh installs it
# into target/tools/venv; KUBERNETES_VALIDATE names another one).
#
# Usage: packaging/kubernetes/check.sh [PATH-TO-kyma-certd]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

venv=target/tools/venv/bin
validate=${KUBERNETES_VALIDATE:-}
if [ -z "$validate" ]; then
    if [ -x "$venv/kubernetes-validate" ]; then
        validate=$venv/kubernetes-validate
    else
        validate=$(command -v kubernetes-validate || true)
    fi
fi
if [ -z "$validate" ]; then
    echo "check.sh: kubernetes-validate is not installed (run tests/setup.sh, or: pip install kubernetes-validate)" >&2
    exit 2
fi
# The venv's python has PyYAML (a kubernetes-validate dependency) and tomllib.
python=python3
[ -x "$venv/python3" ] && python=$venv/python3
"$python" -c 'import yaml' 2>/dev/null || { echo "check.sh: $python needs PyYAML (python3-yaml)" >&2; exit 2; }

manifests=()
while read -r file; do
    manifests+=("packaging/kubernetes/$file")
done < <("$python" -c 'import sys, yaml; print("\n".join(yaml.safe_load(open(sys.argv[1]))["resources"]))' \
    packaging/kubernetes/kustomization.yaml)
manifests+=(packaging/kubernetes/secret.yaml)
echo "== kubernetes-validate --strict ${manifests[*]}"
"$validate" --strict --quiet "${manifests[@]}"
echo "ok: ${#manifests[@]} manifests match the Kubernetes schemas"

config=$(mktemp --suffix=.toml)
trap 'rm -f "$config"' EXIT

"$python" - packaging/kubernetes "$config" <<'EOF'
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

# Inbound: only one namespace, only the metrics port.
policies = [d for (kind, _), d in objects.items() if kind == "NetworkPolicy"]
pod_labels = {}
for dep in deployments:
    pod_labels.update(dep["spec"]["template"]["metadata"].get("labels", {}))
guarding = [p for p in policies
            if p["spec"].get("podSelector", {}).get("matchLabels", {}).items() <= pod_labels.items()
            and "Ingress" in p["spec"].get("policyTypes", [])]
if not guarding:
    problems.append("no NetworkPolicy restricts inbound traffic to the pod")
metrics_ports = {"metrics", port} if deployments else set()
for policy in guarding:
    rules = policy["spec"].get("ingress", [])
    for rule in rules:
        ports = [p.get("port") for p in rule.get("ports", [])]
        if not ports or any(p not in metrics_ports for p in ports):
            problems.append(f"NetworkPolicy {policy['metadata']['name']}: a rule opens {ports or 'every port'}, want only the metrics port")
        peers = rule.get("from", [])
        if not peers or any(set(peer) != {"namespaceSelector"} or not peer["namespaceSelector"].get("matchLabels")
                            for peer in peers):
            problems.append(f"NetworkPolicy {policy['metadata']['name']}: a rule admits more than a named namespace: {peers}")

# The PodMonitor: known fields only, selects the pod, scrapes the metrics port.
monitor = yaml.safe_load((base / "podmonitor.yaml").read_text())
if (monitor.get("apiVersion"), monitor.get("kind")) != ("monitoring.coreos.com/v1", "PodMonitor"):
    problems.append("podmonitor.yaml is not a monitoring.coreos.com/v1 PodMonitor")
else:
    mspec = monitor.get("spec", {})
    unknown = set(mspec) - {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel",
                            "podTargetLabels", "sampleLimit"}
    if unknown:
        problems.append(f"PodMonitor: unknown spec fields {sorted(unknown)}")
    selector = mspec.get("selector", {}).get("matchLabels", {})
    if not selector or not selector.items() <= pod_labels.items():
        problems.append(f"PodMonitor: selector {selector} does not select the pod {pod_labels}")
    metrics_port_names = {p["name"] for dep in deployments for c in dep["spec"]["template"]["spec"]["containers"]
                          if c["name"] == "kyma-certd" for p in c.get("ports", [])
                          if p["containerPort"] == port}
    endpoints = mspec.get("podMetricsEndpoints", [])
    if not endpoints:
        problems.append("PodMonitor: no podMetricsEndpoints")
    for ep in endpoints:
        unknown = set(ep) - {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels",
                             "relabelings", "metricRelabelings"}
        if unknown:
            problems.append(f"PodMonitor: unknown endpoint fields {sorted(unknown)}")
        if ep.get("port") not in metrics_port_names or ep.get("path", "/metrics") != "/metrics":
            problems.append(f"PodMonitor: endpoint {ep} is not the kyma-certd metrics port's /metrics")
    objects[("PodMonitor", monitor["metadata"]["name"])] = monitor

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
