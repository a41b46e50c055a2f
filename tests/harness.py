"""Real Prometheus, Alertmanager and a webhook receiver on 127.0.0.1 for end-to-end tests.

Each component gets a free port and a temporary data dir, is polled until ready (never a blind sleep), and is
stopped by the caller's fixture. Binaries come from Debian's `prometheus` and `prometheus-alertmanager`.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.conftest import free_port, require_binary, wait_for

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "rules.yml"
ALERTMANAGER_CONFIG = ROOT / "alerts" / "alertmanager.yml"


def fast_rules(target: Path) -> Path:
    """The shipped rules with every `for:` in minutes turned into seconds, so a page arrives within a test.

    Expressions, labels and annotations are untouched; promtool's unit tests cover the real durations.
    """
    text = re.sub(r"for: (\d+)m\b", r"for: \1s", RULES.read_text())
    target.write_text(text)
    return target


class Process:
    def __init__(self, args: list[str], url: str, log: Path) -> None:
        self.url = url
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.url} exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}{path} not ready in {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Prometheus(Process):
    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = str(at)
        body = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 40.0) -> float | None:
        """Poll until `expr` equals `expected`; returns the last value seen either way."""
        wait_for(lambda: self.value(expr) == expected, timeout=timeout, step=0.25)
        return self.value(expr)


def start_prometheus(tmp: Path, targets: dict[str, list[str]], alertmanager: str | None = None,
                     rules: Path | None = None) -> Prometheus:
    binary = require_binary("prometheus")
    port = free_port()
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)] if rules else [],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [t.split("|")[0]], "labels": _labels(t)} for t in hosts]}
            for job, hosts in targets.items()
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    prom = Prometheus(
        [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        f"http://127.0.0.1:{port}", tmp / "prometheus.log",
    )
    prom.wait_ready("/-/ready")
    return prom


def _labels(target: str) -> dict[str, str]:
    """`host:port|bot=a` -> {"bot": "a"}."""
    if "|" not in target:
        return {}
    return dict(pair.split("=", 1) for pair in target.split("|", 1)[1].split(","))


def start_alertmanager(tmp: Path, webhook_url: str) -> Process:
    binary = require_binary("prometheus-alertmanager")
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url}/{receiver['name']}"
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    am = Process(
        [binary, f"--config.file={path}", f"--storage.path={tmp / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        f"http://127.0.0.1:{port}", tmp / "alertmanager.log",
    )
    am.wait_ready("/-/ready")
    return am


class WebhookReceiver:
    """Records every Alertmanager webhook POST by path (/pager, /tickets)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def alerts(self, path: str) -> list[dict]:
        with self._lock:
            return [alert for p, body in self.received if p == path for alert in body.get("alerts", [])]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
