"""The default of every setting that is a plain value, in one place.

`config.SETTINGS` (flags, environment, `--help`, docs/configuration.md) takes its defaults from here,
and so do the constructors that run without a `Config`: the Kraken poller and client, the status scraper, the
HTTP edge, the demo. The limit and the safety ratio live with the other thresholds (`thresholds.py`).
"""

HOST = "127.0.0.1"  # servers bind the loopback unless told
PORT = 9477
PAIR = "XDGUSD"
LOG_LEVEL = "INFO"

KRAKEN_TIER = "pro"  # the account's verification tier: both walls' defaults (order_rate.TIER_WALLS)
KRAKEN_URL = "https://api.kraken.com"
KRAKEN_POLL_INTERVAL = 15.0  # 1 OpenOrders call / 15 s: 20% of a Starter key's 0.33/s decay, less on higher tiers
KRAKEN_TIMEOUT = 10.0
KRAKEN_STREAM = True  # serve (and the demo) read Kraken's WebSocket v2 executions stream
KRAKEN_WS_URL = "wss://ws-auth.kraken.com/v2"
KRAKEN_STREAM_SILENCE = 30.0  # Kraken sends a heartbeat every second; 30 s of nothing is a dead connection

SCRAPE_INTERVAL = 15.0
SCRAPE_TIMEOUT = 5.0

WEB_IDLE_TIMEOUT = 30.0
WEB_MAX_CONNECTIONS = 2048
WEB_THREADS = 8

DEMO_SPEEDUP = 600.0  # a simulated day in 144 wall seconds
DEMO_SEED = 7
DEMO_DURATION = 0.0  # run until Ctrl-C
DEMO_CANARY_EVERY_HOURS = 36.0
DEMO_OUTAGE_EVERY = 300.0
DEMO_KRAKEN_STALE_AFTER = 5.0  # wall seconds: the demo's poller reads the fake Kraken every second
