"""Kraken's WebSocket v2 `executions` stream as a source: every order of the account, live, with Kraken's timestamps.

One daemon thread runs an asyncio loop with one `websockets` connection; the HTTP edge and the hooks never wait on
it. Each (re)connect fetches a fresh token (REST `GetWebSocketsToken`, through the read-only krakenex door),
subscribes `executions` with `snap_orders`, no `snap_trades` and `order_status`, and applies the snapshot and then
each update to an `ExecutionBook` (exporter/core/executions.py), whose hook calls go to the pairs' telemetries
exactly as a bot's would. The open-order count per pair is refreshed from the book at every change and at least
once a second while the stream is live (so a quiet account stays fresh).

Reconnects, counted by reason in `krakenbot_kraken_stream_reconnects_total`: the connection drops (`disconnect`),
cannot be opened (`connect_failed`), no token (`token_error`), the subscription is refused (`subscribe_rejected`),
a `sequence` number is skipped (`sequence_gap`), a snapshot contradicts what we saw (`snapshot_contradiction`),
nothing arrives for `silence` seconds, or no snapshot within `silence` seconds of subscribing (`silence`: Kraken
sends a heartbeat every second), or malformed frames
persist (`malformed`). Between attempts it waits with jitter, doubling up to 60 s, so a flapping stream never
storms. What happened while it was away is settled through REST after the next snapshot (`kraken_settle.py`:
`ClosedOrders` since the gap began, `QueryOrders` 50 txids a call), and each order is counted once.

A key without Kraken's "WebSocket interface" permission gets `EGeneral:Permission denied` for its token: one warning
names the permission, the stream stays off, and `serve` goes on with `OpenOrders` alone. A rejected key
(`EAPI:Invalid key`) is counted in `krakenbot_kraken_requests_total{endpoint="GetWebSocketsToken"}`, which pages as
for `OpenOrders`, and retried with the same backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..core import defaults
from ..core.executions import SKIP_REASONS, ExecutionBook, Observation, PairMatcher, parse_time
from ..core.naming import PREFIX
from ..core.order_rate import tier as tier_walls
from ..core.stream_frames import FRAME_KINDS, NOT_JSON, Frame, SequenceCheck, frame_of
from ..core.stream_frames import loads as _loads
from ..core.telemetry import CapacityTelemetry
from .kraken_api import RESULTS, KrakenError, ReadOnlyKraken
from .kraken_poller import KrakenSourceMetrics
from .kraken_settle import DEFAULT_PACE, Settler

log = logging.getLogger("kraken_capacity_exporter.kraken_stream")
_monotonic = time.monotonic

KRAKEN_WS_URL = defaults.KRAKEN_WS_URL
DEFAULT_SILENCE = defaults.KRAKEN_STREAM_SILENCE
MAX_BACKOFF = 60.0
STABLE_AFTER = 60.0  # a connection live this long resets the backoff
MAX_MALFORMED_RUN = 100  # malformed frames with no readable executions message between them: the connection is dropped
CLOCK_SKEW = 60.0  # seconds Kraken's clock may be ahead of ours (as the hooks allow for closed_at), when not measured
MEASURED_SKEW = 5.0  # margin on Kraken's clock as measured by a subscribe ack's `time_out` (network delay, rounding)
COUNT_REFRESH = 1.0  # seconds between count refreshes of a quiet, live stream
COUNT_SETTLE = 0.05  # a changed count reaches the telemetry within this (a burst of orders is one update, not many)
RATE_SETTLE = 0.05  # the rate counter's events reach the telemetry within this in a burst (a heartbeat hands over the rest)
RECONNECT_REASONS = ("disconnect", "connect_failed", "token_error", "subscribe_rejected", "sequence_gap",
                     "snapshot_contradiction", "silence", "malformed")
PERMISSION_HINT = ("the API key lacks Kraken's \"WebSocket interface\" permission (Kraken > Settings > API; a "
                   "monitoring key needs Query Open Orders & Trades, Query Closed Orders & Trades and WebSocket "
                   "interface, nothing that can trade)")
SUBSCRIBE_PARAMS = {"channel": "executions", "snap_orders": True, "snap_trades": False, "order_status": True,
                    "ratecounter": True}  # Kraken's own order rate counter in the rows, where it sends one


class _NoFramePayloads(logging.Filter):
    """`websockets` logs every frame it sends at DEBUG, and the subscribe frame holds the WebSocket token: what the
    stream sends is logged by kind and size only (frames received are Kraken's and carry no token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if type(args) is tuple and len(args) == 1 and record.msg == "> %s":
            frame = args[0]
            opcode, data = getattr(frame, "opcode", None), getattr(frame, "data", None)
            if opcode is not None and isinstance(data, (bytes, bytearray, memoryview)) and opcode.name != "CLOSE":
                record.args = (f"{opcode.name} [payload not logged, {len(data)} bytes]",)
        return True


# The `websockets` connection's logger: `websockets.client`'s place, without the payloads we send.
WS_LOG = logging.getLogger("kraken_capacity_exporter.kraken_stream.websockets")
WS_LOG.addFilter(_NoFramePayloads())


class ConnectionState:
    """What one connection's messages carry from one to the next."""

    __slots__ = ("malformed_run", "sequence", "silent")

    def __init__(self) -> None:
        self.sequence = SequenceCheck()
        self.malformed_run = 0
        self.silent = False  # the silence watchdog dropped it


class _PermanentlyOff(Exception):
    """The key may not use the stream: stop trying."""


class StreamMetrics:
    """The stream's own health (no pair label but the side-by-side counts)."""

    def __init__(self, registry: CollectorRegistry, clock: Any = time.monotonic) -> None:
        self.up = Gauge(f"{PREFIX}_kraken_stream_up",
                        "1 while the Kraken executions stream is subscribed, has its snapshot and is not silent.",
                        registry=registry)
        self.reconnects = PromCounter(f"{PREFIX}_kraken_stream_reconnects", "Kraken executions stream reconnects by reason.",
                                      ["reason"], registry=registry)
        self.messages = _MessageCounts()  # counted per message without prometheus-client's lock: read at scrape
        registry.register(self.messages)
        self.bad_rows = PromCounter(f"{PREFIX}_kraken_stream_bad_rows",
                                    "Execution rows skipped (bad_timestamp: applied, times from REST) by reason.",
                                    ["reason"], registry=registry)
        self.reported = Gauge(f"{PREFIX}_kraken_open_orders_reported",
                              "Open orders of the pair as each Kraken source last counted them (stream, rest).",
                              ["pair", "source"], registry=registry)
        self.age = _LastMessageAge(clock)
        registry.register(self.age)
        for reason in RECONNECT_REASONS:
            self.reconnects.labels(reason=reason)
        for reason in SKIP_REASONS:
            self.bad_rows.labels(reason=reason)


class _MessageCounts(Collector):
    """`krakenbot_kraken_stream_messages_total{type}`: plain integers the stream's thread adds to (one thread
    writes; a scrape reads a consistent enough copy), exported as a counter at scrape time."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(FRAME_KINDS, 0)
        self.created = time.time()

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(f"{PREFIX}_kraken_stream_messages", "Kraken WebSocket messages received by type.",
                                     labels=["type"])
        for kind, n in list(self.counts.items()):
            family.add_metric([kind], n, created=self.created)
        yield family


class _LastMessageAge(Collector):
    """`krakenbot_kraken_stream_last_message_age_seconds`: absent until the first message, then its age."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.last: float | None = None

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(f"{PREFIX}_kraken_stream_last_message_age_seconds",
                                   "Seconds since the Kraken stream's last message (heartbeats included); absent before one.")
        last = self.last
        if last is not None:
            family.add_metric([], max(0.0, self._clock() - last))
        yield family


def backoff_delay(attempt: int, rng: random.Random, cap: float = MAX_BACKOFF) -> float:
    """Seconds before reconnect `attempt` (0, 1, ...): 1 s doubling, capped, times a jitter in [0.5, 1]."""
    return min(cap, 2.0 ** min(attempt, 16)) * (0.5 + rng.random() / 2)


class KrakenStream:
    """The `executions` stream of one account, feeding each configured pair's telemetry. `start()`, `stop()`."""

    thread_name = "kraken-stream"

    def __init__(
        self,
        client: ReadOnlyKraken,
        telemetries: Iterable[CapacityTelemetry],
        metrics: StreamMetrics,
        source_metrics: KrakenSourceMetrics,
        url: str = KRAKEN_WS_URL,
        silence: float = DEFAULT_SILENCE,
        max_backoff: float = MAX_BACKOFF,
        rng: random.Random | None = None,
        rest_pace: float = DEFAULT_PACE,
    ) -> None:
        self.client = client
        self.telemetries = {t.pair: t for t in telemetries}
        self.metrics = metrics
        self.source_metrics = source_metrics
        self.url = url
        self.silence = float(silence)
        self.max_backoff = float(max_backoff)
        self._rng = rng or random.Random()
        names = [t.names for t in self.telemetries.values()]
        self.book = ExecutionBook(PairMatcher(names))
        self._rest_match = PairMatcher(names)  # the poller's thread has its own cache
        self.state = "starting"  # connecting | live | backoff | off | stopped
        self.live = False
        self.snapshots = 0
        self.reconnects: Counter[str] = Counter()
        self._disagree: dict[str, int] = {}
        self._contradicted: set[str] = set()
        self._gap_began: float | None = None  # our clock (the telemetries'): the last message before a gap
        self._kraken_ahead: float | None = None  # Kraken's clock less ours, from the last subscribe ack's `time_out`
        self._threshold_warned: tuple[Any, str] | None = None  # the last (maxratecount, tier) warned about
        self._failed_attempts = 0  # attempts since the stream was last live
        self._age, self._message_counts = metrics.age, metrics.messages.counts  # touched by every message
        self._counts_seen = -1  # the book's `changes` when the counts were last told
        self._hold_until = 0.0  # no push before this (the last was just now)
        self._refresh_due = 0.0  # when an unchanged count is told again
        self._flush_due = False  # a timer will push a changed count
        self._rate_due = 0.0  # an update hands the rate counter's events over from then on (`_apply_rate`)
        self._detail = ""  # what the last session's end was, for the log line
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ended = threading.Event()
        self.settler = Settler(self.book, self._private, self._settled,
                               lambda n: backoff_delay(n, self._rng, self.max_backoff), pace=rest_pace,
                               stopping=self._stopping.is_set)
        self._stream_gauges = {pair: metrics.reported.labels(pair=pair, source="stream") for pair in self.telemetries}
        for result in RESULTS:  # at 0 up front, as OpenOrders': a rejected key's first token call pages too
            source_metrics.requests.labels(endpoint="GetWebSocketsToken", result=result)
        for telemetry in self.telemetries.values():
            telemetry.rate_from_hooks = False  # the book's rate events feed the order rate counter instead

    @property
    def events_known(self) -> bool:
        """True once a snapshot has come and the stream is not off: partial fills and fill times are known."""
        return self.snapshots > 0 and self.state != "off"

    @property
    def rate_known(self) -> bool:
        """True while the stream is live: the order rate counter's events arrive. While it is down they are lost
        (no snapshot carries them), so the counter is unknown and its series are absent."""
        return self.live and self.state != "off"

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_thread, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(main.cancel)
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout + 5)

    def wait_stopped(self, timeout: float) -> bool:
        """For tests: True once the loop has ended (after `stop()`, or when the stream turned itself off)."""
        return self._ended.wait(timeout)

    def _run_thread(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._main = loop.create_task(self._run())
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._main)
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
        finally:
            self.live = False
            self.metrics.up.set(0)
            loop.close()
            self._ended.set()

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            self.state = "connecting"
            started = time.monotonic()
            try:
                reason = await self._session()
            except _PermanentlyOff:
                self.state = "off"
                return
            except Exception as exc:  # a bug must not end the stream silently
                log.error("Kraken stream: unexpected %s: %s; reconnecting", type(exc).__name__, exc, exc_info=True)
                reason = "disconnect"
            was_live = self.live
            self._set_live(False)
            self._note_gap()
            if self._stopping.is_set():
                return
            self.metrics.reconnects.labels(reason=reason).inc()
            self.reconnects[reason] += 1
            attempt = 0 if was_live and time.monotonic() - started >= STABLE_AFTER else attempt + 1
            delay = backoff_delay(attempt - 1 if attempt else 0, self._rng, self.max_backoff)
            self._failed_attempts += 1
            if was_live:
                log.warning("Kraken executions stream lost (%s%s); reconnecting in %.1f s; OpenOrders stands in for the "
                            "counts meanwhile", reason, self._detail, delay)
            else:  # one line when it cannot come back, not one per attempt
                (log.info if self._failed_attempts == 1 else log.debug)(
                    "Kraken executions stream not up (%s%s); trying again in %.1f s (and on, with backoff up to %.0f s)",
                    reason, self._detail, delay, self.max_backoff)
            self.state = "backoff"
            await asyncio.sleep(delay)

    # ---- one connection ----------------------------------------------------------------------------------

    async def _session(self) -> str:
        """One connection, from token to its end; returns the reconnect reason (`_detail` says more)."""
        self._detail = ""
        try:
            token = await asyncio.to_thread(self._token)
        except KrakenError:
            return "token_error"
        try:
            ws = await connect(self.url, open_timeout=10, close_timeout=2, ping_interval=None, max_size=2**24, compression=None,
                               max_queue=4096, logger=WS_LOG)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            self._detail = f": {type(exc).__name__}: {exc}"
            return "connect_failed"
        async with ws:
            await ws.send(json.dumps({"method": "subscribe", "params": {**SUBSCRIBE_PARAMS, "token": token}}))
            return await self._read(ws)

    async def _read(self, ws: ClientConnection) -> str:
        """Read until the connection ends, a message asks to reconnect, or nothing comes for `silence` seconds
        (a watchdog, not a timeout per message: a timer per message would cost more than the message)."""
        connection = ConnectionState()
        silent = asyncio.get_running_loop().create_task(self._watch_silence(ws, connection))
        try:
            async for text in ws:
                reason = self.on_text(text, connection)
                if reason is not None:
                    return reason
        except ConnectionClosed:
            pass
        finally:
            silent.cancel()
        return "silence" if connection.silent else "disconnect"

    async def _watch_silence(self, ws: ClientConnection, connection: ConnectionState) -> None:
        """Drop the connection once nothing has come for `silence` seconds (Kraken sends a heartbeat every second)."""
        started = time.monotonic()
        while True:
            last = self._age.last if self._age.last is not None and self._age.last > started else started
            now = time.monotonic()
            quiet = now - last
            if not self.live and now - started >= self.silence:  # heartbeats, but no snapshot: as good as silent
                quiet = now - started
                self._detail = f": no snapshot within {self.silence:g} s of subscribing"
            if quiet >= self.silence:
                connection.silent = True
                ws.transport.abort()  # no closing handshake with a peer that says nothing
                return
            await asyncio.sleep(min(1.0, self.silence - quiet))

    def on_text(self, text: str | bytes, connection: ConnectionState) -> str | None:
        """One message of `connection`, applied; the reason to reconnect, or None. (The whole per-message work,
        which the bench times.)"""
        now = self._age.last = _monotonic()
        try:
            message = _loads(text)
        except (ValueError, TypeError):
            message = None
        # The common message, an `executions` update of a live stream, written out: `frame_of` and
        # `SequenceCheck.check` inline (each call and tuple here costs the bench's per-event ratio a few percent).
        if type(message) is dict and message.get("type") == "update" and message.get("channel") == "executions" \
                and self.live:
            rows, sequence = message.get("data"), message.get("sequence")
            if type(rows) is list and (sequence is None or type(sequence) is int and sequence >= 0):
                self._message_counts["update"] += 1
                connection.malformed_run = 0
                check = connection.sequence
                last = check.last
                if not check.snapshot_seen:
                    return "sequence_gap"
                if sequence is not None and last is not None:
                    if sequence <= last:  # a duplicate: skipped
                        self._refresh_counts(now)
                        return None
                    if sequence != last + 1:
                        return "sequence_gap"
                    check.last = sequence
                book = self.book
                out: list[Observation] = []
                skipped = book.update(rows, out)
                if out:
                    self._apply(out)
                if book.rate_events and now >= self._rate_due:  # (a burst's events go over in one batch)
                    self._apply_rate(now)
                if skipped is not None:
                    self._count_skipped(skipped)
                if book.has_pending:
                    self.settler.poke()
                if (book.changes != self._counts_seen and (now >= self._hold_until or not self._flush_due)) \
                        or now >= self._refresh_due:  # (a change in a burst whose push is due already: nothing to do)
                    self._refresh_counts(now)
                return None
        frame = NOT_JSON if message is None else frame_of(message)
        kind = frame.kind
        self._message_counts[kind] += 1
        if kind == "malformed":
            connection.malformed_run += 1
            return "malformed" if connection.malformed_run >= MAX_MALFORMED_RUN else None
        if frame.kind in ("snapshot", "update"):
            connection.malformed_run = 0  # (a heartbeat between malformed frames does not end their run)
            verdict = connection.sequence.check(frame)
            if verdict == "gap":
                return "sequence_gap"
            if verdict == "ok" and self._executions(frame):
                return "snapshot_contradiction"
        elif kind == "subscribed":
            self._measure_clock(text)
            self._read_threshold(text)
        elif frame.kind == "rejected":
            self._detail = f": {frame.error}; a fresh token comes with the retry"
            return "subscribe_rejected"
        if self.book.rate_events:  # any other message (a heartbeat, every second) hands over what a burst left
            self._apply_rate(now)
        self._refresh_counts(now)
        return None

    def _executions(self, frame: Frame) -> bool:
        """Apply a snapshot or an update; True when a snapshot contradicts what we saw (reconnect)."""
        if frame.kind == "update":
            applied = self.book.apply_update(frame.rows)
        else:
            applied = self.book.apply_snapshot(frame.rows, trust=self._contradicted)
            if applied.contradictions and not set(applied.contradictions) <= self._contradicted:
                self._contradicted = set(applied.contradictions)
                log.warning("Kraken's snapshot contradicts what the stream saw for %d order(s) (e.g. %s); resubscribing",
                            len(applied.contradictions), applied.contradictions[0])
                return True
            if applied.contradictions:
                log.warning("Kraken's snapshot contradicts the stream again for %d order(s): taking Kraken's view",
                            len(applied.contradictions))
            self._contradicted = set()
            self.settler.after_snapshot(self._gap_since() if self.snapshots else None)
            self.snapshots += 1
            if not self.live:
                log.info("Kraken executions stream live%s: %s",
                         f" again after {self._failed_attempts} attempt(s)" if self._failed_attempts else "",
                         ", ".join(f"{pair} {self.book.open_count(pair)} open" for pair in self.telemetries))
                self._failed_attempts = 0
            self._set_live(True)
        if applied.observations:
            self._apply(applied.observations)
        if self.book.rate_events:
            self._apply_rate(_monotonic())
        if applied.skipped:
            self._count_skipped(applied.skipped)
        if self.book.has_pending:
            self.settler.poke()
        return False

    def _apply_rate(self, now: float) -> None:
        """The order rate counter's events, to each pair's telemetry (one batch per pair): from an update at most
        every RATE_SETTLE seconds, from any other message (Kraken's heartbeat comes every second) always. Each event
        carries Kraken's time, so a batch handed over later counts exactly as it would have at once."""
        self._rate_due = now + RATE_SETTLE
        for pair, events in self.book.take_rate_events().items():
            telemetry = self.telemetries.get(pair)
            if telemetry is not None:
                telemetry.observe_rate_events(events)

    def _count_skipped(self, skipped: Mapping[str, int]) -> None:
        for reason, n in skipped.items():
            self.metrics.bad_rows.labels(reason=reason).inc(n)

    def _clock_now(self) -> float:
        return next(iter(self.telemetries.values())).clock.now() if self.telemetries else time.time()

    def _measure_clock(self, text: str | bytes) -> None:
        """How far Kraken's clock is ahead of ours, from the ack's `time_out` (RFC 3339, Kraken's clock): where a gap
        began is then known on Kraken's clock, which `ClosedOrders` is asked in."""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            kraken = parse_time(json.loads(text).get("time_out"))
            if kraken is not None:
                self._kraken_ahead = kraken - self._clock_now()

    def _read_threshold(self, text: str | bytes) -> None:
        """The account's own rate counter threshold, `maxratecount` in the subscribe ack (Kraken's executions page):
        handed to every pair's counter, preferred to the tier's; one warning when it is not the configured tier's."""
        ack: Any = None
        with contextlib.suppress(ValueError, TypeError):
            ack = json.loads(text)
        if not isinstance(ack, dict):
            return
        result = ack.get("result")
        value = result.get("maxratecount") if isinstance(result, dict) else None
        if value is None:
            value = ack.get("maxratecount")
        if value is None:
            return  # not sent: the tier's threshold stays
        for telemetry in self.telemetries.values():
            configured = telemetry.observe_rate_threshold(value)
            if configured is not None and (value, configured) != self._threshold_warned:
                self._threshold_warned = (value, configured)
                log.warning("Kraken says this account's order rate threshold is %s, but the configured tier %s has "
                            "%g: Kraken's %s is in force (set --kraken-tier to the account's tier)", value, configured,
                            tier_walls(configured).rate_threshold, value)

    def _note_gap(self) -> None:
        """A connection ended: its last message, on our clock, is where the gap began (unless an earlier gap is
        still to be settled)."""
        last = self.metrics.age.last
        if last is not None and self._gap_began is None:
            self._gap_began = self._clock_now() - (time.monotonic() - last)

    def _gap_since(self) -> float | None:
        """Where the gap before this snapshot began, on Kraken's clock: the last event seen, or our last message
        less the clock skew Kraken may have."""
        began, self._gap_began = self._gap_began, None
        ahead = self._kraken_ahead
        if began is not None:
            began = began - CLOCK_SKEW if ahead is None else began + ahead - MEASURED_SKEW
        candidates = [t for t in (self.book.latest, began) if t is not None]
        return min(candidates) if candidates else None

    def _settled(self, observations: list[Observation]) -> None:
        """What REST settled: hook calls, and the counts."""
        self._apply(observations)
        self._refresh_counts()

    def _apply(self, observations: list[Observation]) -> None:
        telemetries = self.telemetries
        now = None
        for o in observations:
            telemetry = telemetries.get(o.pair)
            if telemetry is None:
                continue
            if o.closed_at is not None:
                if now is None:
                    now = telemetry.clock.now()  # (one clock: the exporter's)
                if o.closed_at > now:
                    o = self._on_our_clock(o, now)
            if o.reason is None:  # (positional: keywords cost the call a tenth)
                telemetry.observe_order_status(o.order_id, o.status, o.vol, o.vol_exec, o.placed_at, o.closed_at)
            else:
                telemetry.observe_order_status(o.order_id, o.status, o.vol, o.vol_exec, placed_at=o.placed_at,
                                               closed_at=o.closed_at, reason=o.reason)

    @staticmethod
    def _on_our_clock(o: Observation, now: float) -> Observation:
        """A fill Kraken dates after our now (our clock behind Kraken's): moved back to now with its start, so that
        its time (Kraken's end minus Kraken's start) is kept and the hooks' future-time check does not reject it."""
        ahead = o.closed_at - now if o.closed_at is not None else 0.0
        if ahead <= 0.0:
            return o
        placed = o.placed_at - ahead if o.placed_at is not None else None
        return o._replace(placed_at=placed if placed is None or placed > 0.0 else None, closed_at=now)

    def _refresh_counts(self, now: float | None = None) -> None:
        """Tell each pair's telemetry its count: a change within `COUNT_SETTLE` (many changes in a burst are one
        push; a timer on the loop pushes the last), an unchanged count once a second (a quiet account stays fresh)."""
        if not self.live:
            return
        if now is None:
            now = time.monotonic()
        changed = self.book.changes != self._counts_seen
        if now < self._hold_until:
            if changed and not self._flush_due:
                self._flush_due = True  # one push at the hold's end: the loop's timer (without a loop: the next message)
                loop = self._loop
                if loop is not None and loop.is_running():
                    loop.call_later(self._hold_until - now, self._flush_counts)
            return
        if not changed and now < self._refresh_due:
            return  # the common message: nothing to tell
        self._flush_due = False
        self._counts_seen = self.book.changes
        self._hold_until, self._refresh_due = now + COUNT_SETTLE, now + COUNT_REFRESH
        for pair, telemetry in self.telemetries.items():
            count = self.book.open_count(pair)
            telemetry.observe_kraken_count(count)
            self._stream_gauges[pair].set(count)

    def _flush_counts(self) -> None:
        self._flush_due = False
        self._refresh_counts()

    def _set_live(self, live: bool) -> None:
        self.live = live
        self.metrics.up.set(1 if live else 0)
        if live:
            self.state = "live"
            self._counts_seen, self._hold_until, self._refresh_due = -1, 0.0, 0.0  # tell the counts at once

    # ---- REST: token and lookups --------------------------------------------------------------------------

    def _token(self) -> str:
        """A fresh token (blocking: runs in a worker thread). Permission denied turns the stream off for good."""
        try:
            result = self._private("GetWebSocketsToken")
        except KrakenError as exc:
            if exc.result == "permission_denied":
                log.warning("Kraken refuses a WebSocket token (%s): %s. The executions stream stays off; serve goes "
                            "on with OpenOrders only (no partial fills or fill times)", exc, PERMISSION_HINT)
                raise _PermanentlyOff() from None
            self._detail = f": no token, {exc.result}: {exc}"
            raise
        token = result.get("token")
        if not isinstance(token, str) or not token:
            raise KrakenError("malformed_reply", "GetWebSocketsToken gave no token")
        return token

    def _private(self, method: str, data: dict[str, Any] | None = None) -> Any:
        started = time.monotonic()
        outcome = "ok"
        try:
            return self.client.private(method, data)
        except KrakenError as exc:
            outcome = exc.result
            raise
        finally:
            self.source_metrics.duration.labels(endpoint=method).observe(time.monotonic() - started)
            self.source_metrics.requests.labels(endpoint=method, result=outcome).inc()

    # ---- the cross-check with OpenOrders (called on the poller's thread) ------------------------------

    def cross_check(self, open_orders: Mapping[str, Any]) -> None:
        """An OpenOrders reply: its counts beside the stream's, and `opentm` for orders open at connect."""
        counts: Counter[str] = Counter()
        for row in open_orders.values():
            descr = row.get("descr") if isinstance(row, Mapping) else None
            name = descr.get("pair") if isinstance(descr, Mapping) else None
            label = self._rest_match(name) if isinstance(name, str) else None
            if label is not None:
                counts[label] += 1
        for pair in self.telemetries:
            self.metrics.reported.labels(pair=pair, source="rest").set(counts.get(pair, 0))
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._compare, counts, dict(open_orders))

    def _compare(self, counts: Counter[str], open_orders: dict[str, Any]) -> None:
        self.book.note_open_orders(open_orders)
        if not self.live:
            self._disagree.clear()
            return
        for pair in self.telemetries:
            stream, rest = self.book.open_count(pair), counts.get(pair, 0)
            if stream == rest:
                if self._disagree.pop(pair, 0) >= 2:
                    log.info("Kraken's counts for %s agree again: %d open orders", pair, stream)
                continue
            runs = self._disagree[pair] = self._disagree.get(pair, 0) + 1
            if runs == 2:  # past one poll: not an order caught between the two
                log.warning("Kraken's open-order counts for %s disagree for two polls in a row: the stream says %d, "
                            "OpenOrders says %d", pair, stream, rest)
