"""`EventCounts`: the monotonic counters a telemetry keeps beside its windows, read together with them.

The hooks count under the lock they already hold (a few integer additions), and `/metrics` exports these as
counters and a histogram at scrape time, so a hook never pays for prometheus-client's own locks and loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Grid orders fill in seconds when the price is on them and in days when it wanders off.
FILL_DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 604800,
)


@dataclass(frozen=True)
class EventCounts:
    """Totals since the telemetry was created (`created`, Unix seconds)."""

    partial_open_total: int = 0
    partial_cancel_total: int = 0
    fill_bucket_counts: tuple[int, ...] = ()  # per bucket of FILL_DURATION_BUCKETS (le), then the +Inf overflow
    fill_sum: float = 0.0
    hook_errors: dict[str, int] = field(default_factory=dict)
    created: float | None = None

    @property
    def fill_count(self) -> int:
        return sum(self.fill_bucket_counts)
