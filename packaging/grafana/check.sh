#!/usr/bin/env bash
# Checks the Grafana dashboard: well-formed JSON, schemaVersion >= 36, a
# DS_PROMETHEUS data source variable used by every panel, a `name` variable,
# unique panel ids, only metrics that kyma-certd exposes, and every query valid
# PromQL (parsed by `promtool check rules` after substituting the variables).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

for tool in promtool python3; do
    command -v "$tool" >/dev/null || { echo "check.sh: $tool is not installed" >&2; exit 2; }
done

rules=$(mktemp --suffix=.yml)
trap 'rm -f "$rules"' EXIT

echo "== dashboard structure"
python3 - packaging/grafana/dashboard.json packaging/prometheus/metrics.txt "$rules" <<'EOF'
import json
import re
import sys

dashboard_path, metrics_path, rules_path = sys.argv[1:4]
try:
    dash = json.load(open(dashboard_path, encoding="utf-8"))
except json.JSONDecodeError as e:
    sys.exit(f"FAIL: {dashboard_path} is not valid JSON: {e}")
known = {line.strip() for line in open(metrics_path, encoding="utf-8")
         if line.strip() and not line.startswith("#")}
problems = []

if dash.get("schemaVersion", 0) < 36:
    problems.append(f"schemaVersion {dash.get('schemaVersion')} is below 36")
variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
ds = variables.get("DS_PROMETHEUS")
if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    problems.append("no DS_PROMETHEUS variable of type datasource for prometheus")
if "name" not in variables:
    problems.append("no `name` template variable")

ids = [p.get("id") for p in dash.get("panels", [])]
if len(ids) != len(set(ids)):
    problems.append(f"panel ids are not unique: {ids}")

exprs = []
for panel in dash.get("panels", []):
    if panel.get("type") == "row":
        continue
    title = panel.get("title", "?")
    if panel.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        problems.append(f"panel {title!r} does not use ${{DS_PROMETHEUS}}")
    if not panel.get("targets"):
        problems.append(f"panel {title!r} has no query")
    for target in panel.get("targets", []):
        exprs.append((title, target.get("expr", "")))
for var in variables.values():
    if var.get("type") == "query":
        exprs.append((f"variable {var['name']}", var.get("definition", "")))

substitutions = {"$__rate_interval": "5m", "$__range": "7d", "$__interval": "1m",
                 "$instance": ".*", "$name": ".*"}
records = []
for title, expr in exprs:
    for metric in set(re.findall(r"\bkyma_certd_\w+", expr)):
        if metric not in known:
            problems.append(f"{title!r}: {metric} is not a metric kyma-certd exposes")
    # label_values(metric, label) is Grafana's, not PromQL: check its selector.
    m = re.fullmatch(r"label_values\((.*),\s*\w+\)", expr.strip())
    if m:
        expr = m.group(1)
    for var, value in substitutions.items():
        expr = expr.replace(var, value)
    if "$" in expr:
        problems.append(f"{title!r}: unknown variable in {expr!r}")
    records.append((title, expr))

for p in problems:
    print("FAIL:", p, file=sys.stderr)
if problems:
    sys.exit(1)

# Each query as a recording rule, so that promtool parses it.
with open(rules_path, "w", encoding="utf-8") as out:
    out.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, (title, expr) in enumerate(records):
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(expr)}\n")
print(f"ok: schemaVersion {dash['schemaVersion']}, {len(ids)} panels, {len(records)} queries")
EOF

echo "== the queries parse as PromQL"
promtool check rules "$rules"

echo "PASS"
