#!/usr/bin/env bash
# Install the Debian packages byflyt needs, only what is missing (idempotent).
#   deploy/install-system.sh demo   Java and Maven (the local Kafka broker and its jars): all the
#                                   demo needs; nothing is installed when both are present.
#   deploy/install-system.sh test   the demo's packages, plus PostgreSQL (store tests), Prometheus
#                                   with promtool and Alertmanager (alert tests), Chromium and
#                                   chromedriver (live page and report tests).
set -euo pipefail
what=${1:-test}
need=()
command -v java >/dev/null || need+=(default-jre-headless)
command -v mvn >/dev/null || need+=(maven)
case "$what" in
  demo) ;;
  test)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
    command -v promtool >/dev/null || need+=(prometheus)
    command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
    command -v chromium >/dev/null || need+=(chromium)
    command -v chromedriver >/dev/null || need+=(chromium-driver)
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "byflyt needs the Debian packages ${need[*]}: install them as root (apt-get install ${need[*]})" >&2
    exit 1
  fi
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
