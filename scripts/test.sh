#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian's prometheus, prometheus-alertmanager,
# victoria-metrics and chromium; the project with its test extras), then runs ruff, mypy and the whole pytest suite.
# On a Python that refuses `pip install` outside a virtual environment (Debian's own, PEP 668) and with no
# environment active, it creates and uses .venv in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "$@"
}

need_apt=0
for bin in promtool prometheus prometheus-alertmanager amtool victoria-metrics vmauth chromium; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=1
done
[ "$need_apt" = 0 ] || apt_install prometheus prometheus-alertmanager victoria-metrics chromium

PY=python3
if [ -z "${VIRTUAL_ENV:-}" ] && "$PY" -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  "$PY" -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  PY=.venv/bin/python
fi

"$PY" -m pip install --quiet --disable-pip-version-check -e '.[test]'
"$PY" -m ruff check exporter tests bench grafana scripts alerts docs
"$PY" -m mypy exporter
exec "$PY" -m pytest "$@"
