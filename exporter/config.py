"""Settings: one table of flag, environment variable, default and validation, read once at start.

Flags win over environment variables, which win over defaults. A bad value raises `ConfigError`
naming the setting, which the CLI prints as one line before exiting non-zero.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .core import defaults
from .core.order_rate import tier
from .core.pairs import PairError, PairNames
from .core.thresholds import DEFAULT_LIMIT, DEFAULT_SAFETY_RATIO


class ConfigError(ValueError):
    """One bad setting; the message names it."""


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if not lo <= value <= hi:
            raise ValueError(f"{value} is outside [{lo}, {hi}]")
        return value
    return parse


def _float_positive(raw: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{raw!r} must be a number > 0")
    return value


def _ratio(raw: str) -> float:
    value = _float_positive(raw)
    if value > 1:
        raise ValueError(f"{raw!r} is outside (0, 1]")
    return value


def _pairs(raw: str) -> tuple[str, ...]:
    items = [p.strip() for p in str(raw).split(",") if p.strip()]
    if not items:
        raise ValueError("no pair given")
    given: dict[str, str] = {}  # label -> the spelling given (resolved later through AssetPairs)
    for item in items:
        try:
            label = PairNames.offline(item).label
        except PairError as exc:
            raise ValueError(str(exc)) from None
        if label in given:
            raise ValueError(f"pair {item!r} is given twice (as {given[label]!r})")
        given[label] = item
    return tuple(given.values())


def _tier(raw: str) -> str:
    return tier(raw).name


def _log_level(raw: str) -> str:
    level = str(raw).strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError(f"{raw!r} is not one of DEBUG, INFO, WARNING, ERROR")
    return level


def _text(raw: str) -> str:
    return str(raw).strip()


def _url(raw: str) -> str:
    value = str(raw).strip()
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError(f"{raw!r} is not an http(s) URL")
    return value


def _on_off(raw: str) -> bool:
    value = str(raw).strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0"):
        raise ValueError(f"{raw!r} is not on or off")
    return value in ("on", "true", "1")


def _ws_url(raw: str) -> str:
    value = str(raw).strip()
    if not value.startswith(("ws://", "wss://")) or len(value) < 8:
        raise ValueError(f"{raw!r} is not a ws(s) URL")
    return value


def _seconds_or_zero(raw: str) -> float:
    return 0.0 if str(raw).strip() in ("0", "0.0") else _float_positive(raw)


@dataclass(frozen=True)
class Setting:
    name: str
    flag: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str | Mapping[str, str]  # one text, or one per command whose meaning (or default) differs
    commands: tuple[str, ...]

    def help_for(self, command: str) -> str:
        """The flag's help as `command --help` shows it: only what applies to that command."""
        if isinstance(self.help, str) and self.default is not None:
            return f"{self.help} (env {self.env}, default {_show(self.default)})"
        if isinstance(self.help, str):  # no fixed default: the text says what applies
            return f"{self.help} (env {self.env})"
        return f"{self.help[command]} (env {self.env})"


