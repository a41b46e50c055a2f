"""`BackgroundWorker`: one daemon thread that calls `run_once()` until stopped; the poller and the scraper use it.

A scrape or a status read never waits on the worker: it only ever reads what the last run left.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("kraken_capacity_exporter")


def default_stale_after(interval: float, timeout: float) -> float:
    """When a polled source's data stops counting: four missed intervals, never less than an interval plus a call."""
    return max(4 * interval, interval + timeout)


class BackgroundWorker:
    """Subclasses define `run_once()` and may override `next_delay()`; an exception it lets out is logged (with
    its traceback the first time for each kind) and the loop goes on."""

    thread_name = "worker"

    def __init__(self, interval: float, join_timeout: float) -> None:
        self.interval = float(interval)
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        raise NotImplementedError

    def next_delay(self) -> float:
        return self.interval

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout)

    def _run(self) -> None:
        failures: set[str] = set()
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # a bug must not end the loop: the source would freeze without saying so
                kind = type(exc).__name__
                log.error("%s: unexpected %s: %s; it keeps running", self.thread_name, kind, exc,
                          exc_info=kind not in failures)
                failures.add(kind)
            self._stop.wait(self.next_delay())
