"""Basic auth and the web config's response headers, as WSGI middleware in front of every route.

With `basic_auth_users` configured, every request needs a user and password whose bcrypt hash matches; anything
else gets 401 with `WWW-Authenticate`. An unknown user is compared against a dummy hash of the same cost, so a
wrong password takes as long whether the user exists or not. A successful check is cached by a SHA-256 of
user, password and hash (as exporter-toolkit does), so Prometheus and the card do not pay bcrypt on every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import bcrypt

from .web_config import WebConfig, WebConfigFile

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]
REALM = 'Basic realm="kraken-capacity-exporter", charset="UTF-8"'
CACHE_SIZE = 256


def parse_basic(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None when there is none or it is malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class BasicAuthChecker:
    """Checks credentials against the current users; constant work for unknown users, cached successes."""

    def __init__(self) -> None:
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, config: WebConfig, credentials: tuple[str, bytes] | None) -> bool:
        if credentials is None:
            return False
        user, password = credentials
        hashed = config.users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), password, hashed or b""))).digest()
        if hashed is not None and key in self._ok:
            return True
        try:
            matches = bcrypt.checkpw(password, hashed or config.dummy_hash)
        except ValueError:  # a password bcrypt refuses (e.g. a NUL byte): wrong, after the same work
            matches = False
        if matches and hashed is not None:
            with self._lock:
                if len(self._ok) >= CACHE_SIZE:
                    self._ok.clear()
                self._ok.add(key)
            return True
        return False


def protect(app: WSGIApp, web: WebConfigFile) -> WSGIApp:
    """`app` behind the web config's basic auth and headers, both read per request (so a changed file applies)."""
    checker = BasicAuthChecker()

    def protected(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        config = web.current()

        def with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = {name.lower() for name, _ in config.headers}
            merged = [(n, v) for n, v in headers if n.lower() not in names] + list(config.headers)
            return start_response(status, merged, exc_info) if exc_info else start_response(status, merged)

        if config.users and not checker.check(config, parse_basic(environ.get("HTTP_AUTHORIZATION"))):
            body = json.dumps({"error": "unauthorized: basic auth required"}).encode()
            with_headers("401 Unauthorized", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                              ("WWW-Authenticate", REALM), ("Cache-Control", "no-store")])
            return [body]
        return app(environ, with_headers)

    return protected