ALL = ("demo", "serve", "scrape")
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "--host", "EXPORTER_HOST", defaults.HOST, _text, "address to bind; 0.0.0.0 exposes it", ALL),
    Setting("port", "--port", "EXPORTER_PORT", defaults.PORT, _int(0, 65535), "port for /metrics, /api/status, /healthz", ALL),
    Setting("pairs", "--pair", "EXPORTER_PAIRS", (defaults.PAIR,), _pairs,
            {"demo": "pair(s) to simulate, comma-separated (XDGUSD, XBTUSD, ETHUSD, SOLUSD; default XDGUSD)",
             "serve": "pair(s) to export, comma-separated, any spelling (XDGUSD, DOGE/USD, XBTUSD...; default XDGUSD)",
             "scrape": "the bot's pair, overriding the one its payload names (default: the payload's)"}, ALL),
    Setting("kraken_tier", "--kraken-tier", "KRAKEN_TIER", defaults.KRAKEN_TIER, _tier,
            "the account's verification tier: starter, intermediate or pro; sets the open-order limit (60/80/225) "
            "and the order rate counter's threshold (60/125/180) and decay (1/2.34/3.75 per s)", ("demo", "serve")),
    Setting("limit", "--limit", "KRAKEN_OPEN_ORDERS_PER_PAIR_LIMIT", DEFAULT_LIMIT, _int(1, 1_000_000),
            "Kraken open-order limit per pair (Starter 60, Intermediate 80, Pro 225; without it, the tier's)",
            ("demo", "serve")),
    Setting("safety_ratio", "--safety-ratio", "OPEN_ORDER_SAFETY_RATIO", DEFAULT_SAFETY_RATIO, _ratio,
            "share of the limit treated as usable, in (0, 1]", ("demo", "serve")),
    Setting("kraken_stale_after", "--kraken-stale-after", "EXPORTER_KRAKEN_STALE_AFTER", None, _float_positive,
            {"serve": "seconds after which a Kraken count no longer counts and the pair is blind "
                      "(default: 4 poll intervals, at least one interval plus the timeout)",
             "demo": "wall seconds after which the fake Kraken's count no longer counts and the simulated bot's "
                     f"internal count is used (default {defaults.DEMO_KRAKEN_STALE_AFTER:g})"}, ("demo", "serve")),
    Setting("kraken_url", "--kraken-url", "KRAKEN_API_URL", defaults.KRAKEN_URL, _url,
            "Kraken REST base URL (tests and the demo use a local fake)", ("serve",)),
    Setting("kraken_key_file", "--kraken-key-file", "KRAKEN_KEY_FILE", None, _text,
            "krakenex key file (key, then secret; chmod 600) instead of KRAKEN_API_KEY/KRAKEN_API_SECRET", ("serve",)),
    Setting("kraken_poll_interval", "--kraken-poll-interval", "EXPORTER_KRAKEN_POLL_INTERVAL", defaults.KRAKEN_POLL_INTERVAL,
            _float_positive,
            "seconds between OpenOrders calls (cost 1 each; Starter keys decay 0.33/s)", ("serve",)),
    Setting("kraken_timeout", "--kraken-timeout", "EXPORTER_KRAKEN_TIMEOUT", defaults.KRAKEN_TIMEOUT, _float_positive,
            "seconds a Kraken call may take in all, however slowly the reply arrives", ("serve",)),
    Setting("kraken_stream", "--kraken-stream", "EXPORTER_KRAKEN_STREAM", defaults.KRAKEN_STREAM, _on_off,
            {"serve": "on: partial fills, partial-cancels, fill times and counts from Kraken's WebSocket v2 "
                      "executions stream (the key needs 'WebSocket interface'), OpenOrders as its cross-check; "
                      "off: OpenOrders only (default on)",
             "demo": "on: the fake Kraken's executions stream reports the simulated orders; off: the simulated bot "
                     "calls the order hooks itself (default on)"}, ("demo", "serve")),
    Setting("kraken_ws_url", "--kraken-ws-url", "KRAKEN_WS_URL", defaults.KRAKEN_WS_URL, _ws_url,
            "Kraken's private WebSocket v2 endpoint (tests use a local fake)", ("serve",)),
    Setting("kraken_stream_silence", "--kraken-stream-silence", "EXPORTER_KRAKEN_STREAM_SILENCE",
            defaults.KRAKEN_STREAM_SILENCE, _float_positive,
            "seconds without any message (Kraken sends a heartbeat every second) before the stream reconnects",
            ("serve",)),
    Setting("status_url", "--status-url", "EXPORTER_STATUS_URL", None, _url,
            "the bot's /api/status URL to mirror (required)", ("scrape",)),
    Setting("scrape_interval", "--scrape-interval", "EXPORTER_SCRAPE_INTERVAL", defaults.SCRAPE_INTERVAL, _float_positive,
            "seconds between fetches of the bot's /api/status", ("scrape",)),
    Setting("scrape_timeout", "--scrape-timeout", "EXPORTER_SCRAPE_TIMEOUT", defaults.SCRAPE_TIMEOUT, _float_positive,
            "seconds to wait for the bot's reply", ("scrape",)),
    Setting("scrape_stale_after", "--scrape-stale-after", "EXPORTER_SCRAPE_STALE_AFTER", None, _float_positive,
            "seconds after the last good scrape when the pair turns blind (default: 4 scrape intervals, "
            "at least one interval plus the timeout)", ("scrape",)),
    Setting("web_config_file", "--web-config-file", "EXPORTER_WEB_CONFIG_FILE", None, _text,
            "exporter-toolkit web config: TLS, basic auth, headers (re-read when it changes)", ALL),
    Setting("web_idle_timeout", "--web-idle-timeout", "EXPORTER_WEB_IDLE_TIMEOUT", defaults.WEB_IDLE_TIMEOUT, _float_positive,
            "seconds an HTTP connection may stay without a complete request before it is closed", ALL),
    Setting("web_max_connections", "--web-max-connections", "EXPORTER_WEB_MAX_CONNECTIONS", defaults.WEB_MAX_CONNECTIONS,
            _int(1, 65536),
            "HTTP connections open at once; more are closed on accept", ALL),
    Setting("web_threads", "--web-threads", "EXPORTER_WEB_THREADS", defaults.WEB_THREADS, _int(1, 256),
            "HTTP requests served at once (requests are read without a thread)", ALL),
    Setting("log_level", "--log-level", "EXPORTER_LOG_LEVEL", defaults.LOG_LEVEL,
            _log_level, "DEBUG, INFO, WARNING or ERROR", ALL),
    Setting("speedup", "--speedup", "EXPORTER_DEMO_SPEEDUP", defaults.DEMO_SPEEDUP, _float_positive,
            f"simulated seconds per wall second ({defaults.DEMO_SPEEDUP:g}: "
            f"a day in {86_400 / defaults.DEMO_SPEEDUP:g} s)", ("demo",)),
    Setting("seed", "--seed", "EXPORTER_DEMO_SEED", defaults.DEMO_SEED, _int(0, 2**31),
            "random seed of the simulation (thread timing still varies from run to run)", ("demo",)),
    Setting("duration", "--duration", "EXPORTER_DEMO_DURATION", defaults.DEMO_DURATION, _seconds_or_zero,
            "stop after this many wall seconds (0: run until Ctrl-C)", ("demo",)),
    Setting("canary_every", "--canary-every", "EXPORTER_DEMO_CANARY_EVERY", defaults.DEMO_CANARY_EVERY_HOURS, _seconds_or_zero,
            "simulated hours between partial-cancel canaries, the first after 20 (0: never)", ("demo",)),
    Setting("outage_every", "--kraken-outage-every", "EXPORTER_DEMO_OUTAGE_EVERY", defaults.DEMO_OUTAGE_EVERY, _seconds_or_zero,
            "the fake Kraken fails for 30 s this often, first after 90 s (0: never)", ("demo",)),
)


