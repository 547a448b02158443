#!/usr/bin/env python3
"""Summarise a newman JSON report against an allowlist of expected failures.

Usage: newman_check.py REPORT.json ALLOWLIST.txt

Every failure is keyed "request name :: assertion name" (request errors use
"request error", top-level test/pre-request script errors "script error") and
printed, marked EXPECTED when the key is in the allowlist. The last line is
"newman: N passed, N failed", where failed counts only unexpected failures;
the exit status is 1 iff there is an unexpected failure (or no usable report).
"""
import json
import sys


def load_allowlist(path):
    keys = set()
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, assertion = line.partition("::")
            if not sep:
                sys.exit(f"{path}: bad line (want 'request :: assertion'): {line!r}")
            keys.add(f"{name.strip()} :: {assertion.strip()}")
    return keys


def main(report_path, allowlist_path):
    allowed = load_allowlist(allowlist_path)
    try:
        run = json.load(open(report_path, encoding="utf-8"))["run"]
    except (OSError, ValueError, KeyError) as e:
        print(f"newman produced no usable report ({e})")
        print("newman: 0 passed, 1 failed")
        return 1

    # Request-error messages live in run.failures; executions only keep the code.
    req_msgs = {f["source"]["id"]: f["error"].get("message", "")
                for f in run.get("failures", []) if f.get("at") == "request" and f.get("source")}
    passed, failures = 0, []  # failures: (key, detail)
    if run.get("error"):
        failures.append(("newman :: run error", str(run["error"].get("message", run["error"]))))
    for ex in run.get("executions", []):
        name = ex["item"]["name"]
        if ex.get("requestError"):
            err = ex["requestError"]
            failures.append((f"{name} :: request error",
                             req_msgs.get(ex["item"].get("id")) or err.get("message") or err.get("code", "")))
        for kind in ("prerequestScript", "testScript"):
            for s in ex.get(kind) or []:
                failures.append((f"{name} :: script error", f"{kind}: {s['error'].get('message', '')}"))
        for a in ex.get("assertions") or []:
            if a.get("skipped"):
                continue
            if a.get("error"):
                failures.append((f"{name} :: {a['assertion']}", a["error"].get("message", "")))
            else:
                passed += 1

    unexpected = 0
    seen = set()
    if failures:
        print("Failures:")
    for key, detail in failures:
        seen.add(key)
        expected = key in allowed
        unexpected += not expected
        print(f"  {'EXPECTED  ' if expected else 'UNEXPECTED'} {key}  --  {detail}")
    for key in sorted(allowed - seen):
        print(f"  note: allowlisted but did not fail: {key}")
    print(f"allowlisted (expected) failures: {len(failures) - unexpected}")
    print(f"newman: {passed} passed, {unexpected} failed")
    return 1 if unexpected else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
