"""A small reader of a Prometheus-compatible query API, via `requests`: Prometheus itself, or a store operators
scale out to (VictoriaMetrics, Mimir, Thanos, Grafana Cloud), at a URL that may carry a path prefix
(`http://vm:8428/prometheus`, `http://vmselect:8481/select/0/prometheus`) and query parameters that every request
repeats (VictoriaMetrics' `extra_label=...`), with the credentials, TLS and headers of `store_access.py`.

Only the query API is read: `/api/v1/query`, `/api/v1/query_range` and `/api/v1/label/<name>/values`.
Raw samples come from a range-vector instant query, `selector[Ns]` evaluated at the window's end, which returns
every stored sample of the range unchanged (no step, no lookback, no carrying a value across a gap): the exact
input the baseline and the advisor define their numbers on. Every failure — the store unreachable, a certificate
that does not verify, credentials refused, a URL that is not a Prometheus API, a rejected query — is one
`PrometheusHistoryError` whose message is a sentence, with no secret in it.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast, overload
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests

from .store_access import OpenedAccess
from .urls import redacted

API = "/api/v1"


class PrometheusHistoryError(Exception):
    """Prometheus could not be read; the message says why, in one sentence."""


class Samples(Sequence[tuple[float, float]]):
    """One series' samples in time order, held in two arrays of doubles: 16 bytes a sample where a list of tuples
    takes about 100, so a fleet's week of raw samples fits in memory. Reads as a sequence of (t, value) tuples."""

    __slots__ = ("times", "values")

    def __init__(self, times: Iterable[float] = (), values: Iterable[float] = ()) -> None:
        self.times = array("d", times)
        self.values = array("d", values)

    @classmethod
    def from_json(cls, points: list[Any], start: float = -math.inf, end: float = math.inf) -> Samples:
        """From the API's `[[t, "value"], ...]`, keeping start < t <= end."""
        kept = [p for p in points if start < p[0] <= end]
        return cls((p[0] for p in kept), map(float, (p[1] for p in kept)))

    def extend(self, other: Samples) -> None:
        self.times.extend(other.times)
        self.values.extend(other.values)

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> tuple[float, float]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[float, float]]: ...

    def __getitem__(self, index: int | slice) -> tuple[float, float] | list[tuple[float, float]]:
        if isinstance(index, slice):
            return list(zip(self.times[index], self.values[index], strict=True))
        return self.times[index], self.values[index]

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return zip(self.times, self.values, strict=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"Samples({list(self)!r})"


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    samples: Sequence[tuple[float, float]] = field(default_factory=list)

    @property
    def pair(self) -> str | None:
        return self.labels.get("pair")


class PrometheusHistory:
    """Reads one store; `url` is the base of its query API (`http://localhost:9090`, a path prefix allowed),
    with or without a trailing slash. `access`: credentials, TLS and headers (none by default)."""

    def __init__(self, url: str, timeout: float = 30.0, session: requests.Session | None = None,
                 access: OpenedAccess | None = None) -> None:
        parts = urlsplit(url)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._base_params = parse_qsl(parts.query, keep_blank_values=True)
        self.display_url = redacted(url.rstrip("/"))  # for messages and reports: no password or token
        self.timeout = timeout
        self._access = access or OpenedAccess()
        self._session = session or self._access.session()
        self._options = self._access.request_options()
        self.requests_made: Counter[str] = Counter()  # API path -> requests sent (the bench prints them)

    def query(self, expr: str, at: float) -> list[Series]:
        """An instant query at `at`: one sample per series (or the raw samples, for a range-vector expression)."""
        return self._series(self._get("/query", {"query": expr, "time": _fmt(at)}), expr)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        return self._series(self._get("/query_range", {"query": expr, "start": _fmt(start), "end": _fmt(end),
                                                      "step": _fmt(step)}), expr)

    def raw_samples(self, selector: str, start: float, end: float, chunk: float | None = None) -> list[Series]:
        """Every stored sample of `selector` with start < t <= end, per series, in time order.

        With `chunk` (seconds), one query per chunk of the span, oldest first, so that no answer holds more than a
        chunk of every series: the number of queries grows with the span, never with the number of series."""
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        for lo, hi in _chunks(start, end, chunk):
            seconds = max(1, math.ceil(hi - lo))
            data = self._get("/query", {"query": f"{selector}[{seconds}s]", "time": _fmt(hi)})
            for labels, points in self._matrix(data, selector):
                samples = Samples.from_json(points, lo, hi)
                key = tuple(sorted(labels.items()))
                if key in merged:
                    cast(Samples, merged[key].samples).extend(samples)
                else:
                    merged[key] = Series(labels, samples)
        return list(merged.values())

    def label_values(self, label: str, match: str, start: float | None = None, end: float | None = None) -> list[str]:
        """Values of `label` on series matching `match` (within [start, end] when given)."""
        params: dict[str, str] = {"match[]": match}
        if start is not None:
            params["start"] = _fmt(start)
        if end is not None:
            params["end"] = _fmt(end)
        data = self._get(f"/label/{label}/values", params)
        if not isinstance(data, list):
            raise PrometheusHistoryError(f"{self.display_url} answered label values that are not a list")
        return sorted(str(v) for v in data)

    def _get(self, path: str, params: dict[str, str]) -> Any:
        self.requests_made["/label/values" if path.startswith("/label/") else path] += 1
        try:
            response = self._session.get(self.url + API + path, params=[*self._base_params, *params.items()],
                                         timeout=self.timeout, **self._options)
        except requests.Timeout:
            raise self._error(f"Prometheus at {self.display_url} did not answer within {self.timeout:g} s.") from None
        except requests.exceptions.SSLError as exc:
            raise self._error(self._tls_failure(exc)) from None
        except requests.RequestException as exc:
            raise self._error(f"Cannot reach Prometheus at {self.display_url}: {_short(exc)}.") from None
        if response.status_code in (401, 403) or response.status_code == 400 and _mentions_auth(response):
            raise self._error(self._refused(response))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise self._error(
                f"{self.display_url} does not answer like a Prometheus server (HTTP {response.status_code} from {API}{path}); "
                f"give the base URL of its query API, e.g. http://localhost:9090 or http://vm:8428/prometheus."
            )
        if body["status"] == "error":
            query = params.get("query") or params.get("match[]")
            raise self._error(
                f"Prometheus at {self.display_url} rejected {query!r}: {body.get('errorType', 'error')}: {body.get('error', '')}."
            )
        return body.get("data")

    def _error(self, message: str) -> PrometheusHistoryError:
        return PrometheusHistoryError(self._access.scrub(message))

    def _tls_failure(self, exc: Exception) -> str:
        text = str(exc)
        where = f"Prometheus at {self.display_url}"
        if "CERTIFICATE_VERIFY_FAILED" in text:
            found = re.search(r"certificate verify failed: ([\w ,.-]+)", text)
            why = found.group(1).strip(" ,.") if found else "certificate verify failed"
            if "mismatch" in why.lower():
                return f"The TLS certificate of {where} is not for this host name ({why}): use the name it was issued for."
            return (f"Cannot verify the TLS certificate of {where} ({why}): give the CA that signed it with "
                    f"{self._access.name('ca_file')}.")
        if any(m in text.lower() for m in ("certificate required", "bad certificate", "unknown ca", "handshake failure")):
            return (f"TLS handshake with {where} failed: it asks for a client certificate it trusts "
                    f"({self._access.name('cert_file')} and {self._access.name('key_file')}).")
        return f"TLS handshake with {where} failed ({type(exc).__name__})."

    def _refused(self, response: requests.Response) -> str:
        where = f"Prometheus at {self.display_url}"
        if response.status_code == 403:
            return f"{where} forbids this query (HTTP 403): the credentials given may not read it."
        if "org id" in response.text[:1000].lower():
            return (f"{where} asks for a tenant (HTTP 401: no org id): give {self._access.name('headers')} "
                    f"X-Scope-OrgID=TENANT.")
        if self._access.credentials:
            code = response.status_code
            said = f": {_first_line(response)}" if code == 400 else ""  # vmauth: 400 "cannot find the ... token"
            return f"{where} refused the credentials given (HTTP {code}{said})."
        return (f"{where} asks for credentials (HTTP 401): give {self._access.name('username')} and "
                f"{self._access.name('password_file')}, or {self._access.name('bearer_token_file')}.")

    def _matrix(self, data: Any, expr: str) -> list[tuple[dict[str, str], list[Any]]]:
        """(labels, raw [t, "value"] points) of each series of a range-vector answer."""
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise PrometheusHistoryError(f"Prometheus at {self.display_url} answered {expr!r} with an unexpected result.")
        return [(dict(item.get("metric", {})), item.get("values") or []) for item in data.get("result") or []]

    def _series(self, data: Any, expr: str) -> list[Series]:
        if not isinstance(data, dict) or data.get("resultType") not in ("vector", "matrix", "scalar"):
            raise PrometheusHistoryError(f"Prometheus at {self.display_url} answered {expr!r} with an unexpected result.")
        kind, result = data["resultType"], data.get("result") or []
        if kind == "scalar":
            return [Series({}, [_sample(result)])]
        if kind == "vector":
            return [Series(dict(item.get("metric", {})), [_sample(item["value"])]) for item in result]
        return [Series(dict(item.get("metric", {})), [_sample(v) for v in item.get("values", [])]) for item in result]


def _first_line(response: requests.Response) -> str:
    """The first line of a short plain-text error body (secrets in it are scrubbed by the caller)."""
    if "text/plain" not in response.headers.get("Content-Type", "text/plain"):
        return ""
    return response.text[:300].strip().splitlines()[0][:200] if response.text.strip() else ""


def _mentions_auth(response: requests.Response) -> bool:
    return "auth" in _first_line(response).lower()


def _chunks(start: float, end: float, chunk: float | None) -> list[tuple[float, float]]:
    """(start, end] cut into consecutive (lo, hi] pieces of at most `chunk` seconds (one piece without a chunk)."""
    if not chunk or end - start <= chunk:
        return [(start, end)]
    edges = [start + i * chunk for i in range(math.ceil((end - start) / chunk))] + [end]
    return list(zip(edges, edges[1:], strict=False))


def _sample(pair: Any) -> tuple[float, float]:
    return float(pair[0]), float(pair[1])


def _fmt(t: float) -> str:
    return f"{t:.3f}"


def _short(exc: Exception) -> str:
    """The innermost reason of a requests error (`Connection refused`), not its nested repr."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "timed out",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker
    return type(exc).__name__
