#!/usr/bin/env bash
# Installs promtool, which the metrics tests use to check /metrics
# (`promtool check metrics`); with CI=true they fail without it.
# Debian's prometheus package provides it.
set -euo pipefail
if ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # Under systemd the package also starts a Prometheus server, which CI does not want.
  if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
fi
promtool --version | head -n 1
