"""A local fake of Kraken's REST API, shared by the demo and the tests.

It speaks Kraken's shapes (`{"error": [...], "result": {...}}`, numbers as strings, `descr.pair` altnames) and
checks what krakenex really sends: the `API-Key` header, the `API-Sign` HMAC-SHA512 over the URL path and the
SHA-256 of nonce + body, and a strictly increasing nonce per key. A bad key or signature gets
`EAPI:Invalid key`, an old nonce `EAPI:Invalid nonce`. It can be told to fail (`fail(...)`: any HTTP 5xx, a slow
or trickling reply, a body cut off, garbage, an empty body, `open` of the wrong type, or any Kraken error string),
to revoke the key (`revoke_key()`) or to see a higher nonce from another client (`advance_nonce()`), records every
endpoint called (`calls`), and never trades: any other private endpoint is recorded and refused.
It binds 127.0.0.1 only.

`GetWebSocketsToken` hands out tokens for the fake's WebSocket v2 stream (`fake_kraken_stream.py`), as Kraken does:
good for 15 minutes until a subscription uses them, refused with `EGeneral:Permission denied` when the key lacks the
"WebSocket interface" permission (`permissions=`); `OpenOrders`, `ClosedOrders` and `QueryOrders` check the
"Query Open/Closed Orders & Trades" permissions as Kraken does. With an `account=` (`fake_account.FakeAccount`) the
REST side reads its orders: `OpenOrders`, `QueryOrders` (open or closed) and `ClosedOrders` (`start`, `ofs`, 50 a page). With
`rest_counter=(max, decay)` (e.g. `STARTER`) it keeps Kraken's private call counter per key, each call +1, and refuses a
call that would pass the max with `EAPI:Rate limit exceeded`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse

# A few real AssetPairs entries (abridged to the fields we read).
ASSET_PAIRS: dict[str, dict[str, Any]] = {
    "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD", "base": "XXDG", "quote": "ZUSD", "status": "online"},
    "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD", "status": "online"},
    "XETHZUSD": {"altname": "ETHUSD", "wsname": "ETH/USD", "base": "XETH", "quote": "ZUSD", "status": "online"},
    "SOLUSD": {"altname": "SOLUSD", "wsname": "SOL/USD", "base": "SOL", "quote": "ZUSD", "status": "online"},
}

# Failure modes besides Kraken error strings (any "E..." string is returned in the error array).
HTTP_500 = "http_500"  # any "http_5xx" works: http_502, http_503, http_504...
SLOW = "slow"  # the whole reply after `slow_seconds`
TRICKLE = "trickle"  # a valid reply, one byte every `trickle_seconds`
TRUNCATED = "truncated"  # Content-Length promises more than is sent, then the connection closes
TRUNCATED_JSON = "truncated_json"  # a complete HTTP reply whose JSON stops half-way
GARBAGE = "garbage"
EMPTY = "empty"  # 200 with an empty body
WRONG_OPEN = "wrong_open"  # a valid envelope whose `open` is a list, not an object
STALE_NONCE = "stale_nonce"


class Account(Protocol):
    """The orders the REST side reads (`fake_account.FakeAccount`)."""

    def open_orders(self) -> dict[str, dict[str, Any]]: ...
    def query(self, txids: list[str]) -> dict[str, dict[str, Any]]: ...
    def closed_since(self, start: float) -> dict[str, dict[str, Any]]: ...


# Key permissions, as Kraken's API settings name them; a read-only monitoring key has all three and nothing else.
QUERY_OPEN = "Query Open Orders & Trades"
QUERY_CLOSED = "Query Closed Orders & Trades"
WEBSOCKET = "WebSocket interface"
READ_ONLY_PERMISSIONS = frozenset({QUERY_OPEN, QUERY_CLOSED, WEBSOCKET})
# Kraken's private REST call counter per key (max, decay per second): Starter, Intermediate, Pro.
STARTER, INTERMEDIATE, PRO = (15.0, 0.33), (20.0, 0.5), (20.0, 1.0)
TOKEN_LIFETIME = 900.0  # seconds a WebSocket token may wait for its first subscription
CLOSED_ORDERS_PAGE = 50


class WsTokens:
    """The WebSocket tokens handed out: each good for `lifetime` seconds until a subscription uses it, then for as
    long as that subscription stays up. `check` returns None for a good token, else Kraken's error text."""

    def __init__(self, lifetime: float = TOKEN_LIFETIME) -> None:
        self.lifetime = lifetime
        self._issued: dict[str, float] = {}
        self._used: set[str] = set()
        self.refuse_next = 0  # the next N subscriptions are refused, whatever their token (a scripted fault)
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = base64.b64encode(hashlib.sha256(f"{time.time_ns()}-{len(self._issued)}".encode()).digest()).decode()
        with self._lock:
            self._issued[token] = time.monotonic()
        return token

    def check(self, token: Any) -> str | None:
        with self._lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                return INVALID_TOKEN
            issued = self._issued.get(token) if isinstance(token, str) else None
            if issued is None:
                return INVALID_TOKEN
            if token not in self._used and time.monotonic() - issued > self.lifetime:
                return INVALID_TOKEN
            self._used.add(token)
            return None

    def expire_all(self) -> None:
        """Every token handed out so far is past its 15 minutes (used ones too: their subscriptions ended)."""
        with self._lock:
            self._issued = {t: -self.lifetime * 2 for t in self._issued}
            self._used.clear()

    @property
    def issued(self) -> int:
        with self._lock:
            return len(self._issued)


