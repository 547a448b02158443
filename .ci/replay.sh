#!/usr/bin/env bash
# Replays the recorded Entra session (../shared/scim-replay) against a freshly
# built scimbox. Failures listed in .ci/replay-expected-failures.txt (with the
# reason scimbox is right) are reported but do not fail CI; any other does.
set -uo pipefail
cd "$(dirname "$0")/.."
expected=.ci/replay-expected-failures.txt
out=$(../shared/scim-replay --build 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E '^(FAIL|[0-9]+ passed)' || true
unexpected=0
while IFS= read -r line; do
  name=$(printf '%s' "$line" | sed -E 's/^FAIL +[0-9]+ ([^:]+):.*/\1/')
  if grep -qxF "$name" <(grep -v '^#' "$expected" | sed -E 's/ *#.*//'); then
    echo "expected failure: $name (see $expected)"
  else
    echo "UNEXPECTED failure: $line"
    unexpected=$((unexpected + 1))
  fi
done < <(printf '%s\n' "$out" | grep '^FAIL')
summary=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
if [ -z "$summary" ]; then
  printf '%s\n' "$out" | tail -n 30
  echo "replay: did not run (exit $rc)"
  exit 1
fi
passed=${summary%% passed*}
echo "replay: $passed passed, $unexpected failed"
[ "$unexpected" -eq 0 ]
