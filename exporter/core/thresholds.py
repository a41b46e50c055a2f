"""Every threshold of the bands, the hints, the staleness limits, the playbook and the forecast, in one place.

The alert rules in `alerts/` and the Grafana dashboard use the same numbers; a test fails when they differ.
"""

DEFAULT_LIMIT = 225  # Kraken open orders per pair (Pro tier; Starter 60, Intermediate 80)
DEFAULT_SAFETY_RATIO = 0.75

STOP_HEADROOM = 10  # stop: headroom < 10 (or any partial-cancel in 24h)
CAUTION_HEADROOM = 20  # caution: headroom < 20

DRIFT_THRESHOLD = 10  # |kraken - internal| >= 10 at Kraken refreshes ...
DRIFT_PERSIST_SECONDS = 600.0  # ... for 10 min raises open_order_drift_persistent

KRAKEN_STALE_AFTER_SECONDS = 120.0  # embedded: a Kraken count older than this is not used
HOOK_STALE_AFTER_SECONDS = 120.0  # embedded: no hook call this long and the pair is blind (KrakenBotNotReporting)
BLIND_AFTER_SECONDS = 300.0  # a pair with no usable data this long is blind (the alert's `for`)

PARTIAL_CANCEL_FREEZE_SECONDS = 86400.0  # playbook rule 4: any partial-cancel in the 24h before -> frozen
CAUTION_MAX_SLOTS_PER_DAY = 1  # playbook rule 2
CAUTION_SLOT_WINDOW_SECONDS = 86400.0
RESUME_NORMAL_SECONDS = 259200.0  # playbook rule 5: 72h continuously normal after a stop

FORECAST_TREND_SECONDS = 21600.0  # predict_linear over 6h
FORECAST_HORIZON_SECONDS = 86400.0  # warn when the stop edge is forecast within 24h ...
FORECAST_WARN_HEADROOM = 2 * CAUTION_HEADROOM  # ... and the headroom is already within twice the caution edge
FORECAST_ALERT_FOR_SECONDS = 3600.0

ORDER_RATE_HIGH_RATIO = 0.8  # the order rate counter above 80% of its threshold: the warning, and advise waits
ORDER_RATE_HIGH_FOR_SECONDS = 300.0  # ... for this long before the warning
ORDER_RATE_LIMITED_WINDOW_SECONDS = 600.0  # a rate-limit rejection pages while it is this recent