def _default(name: str) -> Any:
    """The default of setting `name`, from the table: `Config` holds no default of its own."""
    return next(s.default for s in SETTINGS if s.name == name)


@dataclass(frozen=True)
class Config:
    """The resolved settings of one command: a field per row of `SETTINGS` (a test holds them equal)."""

    command: str = "demo"
    host: str = _default("host")
    port: int = _default("port")
    pairs: tuple[str, ...] = ()  # empty: the table's default for demo and serve, the payload's pair for scrape
    kraken_tier: str = _default("kraken_tier")
    limit: int = _default("limit")
    safety_ratio: float = _default("safety_ratio")
    kraken_stale_after: float | None = _default("kraken_stale_after")
    kraken_url: str = _default("kraken_url")
    kraken_key_file: str | None = _default("kraken_key_file")
    kraken_poll_interval: float = _default("kraken_poll_interval")
    kraken_timeout: float = _default("kraken_timeout")
    kraken_stream: bool = _default("kraken_stream")
    kraken_ws_url: str = _default("kraken_ws_url")
    kraken_stream_silence: float = _default("kraken_stream_silence")
    status_url: str | None = _default("status_url")
    scrape_interval: float = _default("scrape_interval")
    scrape_timeout: float = _default("scrape_timeout")
    scrape_stale_after: float | None = _default("scrape_stale_after")
    web_config_file: str | None = _default("web_config_file")
    web_idle_timeout: float = _default("web_idle_timeout")
    web_max_connections: int = _default("web_max_connections")
    web_threads: int = _default("web_threads")
    log_level: str = _default("log_level")
    speedup: float = _default("speedup")
    seed: int = _default("seed")
    duration: float = _default("duration")
    outage_every: float = _default("outage_every")
    canary_every: float = _default("canary_every")

    @property
    def pair_list(self) -> tuple[str, ...]:
        return self.pairs or _default("pairs")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flags of `command`; defaults stay None so the environment can fill in."""
    for s in SETTINGS:
        if command in s.commands:
            parser.add_argument(s.flag, dest=s.name, default=None, help=s.help_for(command))


def load_config(command: str, args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Resolve every setting of `command` from flags, then environment, then defaults."""
    env = env or {}
    values: dict[str, Any] = {"command": command}
    known = {f.name for f in fields(Config)}
    for s in SETTINGS:
        if command not in s.commands or s.name not in known:
            continue
        flag_value = getattr(args, s.name, None) if args is not None else None
        raw, origin = (flag_value, s.flag) if flag_value is not None else (env.get(s.env), s.env)
        if raw is None or raw == "":
            continue
        try:
            values[s.name] = s.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    if "kraken_tier" in values and "limit" not in values:  # an explicit --limit wins over the tier's
        values["limit"] = tier(values["kraken_tier"]).open_order_limit
    if command == "scrape" and not values.get("status_url"):
        raise ConfigError("--status-url / EXPORTER_STATUS_URL: required (the bot's /api/status URL)")
    return Config(**values)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return ",".join(value) if isinstance(value, tuple) else str(value)
