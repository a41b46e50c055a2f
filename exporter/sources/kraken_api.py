"""A read-only door to Kraken through krakenex: an allow-list of endpoints, and every failure classified.

krakenex signs requests (API-Key / API-Sign) and raises or returns errors in several ways: HTTP errors,
timeouts, refused connections, non-JSON bodies, or Kraken's `error` array in a 200 reply. `ReadOnlyKraken`
turns each into a `KrakenError` with a stable `result` label for `krakenbot_kraken_requests_total`.
"""

from __future__ import annotations

from typing import Any

import krakenex
import requests

from .credentials import KrakenCredentials

KRAKEN_URL = "https://api.kraken.com"
# The only endpoints this project may call. Anything that trades (AddOrder, CancelOrder, EditOrder, ...) is absent.
READ_ONLY_PUBLIC = frozenset({"AssetPairs", "Time"})
READ_ONLY_PRIVATE = frozenset({"OpenOrders", "QueryOrders"})

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
    """krakenex.API limited to read endpoints. `url` may point at a local fake Kraken."""

    def __init__(self, credentials: KrakenCredentials | None, url: str = KRAKEN_URL, timeout: float = 10.0) -> None:
        self._api = krakenex.API()
        if credentials is not None:
            self._api.key, self._api.secret = credentials.key, credentials.secret
        self._api.uri = url.rstrip("/")
        self.url = self._api.uri
        self.timeout = timeout
        self.has_credentials = credentials is not None

    def __repr__(self) -> str:
        return f"ReadOnlyKraken(url={self.url!r}, credentials={'set' if self.has_credentials else 'none'})"

    def public(self, method: str, data: dict[str, Any] | None = None) -> Any:
        if method not in READ_ONLY_PUBLIC:
            raise ReadOnlyViolation(f"public endpoint {method} is not on the read-only allow-list")
        return self._call(lambda: self._api.query_public(method, data, timeout=self.timeout))

    def private(self, method: str, data: dict[str, Any] | None = None) -> Any:
        if method not in READ_ONLY_PRIVATE:
            raise ReadOnlyViolation(f"private endpoint {method} is not on the read-only allow-list")
        if not self.has_credentials:
            raise KrakenError("invalid_key", "no Kraken API key configured")
        return self._call(lambda: self._api.query_private(method, dict(data or {}), timeout=self.timeout))

    def _call(self, request: Any) -> Any:
        try:
            reply = request()
        except requests.exceptions.Timeout:
            raise KrakenError("timeout", f"no reply within {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise KrakenError("connection_error", f"cannot connect: {type(exc).__name__}") from None
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise KrakenError("http_error", f"HTTP {status}") from None
        except ValueError:  # requests' JSONDecodeError
            raise KrakenError("invalid_json", "the reply is not JSON") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("error", []), list):
            raise KrakenError("malformed_reply", "the reply is not a Kraken envelope")
        if reply.get("error"):
            errors = reply["error"]
            raise KrakenError(classify_kraken_errors(errors), ", ".join(map(str, errors)))
        result = reply.get("result")
        if not isinstance(result, dict):
            raise KrakenError("malformed_reply", "the reply has no result object")
        return result
