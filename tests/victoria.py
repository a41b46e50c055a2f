"""Real VictoriaMetrics parts (Debian's `victoria-metrics`) on 127.0.0.1 for the tests of a scaled-out store, and
a recording proxy that shows what a client asked of a store.

Each server gets a free port and a temporary data dir, is polled until ready (never a blind sleep) and is stopped by
the caller. VictoriaMetrics can run behind TLS (`-tls -tlsCertFile -tlsKeyFile`), basic auth (`-httpAuth.*`) and a
path prefix (`-http.pathPrefix`, as vmselect's `/select/0/prometheus` puts the query API below one); `vmauth` (same
package) puts a bearer token in front of it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import yaml

from tests.conftest import free_port, require_binary
from tests.harness import Process

# VictoriaMetrics stores a value with 12 significant decimal digits (0.7619047619047619 comes back as
# 0.761904761905), so a float read from it agrees with Prometheus' to that precision and no further.
VM_DIGITS = 1e-11


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Equal structures: keys, lists, strings, integers and nulls exactly; floats to VictoriaMetrics' precision."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not float(a).is_integer():
        assert isinstance(b, float) and math.isclose(a, b, rel_tol=VM_DIGITS), (path, a, b)
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


class VictoriaMetrics(Process):
    """`url` is the server's root (with the path prefix); `query_url` the Prometheus query API below it."""

    def __init__(self, tmp: Path, *, tls: tuple[Path, Path] | None = None, ca: Path | None = None,
                 auth: tuple[str, str] | None = None, path_prefix: str = "", extra: list[str] | None = None) -> None:
        binary = require_binary("victoria-metrics")
        port = free_port()
        data = tmp / f"vm-data-{port}"
        args = [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={data}", "-retentionPeriod=100y",
                "-loggerLevel=WARN", *(extra or [])]
        if tls:
            args += ["-tls", f"-tlsCertFile={tls[0]}", f"-tlsKeyFile={tls[1]}"]
        if auth:
            args += [f"-httpAuth.username={auth[0]}", f"-httpAuth.password={auth[1]}"]
        if path_prefix:
            args.append(f"-http.pathPrefix={path_prefix}")
        scheme = "https" if tls else "http"
        super().__init__(args, f"{scheme}://127.0.0.1:{port}{path_prefix}", tmp / f"victoria-metrics-{port}.log")
        self.query_url = self.url + "/prometheus"
        self.write_url = self.url + "/api/v1/write"
        self.auth = auth
        self.verify: Any = str(ca) if ca else True
        self._wait("/health")

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.url + path, params=params, auth=self.auth, verify=self.verify, timeout=30)

    def _wait(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited: {self.log_path.read_text()[-2000:]}")
            try:
                if self.get(path).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.url}{path} not ready in {timeout} s")

    def import_prometheus(self, lines: Any) -> None:
        """Samples with their own timestamps (Prometheus text format, milliseconds) through
        `/api/v1/import/prometheus`, then flushed so that queries see them at once."""
        body = "".join(lines).encode()
        response = requests.post(self.url + "/api/v1/import/prometheus", data=body, auth=self.auth,
                                 verify=self.verify, timeout=300)
        assert response.status_code == 204, response.text
        assert self.get("/internal/force_flush").status_code == 200

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        body = self.get("/prometheus/api/v1/query", query=expr, time=f"{at:.3f}").json()
        assert body["status"] == "success", body
        return body["data"]["result"]


class VmAuth(Process):
    """`vmauth` in front of `target`, letting through only requests with `Authorization: Bearer <token>`, or with
    `basic` (user, password) only that user's basic auth."""

    def __init__(self, tmp: Path, target: str, token: str | None = None,
                 basic: tuple[str, str] | None = None) -> None:
        binary = require_binary("vmauth")
        port = free_port()
        config = tmp / f"vmauth-{port}.yml"
        user = {"bearer_token": token} if basic is None else {"username": basic[0], "password": basic[1]}
        config.write_text(yaml.safe_dump({"users": [{**user, "url_prefix": target}]}))
        super().__init__([binary, f"-httpListenAddr=127.0.0.1:{port}", f"-auth.config={config}", "-loggerLevel=WARN"],
                         f"http://127.0.0.1:{port}", tmp / f"vmauth-{port}.log")
        self.query_url = self.url + "/prometheus"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # /health answers without a token once vmauth listens
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"vmauth at {self.url} not ready: {self.log_path.read_text()[-2000:]}")


class RecordingProxy:
    """Forwards GETs below `prefix` to `upstream` and records each request's path, parameters and headers.

    With `tenant_header`, it first answers 401 `no org id` to a request without that header, as Mimir does.
    """

    def __init__(self, upstream: str, prefix: str = "", tenant_header: str | None = None) -> None:
        self.requests: list[tuple[str, list[tuple[str, str]], dict[str, str]]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with proxy._lock:
                    proxy.requests.append((parts.path, parse_qsl(parts.query), dict(self.headers.items())))
                if tenant_header and not self.headers.get(tenant_header):
                    return self._answer(401, b"no org id\n", "text/plain")
                if not parts.path.startswith(prefix + "/"):
                    return self._answer(404, b"404 page not found\n", "text/plain")
                try:
                    forwarded = requests.get(upstream + parts.path[len(prefix):], params=parse_qsl(parts.query),
                                             timeout=30)
                except requests.RequestException:
                    return self._answer(502, b"bad gateway\n", "text/plain")
                self._answer(forwarded.status_code, forwarded.content, forwarded.headers.get("Content-Type", ""))

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{prefix}"
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _, _ in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


def prometheus_json(data: Any, **extra: Any) -> Answer:
    """A Prometheus API success answer holding `data` (and `extra` top-level keys: warnings, isPartial)."""
    return 200, {"Content-Type": "application/json"}, json.dumps({"status": "success", "data": data, **extra}).encode()


def empty_store(path: str, params: dict[str, str]) -> Answer:
    """What a store with pair XDGUSD's name but no sample answers: every query empty, the pair in label values."""
    if "/label/" in path:
        return prometheus_json(["XDGUSD"])
    if path.endswith("/query") and not params.get("query", "").endswith("]"):
        return prometheus_json({"resultType": "vector", "result": []})
    return prometheus_json({"resultType": "matrix", "result": []})


class StubStore:
    """A store that is not one, for answers no real store gives on demand (a partial answer, a malformed one, a
    credential echoed, a redirect): a real HTTP server on 127.0.0.1 whose `answer(path, params, headers)` says
    what to send, recording each request's path, parameters and raw headers (bytes as they came)."""

    def __init__(self, answer: Callable[[str, dict[str, str], dict[str, bytes]], Answer] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, bytes]]] = []
        self._lock = threading.Lock()
        store = self
        respond = answer or (lambda path, params, headers: empty_store(path, params))

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                # http.server decodes header bytes as Latin-1: encoding them back gives the bytes sent
                headers = {k.lower(): v.encode("latin-1") for k, v in self.headers.items()}
                with store._lock:
                    store.requests.append((parts.path, params, headers))
                status, extra, body = respond(parts.path, params, headers)
                self.send_response(status)
                for name, value in {"Content-Type": "text/plain", **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def headers(self, name: str) -> list[bytes | None]:
        """The raw value of header `name` in each request received, None where it was absent."""
        with self._lock:
            return [h.get(name.lower()) for _, _, h in self.requests]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
