"""A small reader of a Prometheus-compatible query API, via `requests`: Prometheus itself, or a store operators
scale out to (VictoriaMetrics, Mimir, Thanos, Grafana Cloud), at a URL that may carry a path prefix
(`http://vm:8428/prometheus`, `http://vmselect:8481/select/0/prometheus`) and query parameters that every request
repeats (VictoriaMetrics' `extra_label=...`), with the credentials, TLS and headers of `store_access.py`.

Only the query API is read: `/api/v1/query`, `/api/v1/query_range` and `/api/v1/label/<name>/values`.
Raw samples come from a range-vector instant query, `selector[Ns]` evaluated at the window's end, which returns
every stored sample of the range unchanged (no step, no lookback, no carrying a value across a gap): the exact
input the baseline and the advisor define their numbers on; a sample whose value is not a finite number (a staleness
marker, which VictoriaMetrics returns as NaN where Prometheus leaves it out) is left out. Every failure — the store
unreachable, a certificate that does not verify, credentials refused, a URL that is not a Prometheus API, a
rejected query, an answer only in part (`warnings`, `isPartial`: a store behind it did not answer), an answer of
the wrong shape, slower than the deadline or larger than the cap — is one `PrometheusHistoryError` whose message
is a sentence, with no secret in it and no text of the server's where credentials were refused.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import le
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
    def from_json(cls, points: Any, start: float = -math.inf, end: float = math.inf) -> Samples:
        """From the API's `[[t, "value"], ...]` (a time may also be a numeric string), keeping start < t <= end and
        finite values, in time order. A ValueError says that `points` is not such a list."""
        try:  # the usual answer, converted by C loops: numbers for times, strings for values
            times = array("d", [t for t, _ in points])
            values = array("d", map(float, [v for _, v in points]))
        except (TypeError, ValueError):
            try:
                pairs = [(float(t), float(v)) for t, v in points]
            except (TypeError, ValueError):
                raise ValueError("not a list of [time, \"value\"] pairs") from None
            times, values = array("d", (t for t, _ in pairs)), array("d", (v for _, v in pairs))
        if not all(map(le, times[:-1], times[1:])):  # never from Prometheus or VictoriaMetrics: put in order
            order = sorted(range(len(times)), key=times.__getitem__)
            times, values = array("d", (times[i] for i in order)), array("d", (values[i] for i in order))
        first, stop = bisect.bisect_right(times, start), bisect.bisect_right(times, end)
        if first or stop < len(times):
            times, values = times[first:stop], values[first:stop]
        if not math.isfinite(sum(values)):  # a NaN or an infinity among them (or a sum too large: checked each)
            kept = [i for i, v in enumerate(values) if math.isfinite(v)]
            times, values = array("d", (times[i] for i in kept)), array("d", (values[i] for i in kept))
        samples = cls()
        samples.times, samples.values = times, values
        return samples

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
    with or without a trailing slash. `access`: credentials, TLS and headers (none by default). Each request has
    `timeout` seconds to connect and between reads, `deadline` seconds for the whole answer, which may not be
    larger than `max_bytes`."""

    def __init__(self, url: str, timeout: float = 30.0, session: requests.Session | None = None,
                 access: OpenedAccess | None = None, deadline: float = 300.0,
                 max_bytes: int = 512 * 1024 * 1024) -> None:
        parts = urlsplit(url)
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._base_params = parse_qsl(parts.query, keep_blank_values=True)
        self.display_url = redacted(url.rstrip("/"))  # for messages and reports: no password or token
        self.timeout = timeout
        self.deadline = deadline
        self.max_bytes = max_bytes
        self._access = access or OpenedAccess()
        self._session = session or self._access.session()
        self._options = self._access.request_options(self.url)
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
                try:
                    samples = Samples.from_json(points, lo, hi)
                except ValueError:
                    raise self._shape(selector) from None
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
        if not isinstance(data, list) or not all(isinstance(v, str) for v in data):
            raise PrometheusHistoryError(f"{self.display_url} answered label values that are not a list of strings.")
        return sorted(data)

    def _get(self, path: str, params: dict[str, str]) -> Any:
        self.requests_made["/label/values" if path.startswith("/label/") else path] += 1
        status, content = self._fetch(path, params)
        if status in (401, 403) or status == 400 and _mentions_auth(content):
            raise self._error(self._refused(status, content))
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise self._error(
                f"{self.display_url} does not answer like a Prometheus server (HTTP {status} from {API}{path}); "
                f"give the base URL of its query API, e.g. http://localhost:9090 or http://vm:8428/prometheus."
            )
        query = params.get("query") or params.get("match[]")
        if body["status"] == "error":
            raise self._error(
                f"Prometheus at {self.display_url} rejected {query!r}: {body.get('errorType', 'error')}: "
                f"{_one_line(body.get('error', ''))}."
            )
        partial = _partial(body)
        if partial is not None:
            raise self._error(
                f"Prometheus at {self.display_url} answered {query!r} only in part ({partial}): what is missing "
                f"from the answer cannot be told from what the store does not hold."
            )
        return body.get("data")

    def _fetch(self, path: str, params: dict[str, str]) -> tuple[int, bytearray]:
        """(HTTP status, body) of one GET, the body read within the deadline and the size cap."""
        started = time.monotonic()
        try:
            with self._session.get(self.url + API + path, params=[*self._base_params, *params.items()],
                                   timeout=self.timeout, stream=True, **self._options) as response:
                return response.status_code, self._body(response, started)
        except requests.Timeout:
            raise self._error(f"Prometheus at {self.display_url} did not answer within {self.timeout:g} s.") from None
        except requests.exceptions.SSLError as exc:
            raise self._error(self._tls_failure(exc)) from None
        except requests.RequestException as exc:
            if "Read timed out" in str(exc):  # a read timeout while the body streams in
                raise self._error(f"Prometheus at {self.display_url} did not answer within {self.timeout:g} s.") from None
            raise self._error(f"Cannot reach Prometheus at {self.display_url}: {_short(exc)}.") from None
        except OSError as exc:  # a CA bundle that does not load, from a session given by the caller
            raise self._error(f"Cannot reach Prometheus at {self.display_url}: {type(exc).__name__}.") from None

    def _body(self, response: requests.Response, started: float) -> bytearray:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()
        body = bytearray()
        for chunk in response.iter_content(chunk_size=1 << 16):
            body += chunk
            if len(body) > self.max_bytes:
                raise self._too_large()
            if time.monotonic() - started > self.deadline:
                raise self._error(f"Prometheus at {self.display_url} did not send its whole answer within "
                                  f"{self.deadline:g} s.")
        return body  # not copied to bytes: an answer may be tens of MiB

    def _too_large(self) -> PrometheusHistoryError:
        return self._error(f"Prometheus at {self.display_url} answered more than {self.max_bytes // 2**20} MiB: "
                           f"give --pair a group of pairs to read fewer at a time.")

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

    def _refused(self, status: int, content: bytearray) -> str:
        """Why the store refused, in our words: a store may echo the credential it was sent (vmauth answers a
        wrong basic-auth password with `"Basic <base64 of user:password>"`), so nothing it said is shown."""
        where = f"Prometheus at {self.display_url}"
        if status == 403:
            return f"{where} forbids this query (HTTP 403): the credentials given may not read it."
        if b"org id" in content[:1000].lower():
            return (f"{where} asks for a tenant (HTTP 401: no org id): give {self._access.name('headers')} "
                    f"X-Scope-OrgID=TENANT.")
        if self._access.credentials:
            return f"{where} refused the credentials given (HTTP {status})."
        return (f"{where} asks for credentials (HTTP {status}): give {self._access.name('username')} and "
                f"{self._access.name('password_file')}, or {self._access.name('bearer_token_file')}.")

    def _matrix(self, data: Any, expr: str) -> list[tuple[dict[str, str], Any]]:
        """(labels, raw [t, "value"] points) of each series of a range-vector answer."""
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise self._shape(expr)
        result = data.get("result") or []
        if not isinstance(result, list) or not all(_labelled(item, "values") for item in result):
            raise self._shape(expr)
        return [(item.get("metric") or {}, item["values"]) for item in result]

    def _series(self, data: Any, expr: str) -> list[Series]:
        if not isinstance(data, dict) or data.get("resultType") not in ("vector", "matrix", "scalar"):
            raise self._shape(expr)
        kind, result = data["resultType"], data.get("result") or []
        try:
            if kind == "scalar":
                return [Series({}, [_sample(result)])]
            key = "value" if kind == "vector" else "values"
            if not isinstance(result, list) or not all(_labelled(item, key) for item in result):
                raise ValueError(kind)
            if kind == "vector":
                return [Series(item.get("metric") or {}, [_sample(item["value"])]) for item in result]
            return [Series(item.get("metric") or {}, [_sample(v) for v in item["values"]]) for item in result]
        except (TypeError, ValueError):
            raise self._shape(expr) from None

    def _shape(self, expr: str) -> PrometheusHistoryError:
        return PrometheusHistoryError(f"Prometheus at {self.display_url} answered {expr!r} with a result of an "
                                      f"unexpected shape.")


