"""The scripted week (tests/rollout_week.py) loaded into real stores: Prometheus backfilled by promtool, and
VictoriaMetrics through its import API. Shared by the rollout tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests

from tests.conftest import free_port, require_binary
from tests.harness import Prometheus
from tests.rollout_week import Week
from tests.victoria import VictoriaMetrics


def backfill(week: Week, tmp: Path) -> Path:
    """A Prometheus data dir holding the week (or anything with `openmetrics()` lines), made by `promtool tsdb
    create-blocks-from openmetrics`."""
    promtool = require_binary("promtool")
    source, data = tmp / "week.om", tmp / "data"
    with source.open("w") as f:
        f.writelines(week.openmetrics())
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                   check=True, capture_output=True, timeout=120)
    source.unlink()
    return data


def start_prometheus_on(data: Path, tmp: Path, web_config: Path | None = None,
                        verify: str | bool = True, auth: tuple[str, str] | None = None,
                        cert: tuple[str, str] | None = None, retention: str = "30d") -> Prometheus:
    """Prometheus on a data dir, retention 30d (or `retention`) so no block is outside it; with a web config,
    behind TLS/auth."""
    binary = require_binary("prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1m}\nscrape_configs: []\n")
    port = free_port()
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={data}", f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address=127.0.0.1:{port}"]
    if web_config:
        args.append(f"--web.config.file={web_config}")
    scheme = "https" if web_config and "tls_server_config" in web_config.read_text() else "http"
    server = Prometheus(args, f"{scheme}://127.0.0.1:{port}", tmp / f"prometheus-{port}.log")
    _wait(server, verify, auth, cert)
    return server


def _wait(server: Prometheus, verify: str | bool, auth: tuple[str, str] | None, cert: tuple[str, str] | None) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {server.log_path.read_text()[-2000:]}")
        try:
            if requests.get(server.url + "/-/ready", verify=verify, auth=auth, cert=cert, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"{server.url}/-/ready not ready in 30 s")


def start_victoria_with(week: Week, tmp: Path, **options) -> VictoriaMetrics:
    """VictoriaMetrics (options as `VictoriaMetrics` takes them) with the week imported."""
    vm = VictoriaMetrics(tmp, **options)
    try:
        vm.import_prometheus(week.prometheus_text())
    except BaseException:
        vm.stop()
        raise
    return vm
