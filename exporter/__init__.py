"""kraken-capacity-exporter: read-only capacity and fill-health telemetry for Kraken grid bots."""

__version__ = "0.1.0"

from .capacity import CapacityFillHealth, CapacityInputs, evaluate  # noqa: E402
from .clock import AcceleratedClock, ManualClock, SystemClock  # noqa: E402
from .service import CapacityExporter  # noqa: E402
from .status import add_capacity_fill_health, status_payload  # noqa: E402
from .telemetry import CapacityTelemetry  # noqa: E402

__all__ = [
    "AcceleratedClock",
    "CapacityExporter",
    "CapacityFillHealth",
    "CapacityInputs",
    "CapacityTelemetry",
    "ManualClock",
    "SystemClock",
    "add_capacity_fill_health",
    "evaluate",
    "status_payload",
]