def _labelled(item: Any, key: str) -> bool:
    """Whether a result item is `{"metric": {name: value}, key: ...}`."""
    metric = item.get("metric", {}) if isinstance(item, dict) else None
    return (isinstance(metric, dict) and all(isinstance(v, str) for v in metric.values())
            and key in item)


def _partial(body: dict[str, Any]) -> str | None:
    """What says an answer is partial: a warning (Prometheus, Thanos, Mimir: a store behind the one asked did not
    answer) or VictoriaMetrics cluster's `isPartial`; None for a whole answer. PromQL's own notes on a query
    (`PromQL info: ...`) do not make it partial."""
    warnings = body.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    shown = [_one_line(str(w)) for w in warnings if not str(w).startswith("PromQL info:")]
    if shown:
        return shown[0] + (f" and {len(shown) - 1} more warning(s)" if len(shown) > 1 else "")
    if body.get("isPartial") is True:
        return "isPartial: true"
    return None


def _one_line(text: Any, limit: int = 200) -> str:
    """A server's text as one short line."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "…"


def _mentions_auth(content: bytearray) -> bool:
    """Whether a 400's short text (not a Prometheus JSON error) is about credentials (vmauth: `cannot find the
    provided auth token`)."""
    return not content.lstrip().startswith(b"{") and b"auth" in content[:300].lower()


def _chunks(start: float, end: float, chunk: float | None) -> list[tuple[float, float]]:
    """(start, end] cut into consecutive (lo, hi] pieces of at most `chunk` seconds (one piece without a chunk)."""
    if not chunk or end - start <= chunk:
        return [(start, end)]
    edges = [start + i * chunk for i in range(math.ceil((end - start) / chunk))] + [end]
    return list(zip(edges, edges[1:], strict=False))


def _sample(pair: Any) -> tuple[float, float]:
    t, v = pair
    return float(t), float(v)


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
