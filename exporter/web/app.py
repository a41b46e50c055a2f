"""The HTTP side: one WSGI app serving /metrics, /api/status, /healthz and the card, and a threaded server.

An app factory (`create_app`) keeps the routes testable in-process; `start_server` binds a real socket.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from ..core.version import __version__
from .status import UnknownPair, status_payload
from .view import ExporterView

log = logging.getLogger("kraken_capacity_exporter.http")

# The read-only "Capacity & Fill Health" card: one static page, no external CDN, no build step.
CARD_HTML = resources.files("exporter.web").joinpath("card.html").read_bytes()
CARD_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


def _json(start_response: StartResponse, status: str, body: Any) -> list[bytes]:
    data = json.dumps(body, allow_nan=False, indent=1).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def create_app(exporter: ExporterView) -> WSGIApp:
    """The exporter's routes: /metrics, /api/status, /healthz, and the card at /."""
    metrics_app = make_wsgi_app(exporter.registry)

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "read-only: GET only"})
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/api/status":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            pair = query.get("pair", [None])[0]
            try:
                return _json(start_response, "200 OK", status_payload(exporter, pair))
            except UnknownPair:
                return _json(start_response, "404 Not Found",
                             {"error": f"unknown pair {pair!r}", "pairs": exporter.pairs})
        if path in ("/", "/card"):
            body = CARD_HTML
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store"), ("Content-Security-Policy", CARD_CSP)])
            return [body]
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok", "version": __version__, "pairs": exporter.pairs})
        return _json(start_response, "404 Not Found", {"error": f"no route {path}"})

    return app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)


class RunningServer:
    """A started server: `url`, `port`, and `stop()`."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host, self.port = server.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host!s}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_server(app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve `app` in a daemon thread; port 0 picks a free port. Raises OSError when the port is taken."""
    server = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="exporter-http", daemon=True)
    thread.start()
    return RunningServer(server, thread)