# What the fake answers a subscription with a token it does not accept (third-party clients report this text).
INVALID_TOKEN = "ESession:Invalid session"


def kraken_signature(secret: str, urlpath: str, nonce: str, body: bytes) -> str:
    """Kraken's API-Sign: base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body)))."""
    message = urlpath.encode() + hashlib.sha256(nonce.encode() + body).digest()
    return base64.b64encode(hmac.new(base64.b64decode(secret), message, hashlib.sha512).digest()).decode()


def order_info(pair: str, vol: str = "13.00000000", vol_exec: str = "0.00000000", status: str = "open") -> dict:
    """One OrderInfo as OpenOrders reports it."""
    return {
        "refid": None, "userref": 0, "status": status, "opentm": time.time(), "starttm": 0, "expiretm": 0,
        "descr": {"pair": pair, "type": "buy", "ordertype": "limit", "price": "0.1850000", "price2": "0",
                  "leverage": "none", "order": f"buy {vol} {pair} @ limit 0.1850000", "close": ""},
        "vol": vol, "vol_exec": vol_exec, "cost": "0.000000000", "fee": "0.000000000", "price": "0.000000000",
        "stopprice": "0.000000000", "limitprice": "0.000000000", "misc": "", "oflags": "fciq",
    }


class FakeKraken:
    """`FakeKraken(key, secret, open_orders=...)`; `start()` returns its URL for `krakenex.API.uri`."""

    def __init__(
        self,
        key: str,
        secret: str,
        open_orders: dict[str, dict] | Callable[[], dict[str, dict]] | None = None,
        slow_seconds: float = 5.0,
        trickle_seconds: float = 1.0,
        account: Account | None = None,
        permissions: frozenset[str] = READ_ONLY_PERMISSIONS,
        rest_counter: tuple[float, float] | None = None,
    ) -> None:
        self.key = key
        self.rest_counter = rest_counter  # (max, decay/s): Kraken's call counter, off when None
        self._counter_level, self._counter_at = 0.0, time.monotonic()
        self.rate_limited = 0  # calls refused with EAPI:Rate limit exceeded
        self._secret = secret
        self.account = account
        self.permissions = permissions
        self.tokens = WsTokens()
        if open_orders is None and account is not None:
            open_orders = account.open_orders
        self._open_orders = open_orders if open_orders is not None else {}
        self.slow_seconds = slow_seconds
        self.trickle_seconds = trickle_seconds
        self._stopping = threading.Event()
        self.calls: list[str] = []
        self.rejections: list[str] = []
        self._failure: str | None = None
        self._failures_left: int | None = None
        self._last_nonce: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __repr__(self) -> str:
        return f"FakeKraken(url={self.url if self._server else None!r})"

    # ---- scripting ---------------------------------------------------------------------------

    def fail(self, mode: str, times: int | None = None) -> None:
        """Fail every request (or the next `times`) with `mode`: one of the modes above or "E..."."""
        with self._lock:
            self._failure, self._failures_left = mode, times

    def heal(self) -> None:
        with self._lock:
            self._failure, self._failures_left = None, None

    def revoke_key(self) -> None:
        """The key is deleted on Kraken's side: every private call now gets `EAPI:Invalid key`."""
        with self._lock:
            self.key = f"revoked-{self.key}"

    def restore_key(self, key: str) -> None:
        with self._lock:
            self.key = key

    def advance_nonce(self, milliseconds: float) -> None:
        """Another client used the key with a nonce `milliseconds` ahead of now: older nonces are refused."""
        with self._lock:
            self._last_nonce[self.key] = max(self._last_nonce.get(self.key, 0), int(time.time() * 1000 + milliseconds))

    def set_open_orders(self, open_orders: dict[str, dict] | Callable[[], dict[str, dict]]) -> None:
        with self._lock:
            self._open_orders = open_orders

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1:`port` (0: any free port) and return the URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.1,), name="fake-kraken", daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- requests ----------------------------------------------------------------------------

    def _take_failure(self) -> str | None:
        with self._lock:
            mode = self._failure
            if mode is not None and self._failures_left is not None:
                self._failures_left -= 1
                if self._failures_left <= 0:
                    self._failure, self._failures_left = None, None
            return mode

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        parts = parsed.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "0" or parts[1] not in ("public", "private"):
            return self._send(request, 404, b"<html>404 Not Found</html>", "text/html")
        kind, endpoint = parts[1], parts[2]
        with self._lock:
            self.calls.append(f"{kind}/{endpoint}")
        mode = self._take_failure()
        if mode is not None and mode.startswith("http_5"):
            code = int(mode.removeprefix("http_"))
            return self._send(request, code, f"<html><body>{code} Server Error</body></html>".encode(), "text/html")
        if mode == SLOW:
            self._stopping.wait(self.slow_seconds)
        if mode in _BODY_FAULTS:
            return self._send(request, 200, *_BODY_FAULTS[mode])
        if mode == STALE_NONCE:
            return self._reply(request, ["EAPI:Invalid nonce"])
        if mode and mode.startswith("E"):
            return self._reply(request, [mode])
        request.fault = mode  # type: ignore[attr-defined]  # TRICKLE, TRUNCATED, WRONG_OPEN: shape the real reply
        if kind == "public":
            if method != "GET":
                return self._reply(request, ["EGeneral:Invalid arguments"])
            return self._public(request, endpoint, parse_qs(parsed.query))
        if method != "POST":
            return self._reply(request, ["EGeneral:Invalid arguments"])
        error = self._verify(request, parsed.path, body)
        if error:
            with self._lock:
                self.rejections.append(error)
            return self._reply(request, [error])
        return self._private(request, endpoint, parse_qs(body.decode()))

    def _verify(self, request: BaseHTTPRequestHandler, path: str, body: bytes) -> str | None:
        form = parse_qs(body.decode(errors="replace"))
        nonce = (form.get("nonce") or [""])[0]
        if request.headers.get("API-Key") != self.key:
            return "EAPI:Invalid key"
        if not nonce.isdigit():
            return "EAPI:Invalid nonce"
        expected = kraken_signature(self._secret, path, nonce, body)
        if not hmac.compare_digest(expected, request.headers.get("API-Sign", "")):
            return "EAPI:Invalid key"
        with self._lock:
            if int(nonce) <= self._last_nonce.get(self.key, 0):
                return "EAPI:Invalid nonce"
            self._last_nonce[self.key] = int(nonce)
        return None

    def _public(self, request: BaseHTTPRequestHandler, endpoint: str, query: dict[str, list[str]]) -> None:
        if endpoint == "Time":
            now = int(time.time())
            return self._reply(request, [], {"unixtime": now, "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000")})
        if endpoint == "AssetPairs":
            wanted = [p for p in ",".join(query.get("pair", [])).split(",") if p]
            if not wanted:
                return self._reply(request, [], ASSET_PAIRS)
            found = {k: v for k, v in ASSET_PAIRS.items() if k in wanted or v["altname"] in wanted}
            if len(found) < len(wanted):
                return self._reply(request, ["EQuery:Unknown asset pair"])
            return self._reply(request, [], found)
        return self._reply(request, ["EGeneral:Unknown method"])

    def _count_call(self) -> bool:
        """Kraken's private call counter: +1 a call, decaying at the tier's rate; False (refused, not counted) when
        the call would take it past its max."""
        if self.rest_counter is None:
            return True
        top, decay = self.rest_counter
        with self._lock:
            now = time.monotonic()
            level = max(0.0, self._counter_level - (now - self._counter_at) * decay)
            self._counter_at = now
            if level + 1.0 > top:
                self._counter_level = level
                self.rate_limited += 1
                return False
            self._counter_level = level + 1.0
            return True

    def _private(self, request: BaseHTTPRequestHandler, endpoint: str, form: dict[str, list[str]]) -> None:
        if not self._count_call():
            return self._reply(request, ["EAPI:Rate limit exceeded"])
        with self._lock:
            source = self._open_orders
        orders = source() if callable(source) else source
        denied = self._denied(endpoint, form)
        if denied:
            return self._reply(request, [denied])
        if endpoint == "OpenOrders":
            if getattr(request, "fault", None) == WRONG_OPEN:
                return self._reply(request, [], {"open": list(orders.values())})
            return self._reply(request, [], {"open": orders})
        if endpoint == "QueryOrders":
            txids = (form.get("txid") or [""])[0].split(",")
            if len(txids) > CLOSED_ORDERS_PAGE:
                return self._reply(request, ["EGeneral:Invalid arguments:txid"])
            if self.account is not None:
                found = self.account.query(txids)
                if len(found) < len(set(txids)):  # as Kraken: one txid it does not know fails the whole call
                    return self._reply(request, ["EOrder:Invalid order"])
                return self._reply(request, [], found)
            return self._reply(request, [], {t: orders[t] for t in txids if t in orders})
        if endpoint == "ClosedOrders" and self.account is not None:
            start = float((form.get("start") or ["0"])[0])
            offset = int((form.get("ofs") or ["0"])[0])
            closed = self.account.closed_since(start)
            page = dict(list(closed.items())[offset:offset + CLOSED_ORDERS_PAGE])
            return self._reply(request, [], {"closed": page, "count": len(closed)})
        if endpoint == "GetWebSocketsToken":
            if WEBSOCKET not in self.permissions:
                return self._reply(request, ["EGeneral:Permission denied"])
            return self._reply(request, [], {"token": self.tokens.issue(), "expires": int(TOKEN_LIFETIME)})
        return self._reply(request, ["EGeneral:Permission denied"])  # this fake never trades

    def _denied(self, endpoint: str, form: dict[str, list[str]]) -> str | None:
        """Kraken's key permissions: `OpenOrders` needs Query Open Orders & Trades, `ClosedOrders` Query Closed
        Orders & Trades, and `QueryOrders` either, depending on each order's status (Kraken's documentation)."""
        needed: set[str] = set()
        if endpoint == "OpenOrders":
            needed.add(QUERY_OPEN)
        elif endpoint == "ClosedOrders":
            needed.add(QUERY_CLOSED)
        elif endpoint == "QueryOrders" and self.account is not None:
            found = self.account.query((form.get("txid") or [""])[0].split(","))
            for info in found.values():
                needed.add(QUERY_OPEN if info.get("status") in ("open", "pending") else QUERY_CLOSED)
        return "EGeneral:Permission denied" if needed - self.permissions else None

    def _reply(self, request: BaseHTTPRequestHandler, errors: list[str], result: Any = None) -> None:
        payload: dict[str, Any] = {"error": errors}
        if result is not None:
            payload["result"] = result
        self._send(request, 200, json.dumps(payload).encode(), "application/json")

    def _send(self, request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        fault = getattr(request, "fault", None)
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            if fault == TRUNCATED:
                request.wfile.write(body[: len(body) // 2])
                request.wfile.flush()
                request.close_connection = True
            elif fault == TRICKLE:
                self._trickle(request, body)
            else:
                request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. after its timeout)

    def _trickle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        for i in range(len(body)):
            if self._stopping.wait(self.trickle_seconds):
                request.close_connection = True
                return
            request.wfile.write(body[i:i + 1])
            request.wfile.flush()


_BODY_FAULTS: dict[str, tuple[bytes, str]] = {
    GARBAGE: (b"<html>cloudflare says hello</html>", "text/html"),
    TRUNCATED_JSON: (b'{"error":[],"result":{"open":{"OQCLML-BW3P3-BUCMWZ":{"status":"open","descr":{"pa', "application/json"),
    EMPTY: (b"", "application/json"),
}
