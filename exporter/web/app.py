"""The HTTP side: one WSGI app serving /metrics, /api/status, /healthz, /livez, the card and /runbooks.

An app factory (`create_app`) keeps the routes testable in-process; `start_server` (in `server.py`, re-exported
here) binds a real socket. With a web config, every route sits behind its basic auth and headers.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .auth import protect
from .health import health_payload
from .runbooks import RUNBOOKS_CSP, RUNBOOKS_HTML
from .server import HttpSettings, RunningServer, start_server
from .status import UnknownPair, status_payload
from .view import ExporterView
from .web_config import WebConfigFile

__all__ = ["CARD_HTML", "HttpSettings", "RunningServer", "WebConfigFile", "create_app", "start_server"]

log = logging.getLogger("kraken_capacity_exporter.http")

# The read-only "Capacity & Fill Health" card: one static page, no external CDN, no build step.
CARD_HTML = resources.files("exporter.web").joinpath("card.html").read_bytes()
CARD_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'"
ALLOWED_METHODS = "GET, HEAD"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]


class WebConfigCollector(Collector):
    """`krakenbot_web_config_reload_failed`: 1 while the web config file on disk is refused and the previous version
    serves on (it does not load, or turns TLS on or off); /healthz's `web_config` says why."""

    def __init__(self, web: WebConfigFile) -> None:
        self._web = web

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("krakenbot_web_config_reload_failed",
                                "1 while the web config file on disk is refused and the previous version stays in force",
                                value=1.0 if self._web.reload_error else 0.0)


def _json(start_response: StartResponse, status: str, body: Any, *extra: tuple[str, str]) -> list[bytes]:
    data = json.dumps(body, allow_nan=False, indent=1).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store"), *extra])
    return [data]


def create_app(exporter: ExporterView, web: WebConfigFile | None = None) -> WSGIApp:
    """The exporter's routes: /metrics, /api/status, /healthz, /livez, the card at /, and /runbooks.

    `web`: a loaded `--web-config-file`; its basic auth and headers then apply to every route, and
    `krakenbot_web_config_reload_failed` joins the exporter's registry."""
    metrics_app = make_wsgi_app(exporter.registry)
    if web is not None:
        with contextlib.suppress(ValueError):  # already there: a second app over the same registry
            exporter.registry.register(WebConfigCollector(web))

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "read-only: GET or HEAD only"},
                         ("Allow", ALLOWED_METHODS))
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
        if path == "/runbooks":
            body = RUNBOOKS_HTML
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                                      ("Content-Security-Policy", RUNBOOKS_CSP)])
            return [body]
        if path == "/healthz":
            code, health = health_payload(exporter, web)
            return _json(start_response, "200 OK" if code == 200 else "503 Service Unavailable", health)
        if path == "/livez":
            return _json(start_response, "200 OK", {"status": "alive"})
        return _json(start_response, "404 Not Found", {"error": f"no route {path}"})

    return protect(app, web) if web is not None else app
