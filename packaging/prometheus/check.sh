#!/usr/bin/env bash
# Checks the alert rules: `promtool check rules`, the unit tests in
# alerts.test.yml, that every alert carries severity, summary, description and
# a runbook_url whose anchor is a heading of docs/operations.md, and that the
# rules name only metrics that kyma-certd exposes (metrics.txt).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

for tool in promtool python3; do
    command -v "$tool" >/dev/null || { echo "check.sh: $tool is not installed" >&2; exit 2; }
done

echo "== promtool check rules"
promtool check rules packaging/prometheus/alerts.yml

echo "== promtool test rules"
# The test file names its rule file relative to itself.
(cd packaging/prometheus && promtool test rules alerts.test.yml)

echo "== alert annotations, runbook anchors and metric names"
python3 - packaging/prometheus/alerts.yml docs/operations.md packaging/prometheus/metrics.txt <<'EOF'
import re
import sys

rules_path, runbook_path, metrics_path = sys.argv[1:4]
rules = open(rules_path, encoding="utf-8").read()
known = {line.strip() for line in open(metrics_path, encoding="utf-8")
         if line.strip() and not line.startswith("#")}


def slug(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


anchors = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$",
                                                  open(runbook_path, encoding="utf-8").read(), re.M)}
problems = []
blocks = re.split(r"^\s*- alert:\s*", rules, flags=re.M)[1:]
if not blocks:
    problems.append("no alerts found")
for block in blocks:
    name = block.split()[0]
    for key in ("severity:", "summary:", "description:", "runbook_url:"):
        if key not in block:
            problems.append(f"{name}: no {key[:-1]}")
    for anchor in re.findall(r'runbook_url:\s*"[^"#]*docs/operations\.md#([^"]+)"', block):
        if anchor not in anchors:
            problems.append(f"{name}: runbook anchor #{anchor} is not a heading of {runbook_path}")
for metric in sorted(set(re.findall(r"\bkyma_certd_\w+", rules))):
    if metric not in known:
        problems.append(f"{metric} is not a metric kyma-certd exposes ({metrics_path})")
for p in problems:
    print("FAIL:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"ok: {len(blocks)} alerts, each with severity, summary, description and a runbook anchor")
EOF

echo "PASS"
