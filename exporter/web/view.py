"""`ExporterView`: what the HTTP edge needs of the exporter, so that `web` never imports the service above it."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry

from ..core.clock import Clock
from ..core.reading import PairReading


class ExporterView(Protocol):
    """The pairs of one process, read at request time (`CapacityExporter` is one)."""

    registry: CollectorRegistry
    clock: Clock
    mode: str  # demo|serve|scrape|embedded
    tier: str | None  # the Kraken verification tier in force (starter|intermediate|pro; None: not known, scrape)

    @property
    def pairs(self) -> list[str]: ...

    def readings(self) -> list[PairReading]: ...
