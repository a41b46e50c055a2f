"""A small reader of Prometheus' HTTP API (`/api/v1/query`, `/api/v1/query_range`, label values), via `requests`.

Raw samples come from a range-vector instant query, `selector[Ns]` evaluated at the window's end, which returns
every stored sample of the range unchanged (no step, no lookback, no carrying a value across a gap): the exact
input the baseline and the advisor define their numbers on. Every failure — Prometheus unreachable, a URL that
is not a Prometheus, a rejected query — is one `PrometheusHistoryError` whose message is a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import requests

from .urls import redacted

API = "/api/v1"


class PrometheusHistoryError(Exception):
    """Prometheus could not be read; the message says why, in one sentence."""


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def pair(self) -> str | None:
        return self.labels.get("pair")


class PrometheusHistory:
    """Reads one Prometheus server; `url` is its base (`http://localhost:9090`), with or without a trailing slash."""

    def __init__(self, url: str, timeout: float = 30.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.display_url = redacted(self.url)  # for messages and reports: no password or token
        self.timeout = timeout
        self._session = session or requests.Session()

    def query(self, expr: str, at: float) -> list[Series]:
        """An instant query at `at`: one sample per series (or the raw samples, for a range-vector expression)."""
        return self._series(self._get("/query", {"query": expr, "time": _fmt(at)}), expr)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        return self._series(self._get("/query_range", {"query": expr, "start": _fmt(start), "end": _fmt(end),
                                                      "step": _fmt(step)}), expr)

    def raw_samples(self, selector: str, start: float, end: float) -> list[Series]:
        """Every stored sample of `selector` with start < t <= end, per series, in time order."""
        seconds = max(1, math.ceil(end - start))
        series = self.query(f"{selector}[{seconds}s]", end)
        return [Series(s.labels, [(t, v) for t, v in s.samples if start < t <= end]) for s in series]

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
        url = self.url + API + path
        try:
            response = self._session.get(url, params=params, timeout=self.timeout)
        except requests.Timeout:
            raise PrometheusHistoryError(f"Prometheus at {self.display_url} did not answer within {self.timeout:g} s.") from None
        except requests.RequestException as exc:
            raise PrometheusHistoryError(f"Cannot reach Prometheus at {self.display_url}: {_short(exc)}.") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise PrometheusHistoryError(
                f"{self.display_url} does not answer like a Prometheus server (HTTP {response.status_code} from {API}{path}); "
                f"give its base URL, e.g. http://localhost:9090."
            )
        if body["status"] == "error":
            query = params.get("query") or params.get("match[]")
            raise PrometheusHistoryError(
                f"Prometheus at {self.display_url} rejected {query!r}: {body.get('errorType', 'error')}: {body.get('error', '')}."
            )
        return body.get("data")

    def _series(self, data: Any, expr: str) -> list[Series]:
        if not isinstance(data, dict) or data.get("resultType") not in ("vector", "matrix", "scalar"):
            raise PrometheusHistoryError(f"Prometheus at {self.display_url} answered {expr!r} with an unexpected result.")
        kind, result = data["resultType"], data.get("result") or []
        if kind == "scalar":
            return [Series({}, [_sample(result)])]
        if kind == "vector":
            return [Series(dict(item.get("metric", {})), [_sample(item["value"])]) for item in result]
        return [Series(dict(item.get("metric", {})), [_sample(v) for v in item.get("values", [])]) for item in result]


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
