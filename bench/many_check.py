"""Checks a many-certificates run: every certificate renewed before its first
certificate expired, where in the lifetime the renewals happened, and the daemon's own
counters. Prints one summary line.

Usage: many_check.py STATUS_BEFORE STATUS_AFTER ISSUED_JSON METRICS_TEXT VALIDITY_SECONDS
"""

import json
import re
import sys
from datetime import datetime


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main():
    before_path, after_path, issued_path, metrics_path, validity = sys.argv[1:6]
    validity = float(validity)
    before = {s["name"]: s for s in json.load(open(before_path))}
    after = {s["name"]: s for s in json.load(open(after_path))}
    issued = json.load(open(issued_path))

    by_cn = {}
    for cert in issued:
        cn = re.search(r"CN=([^,]+)", cert["subject"]).group(1)
        by_cn.setdefault(cn, []).append(cert)

    not_renewed = []
    not_valid = []
    positions = []
    margins = []
    for name, first in before.items():
        now = after.get(name, {})
        if now.get("state") != "valid":
            not_valid.append(name)
        if now.get("fingerprint_sha256") == first["fingerprint_sha256"]:
            not_renewed.append(name)
        certs = by_cn.get(name, [])
        enrolled = [c for c in certs if c["fingerprint"] == first["fingerprint_sha256"]]
        renewals = sorted((c for c in certs if c["renewal"]), key=lambda c: when(c["not_before"]))
        if not enrolled or not renewals:
            continue
        start = when(enrolled[0]["not_before"])
        end = when(enrolled[0]["not_after"])
        renewed = when(renewals[0]["not_before"])
        positions.append((renewed - start) / (end - start))
        margins.append(end - renewed)

    success = failure = 0
    for line in open(metrics_path):
        if line.startswith("kyma_certd_renewals_total{"):
            value = float(line.rsplit(" ", 1)[1])
            if 'result="success"' in line:
                success += value
            elif 'result="failure"' in line:
                failure += value

    positions.sort()
    margins.sort()
    ok = not not_renewed and not not_valid and len(margins) == len(before)
    summary = (
        f"{'none missed' if ok else 'MISSED RENEWALS'}: {len(before) - len(not_renewed)}/{len(before)} "
        f"renewed, {len(before) - len(not_valid)} valid at the end; "
        f"{int(success)} successful and {int(failure)} failed renewals in the daemon's counters"
    )
    if positions:
        mid = positions[len(positions) // 2]
        summary += (
            f"; first renewal at {positions[0]:.1%} / {mid:.1%} / {positions[-1]:.1%} "
            f"(min / median / max) of the lifetime, the closest {margins[0]:.0f} s before expiry"
        )
    if not_renewed:
        summary += f"; not renewed: {', '.join(sorted(not_renewed)[:10])}"
    if not_valid:
        summary += f"; not valid: {', '.join(sorted(not_valid)[:10])}"
    print(summary)


if __name__ == "__main__":
    main()
