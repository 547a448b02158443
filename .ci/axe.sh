#!/usr/bin/env bash
# Installs axe-core from npm into .ci/node_modules, where the admin page's
# browser test (TestAdminInBrowser) finds it and injects it into every page.
# Without it the test skips the accessibility check locally and fails in CI.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/axe-core/axe.min.js ]; then
  npm install --no-save --no-audit --no-fund --prefix . axe-core@4.11 >/dev/null
fi
echo "axe-core $(node -p 'require("./node_modules/axe-core/package.json").version')"
