#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian's prometheus, prometheus-alertmanager and
# chromium; the project with its test extras), then runs the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=0
for bin in promtool prometheus prometheus-alertmanager amtool chromium; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
    prometheus prometheus-alertmanager chromium
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m ruff check exporter tests bench grafana scripts
python3 -m mypy exporter
exec python3 -m pytest "$@"
