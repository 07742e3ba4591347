#!/usr/bin/env bash
# Install the Debian packages byflyt's tests use: PostgreSQL (store tests), Prometheus with
# promtool and Alertmanager (alert-rule tests), Chromium and chromedriver (live page tests).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(default-jre-headless)
command -v mvn >/dev/null || need+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
# Headless browser tests (live page): Debian's Chromium and its matching chromedriver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packages start their services; byflyt's tests run their own instances on free ports.
for svc in postgresql prometheus prometheus-alertmanager; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
