"""kraken-capacity-exporter: read-only capacity and fill-health telemetry for Kraken grid bots.

The public API is what this module exports (`__all__`); module paths below it are internal and may change.
"""

from .core.capacity import CapacityFillHealth, CapacityInputs, evaluate
from .core.clock import AcceleratedClock, ManualClock, SystemClock
from .core.telemetry import CapacityTelemetry
from .core.version import __version__
from .service import CapacityExporter
from .web.app import HttpSettings, RunningServer, WebConfigFile, create_app, start_server
from .web.status import add_capacity_fill_health, status_payload
from .web.web_config import WebConfigError

__all__ = [
    "AcceleratedClock",
    "CapacityExporter",
    "CapacityFillHealth",
    "CapacityInputs",
    "CapacityTelemetry",
    "HttpSettings",
    "ManualClock",
    "RunningServer",
    "SystemClock",
    "WebConfigError",
    "WebConfigFile",
    "__version__",
    "add_capacity_fill_health",
    "create_app",
    "evaluate",
    "start_server",
    "status_payload",
]
