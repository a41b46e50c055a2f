"""A read-only door to Kraken through krakenex: an allow-list of endpoints, and every failure classified.

krakenex signs requests (API-Key / API-Sign) and raises or returns errors in several ways: HTTP errors,
timeouts, refused connections, non-JSON bodies, or Kraken's `error` array in a 200 reply. `ReadOnlyKraken`
turns each into a `KrakenError` with a stable `result` label for `krakenbot_kraken_requests_total`.

`timeout` bounds the whole call, not each socket read: requests' own timeout restarts with every byte, so a
server trickling its reply could hold a call for minutes. Each call runs in its own daemon thread; when the
deadline passes the call is abandoned (it ends by itself at requests' read timeout or when the server finishes),
counted as `timeout`, and the next call gets a fresh krakenex client, so it never shares a connection with it.

Private calls are made one at a time, each with a nonce above the one before: krakenex's nonce is the time in
milliseconds, and the poller and the stream share one key, so two calls in the same millisecond (or overtaking
each other) would be refused as `EAPI:Invalid nonce`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import krakenex
import requests

from ..core import defaults
from .credentials import KrakenCredentials

KRAKEN_URL = defaults.KRAKEN_URL
# The only endpoints this project may call. Anything that trades (AddOrder, CancelOrder, EditOrder, ...) is absent.
READ_ONLY_PUBLIC = frozenset({"AssetPairs", "Time"})
READ_ONLY_PRIVATE = frozenset({"OpenOrders", "QueryOrders", "ClosedOrders", "GetWebSocketsToken"})

# Kraken error prefix -> result label; the first matching prefix wins.
_KRAKEN_ERRORS = (
    ("EAPI:Rate limit exceeded", "rate_limited"),
    ("EService: Throttled", "rate_limited"),
    ("EService:Throttled", "rate_limited"),
    ("EGeneral:Temporary lockout", "rate_limited"),
    ("EService:Unavailable", "service_unavailable"),
    ("EService:Busy", "service_busy"),
    ("EService:Deadline elapsed", "service_busy"),
    ("EAPI:Invalid nonce", "invalid_nonce"),
    ("EAPI:Invalid key", "invalid_key"),
    ("EAPI:Invalid signature", "invalid_key"),
    ("EGeneral:Permission denied", "permission_denied"),
    ("EQuery:Unknown asset pair", "unknown_pair"),
)
RESULTS = (
    "ok", "http_error", "timeout", "connection_error", "invalid_json", "malformed_reply", "rate_limited",
    "service_unavailable", "service_busy", "invalid_nonce", "invalid_key", "permission_denied", "unknown_pair",
    "kraken_error",
)
RATE_LIMIT_RESULTS = frozenset({"rate_limited"})
AUTH_RESULTS = frozenset({"invalid_key", "permission_denied"})
MAX_ABANDONED_CALLS = 4  # calls past their deadline still running; beyond this no new call starts


class ReadOnlyViolation(RuntimeError):
    """A call to an endpoint outside the allow-list: a bug, never sent."""


class KrakenError(Exception):
    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result


def classify_kraken_errors(errors: list[Any]) -> str:
    for text in map(str, errors):
        for prefix, result in _KRAKEN_ERRORS:
            if text.startswith(prefix):
                return result
    return "kraken_error"


class ReadOnlyKraken:
    """krakenex.API limited to read endpoints. `url` may point at a local fake Kraken; `timeout` bounds each call."""

    def __init__(
        self, credentials: KrakenCredentials | None, url: str = KRAKEN_URL, timeout: float = defaults.KRAKEN_TIMEOUT
    ) -> None:
        self._credentials = credentials
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.has_credentials = credentials is not None
        self._api = self._new_api()
        self._abandoned = 0
        self._lock = threading.Lock()
        self._private_lock = threading.Lock()  # one private call at a time (see the module's docstring)
        self._last_nonce_ms = 0

    def __repr__(self) -> str:
        return f"ReadOnlyKraken(url={self.url!r}, credentials={'set' if self.has_credentials else 'none'})"

    def _new_api(self) -> krakenex.API:
        api = krakenex.API()
        if self._credentials is not None:
            api.key, api.secret = self._credentials.key, self._credentials.secret
        api.uri = self.url
        return api

    @property
    def abandoned_calls(self) -> int:
        """Calls that passed their deadline and are still running in the background."""
        with self._lock:
            return self._abandoned

    def public(self, method: str, data: dict[str, Any] | None = None) -> Any:
        if method not in READ_ONLY_PUBLIC:
            raise ReadOnlyViolation(f"public endpoint {method} is not on the read-only allow-list")
        return self._call(lambda api: api.query_public(method, data, timeout=self.timeout))

    def private(self, method: str, data: dict[str, Any] | None = None) -> Any:
        if method not in READ_ONLY_PRIVATE:
            raise ReadOnlyViolation(f"private endpoint {method} is not on the read-only allow-list")
        if not self.has_credentials:
            raise KrakenError("invalid_key", "no Kraken API key configured")
        with self._private_lock:
            self._next_millisecond()
            try:
                return self._call(lambda api: api.query_private(method, dict(data or {}), timeout=self.timeout))
            finally:
                self._last_nonce_ms = int(1000 * time.time())  # the call's nonce was taken before this

    def _next_millisecond(self) -> None:
        """Wait (at most a millisecond or so) until krakenex's next nonce is above the last call's."""
        now_ms = int(1000 * time.time())
        while self._last_nonce_ms - 1000 < now_ms <= self._last_nonce_ms:  # (a clock stepped back: no wait)
            time.sleep(0.0005)
            now_ms = int(1000 * time.time())

    def _call(self, request: Callable[[krakenex.API], Any]) -> Any:
        return _check_envelope(self._within_deadline(request))

    def _within_deadline(self, request: Callable[[krakenex.API], Any]) -> Any:
        """Run `request` on the current client in a daemon thread and wait at most `timeout` seconds for it."""
        with self._lock:
            if self._abandoned >= MAX_ABANDONED_CALLS:
                raise KrakenError("timeout", f"{self._abandoned} earlier calls are still hanging; not starting another")
            api = self._api
        call = _Call(api, request)
        thread = threading.Thread(target=call.run, args=(self._on_abandoned_end,), name="kraken-call", daemon=True)
        thread.start()
        if not call.done.wait(self.timeout):
            with self._lock:
                if call.abandon():
                    self._abandoned += 1
                    self._api = self._new_api()
            if call.abandoned:
                raise KrakenError("timeout", f"no complete reply within {self.timeout:g} s")
        return call.outcome()

    def _on_abandoned_end(self) -> None:
        with self._lock:
            self._abandoned -= 1


class _Call:
    """One krakenex call and its outcome, handed between the caller and the thread that runs it."""

    def __init__(self, api: krakenex.API, request: Callable[[krakenex.API], Any]) -> None:
        self.api = api
        self.request = request
        self.done = threading.Event()
        self.abandoned = False
        self._finished = False
        self._lock = threading.Lock()
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self, on_abandoned_end: Callable[[], None]) -> None:
        try:
            self._value = self.request(self.api)
        except BaseException as exc:  # handed to the caller, classified there
            self._error = exc
        with self._lock:
            self._finished = True
            abandoned = self.abandoned
        self.done.set()
        if abandoned:  # nobody waits for it: free its connection and its slot
            self.api.close()
            on_abandoned_end()

    def abandon(self) -> bool:
        """Give up on the call unless it has just finished; True when it was abandoned now."""
        with self._lock:
            if self._finished:
                return False
            self.abandoned = True
            return True

    def outcome(self) -> Any:
        error = self._error
        if error is None:
            return self._value
        if isinstance(error, requests.exceptions.Timeout):
            raise KrakenError("timeout", "no reply within the timeout") from None
        if isinstance(error, requests.exceptions.HTTPError):
            status = error.response.status_code if error.response is not None else "?"
            raise KrakenError("http_error", f"HTTP {status}") from None
        if isinstance(error, requests.exceptions.ConnectionError):
            raise KrakenError("connection_error", f"cannot connect: {type(error).__name__}") from None
        if isinstance(error, requests.exceptions.ChunkedEncodingError):
            raise KrakenError("connection_error", "the connection broke in the middle of the reply") from None
        if isinstance(error, requests.exceptions.ContentDecodingError):
            raise KrakenError("invalid_json", "the reply cannot be decoded") from None
        if isinstance(error, ValueError):  # requests' JSONDecodeError
            raise KrakenError("invalid_json", "the reply is not JSON") from None
        if isinstance(error, requests.exceptions.RequestException):
            raise KrakenError("connection_error", f"request failed: {type(error).__name__}") from None
        raise error


def _check_envelope(reply: Any) -> Any:
    """The `result` of a Kraken reply, or a KrakenError for its `error` array or a wrong shape."""
    if not isinstance(reply, dict) or not isinstance(reply.get("error", []), list):
        raise KrakenError("malformed_reply", "the reply is not a Kraken envelope")
    if reply.get("error"):
        errors = reply["error"]
        raise KrakenError(classify_kraken_errors(errors), ", ".join(map(str, errors)))
    result = reply.get("result")
    if not isinstance(result, dict):
        raise KrakenError("malformed_reply", "the reply has no result object")
    return result
