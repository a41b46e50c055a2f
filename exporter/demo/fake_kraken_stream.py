"""The fake Kraken's WebSocket v2 endpoint (`ws://127.0.0.1:<port>/v2`): the private `executions` channel of a
`FakeAccount`, for the demo and the tests. 127.0.0.1 only, plain `ws://` (the real one is `wss://`).

What a client meets, in Kraken's documented shapes: a `status` message on connect; `{"method": "subscribe", ...}`
checked against the fake REST side's tokens (`GetWebSocketsToken`), answered by an ack with `success` true (or
false with an `error`); then a `snapshot` of the open orders (`sequence` 1) and an `update` per change
(`sequence` 2, 3, ...); `{"channel": "heartbeat"}` about once a second when nothing else was sent; `ping` gets
`pong`.

Scriptable faults: `disconnect()` drops every connection mid-stream; `refuse_tokens(n)` refuses the next n
subscriptions (an expired or invalid token; `FakeKraken.tokens.expire_all()` expires real ones); `garbage(n)` sends
n malformed frames (not JSON, wrong types, an unknown exec_type, an unknown symbol); `gap()` skips a sequence
number; `silence(seconds)` sends nothing at all for that long (events keep happening and are lost to that
connection); `withhold_snapshots = n` acknowledges the next n subscriptions and sends them heartbeats but never a snapshot;
`slow_reader()` drops the connection mid-burst as Kraken drops a reader that falls behind (close code
1008); a key without the "WebSocket interface" permission is the REST side's (`FakeKraken(permissions=...)`).
`connections` and `subscriptions` count what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ..core import defaults
from ..core.order_rate import tier as tier_walls
from .fake_account import FakeAccount, Rows
from .fake_kraken import WsTokens

GARBAGE_FRAMES = (
    "this is not JSON {",
    '["an", "array"]',
    '{"channel": "executions", "type": "update", "data": {"not": "a list"}, "sequence": 0}',
    '{"channel": "executions", "type": "update", "data": [{"order_id": "OGARBA-GEXXX-XXXXXX", '
    '"exec_type": "teleported", "order_status": "new", "timestamp": "2024-05-18T12:58:51.121515Z"}]}',
    '{"channel": "executions", "type": "update", "data": [{"order_id": "OGARBA-GEYYY-YYYYYY", '
    '"exec_type": "pending_new", "symbol": "NOT A PAIR", "order_qty": 1.0, "order_status": "pending_new", '
    '"timestamp": "2024-05-18T12:58:51.121515Z"}]}',
    '{"channel": "executions", "type": "update", "data": [{"order_id": 12345, "exec_type": "new"}]}',
)


_dumps = functools.partial(json.dumps, separators=(",", ":"))  # compact, as Kraken sends


def _now_text() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Connection:
    """One client: its queue of frames to send, its sequence, and the faults that apply to it."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.sequence = 0
        self.silent_until = 0.0
        self.last_sent = time.monotonic()
        self.subscribed = False

    def executions(self, kind: str, rows: Rows, skip: int = 0) -> str:
        self.sequence += 1 + skip
        return _dumps({"channel": "executions", "type": kind, "data": rows, "sequence": self.sequence})


class FakeKrakenStream:
    """`FakeKrakenStream(account, tokens)`; `start()` returns the `ws://` URL, `stop()` ends it."""

    def __init__(self, account: FakeAccount, tokens: WsTokens, heartbeat_seconds: float = 1.0,
                 tier: str = defaults.KRAKEN_TIER) -> None:
        self.account = account
        self.max_rate_count = int(tier_walls(tier).rate_threshold)  # the ack's `maxratecount`: the account's tier
        self.tokens = tokens
        self.heartbeat_seconds = heartbeat_seconds
        self.connections = 0
        self.subscriptions = 0
        self.rejected = 0
        self._live: set[_Connection] = set()
        self._gap_next = False
        self._slow_reader_next = False
        self.withhold_snapshots = 0  # the next N subscriptions are acknowledged and get heartbeats, but no snapshot
        self._connection_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.url = ""

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        self._thread = threading.Thread(target=self._run, args=(port,), name="fake-kraken-stream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Kraken stream did not start")
        return self.url

    def _run(self, port: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._serve(port))
        loop.run_forever()
        loop.close()

    async def _serve(self, port: int) -> None:
        quiet = logging.getLogger("kraken_capacity_exporter.demo.fake_stream")  # not a line per connection
        quiet.setLevel(logging.WARNING)
        self._server = await serve(self._handle, "127.0.0.1", port, ping_interval=None, max_queue=64, logger=quiet)
        host, bound = next(iter(self._server.sockets)).getsockname()[:2]
        self.url = f"ws://{host}:{bound}/v2"
        self._ready.set()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._server is None or loop.is_closed() or not loop.is_running():
            return
        server = self._server

        async def close() -> None:
            server.close()
            await server.wait_closed()

        with contextlib.suppress(Exception):  # stopping anyway
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- faults ------------------------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Drop every connection now, without a closing handshake (as a network failure does)."""
        self._each(lambda c: c.ws.transport.abort())

    def refuse_tokens(self, times: int = 1) -> None:
        """The next `times` subscriptions are refused as with an expired or invalid token."""
        self.tokens.refuse_next = times

    def garbage(self, times: int = len(GARBAGE_FRAMES)) -> None:
        """Send `times` malformed frames on every live subscription, between its real messages."""
        frames = [GARBAGE_FRAMES[i % len(GARBAGE_FRAMES)] for i in range(times)]
        self._each(lambda c: [c.queue.put_nowait(f) for f in frames] if c.subscribed else None)

    def gap(self) -> None:
        """The next update skips a sequence number (a message lost on the way)."""
        self._gap_next = True

    def silence(self, seconds: float) -> None:
        """Send nothing at all, not even heartbeats, on every connection for `seconds`."""
        until = time.monotonic() + seconds
        self._each(lambda c: setattr(c, "silent_until", until))

    def slow_reader(self) -> None:
        """Drop the next subscription that gets an update, with code 1008, as Kraken drops a reader that falls
        behind its updates."""
        self._slow_reader_next = True

    def publish(self, rows: Rows) -> None:
        """Send `rows` as one update to every live subscription, whatever the account says (the bench's feed sends
        rows it made beforehand, so that sending costs it little)."""
        loop = self._loop
        if loop is not None:
            for connection in list(self._live):
                loop.call_soon_threadsafe(self._update, connection, rows)

    @property
    def live_subscriptions(self) -> int:
        return sum(1 for c in list(self._live) if c.subscribed)

    def _each(self, action: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        done = threading.Event()

        def run() -> None:
            try:
                for connection in list(self._live):
                    action(connection)
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        done.wait(5)

    # ---- one connection ----------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path.split("?")[0] != "/v2":
            await ws.close(code=1008, reason="unknown path")
            return
        self.connections += 1
        connection = _Connection(ws)
        self._live.add(connection)
        stop_listening = None
        loop = asyncio.get_running_loop()
        sender = asyncio.create_task(self._send_loop(connection))
        try:
            await ws.send(_dumps({"channel": "status", "type": "update", "data": [{
                "api_version": "v2", "connection_id": next(self._connection_ids), "system": "online",
                "version": "2.0.10"}]}))
            async for text in ws:
                stop_listening = self._answer(connection, text, loop, stop_listening)
        except ConnectionClosed:
            pass
        finally:
            if stop_listening is not None:
                stop_listening()
            self._live.discard(connection)
            connection.queue.put_nowait(None)
            sender.cancel()

    def _answer(self, connection: _Connection, text: str | bytes, loop: asyncio.AbstractEventLoop,
                stop_listening: Any) -> Any:
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            connection.queue.put_nowait(_dumps({"error": "Malformed request", "method": "error",
                                                    "success": False, "time_in": _now_text(),
                                                    "time_out": _now_text()}))
            return stop_listening
        method = request.get("method")
        if method == "ping":
            connection.queue.put_nowait(_dumps({"method": "pong", "req_id": request.get("req_id"),
                                                    "time_in": _now_text(), "time_out": _now_text()}))
            return stop_listening
        params: dict[str, Any] = request["params"] if isinstance(request.get("params"), dict) else {}
        if method != "subscribe" or params.get("channel") != "executions" or stop_listening is not None:
            error = "Already subscribed" if stop_listening is not None else "Event(s) not found"
            connection.queue.put_nowait(_dumps({"error": error, "method": method, "success": False,
                                                    "time_in": _now_text(), "time_out": _now_text()}))
            return stop_listening
        refused = self.tokens.check(params.get("token"))
        if refused is not None:
            self.rejected += 1
            connection.queue.put_nowait(_dumps({"error": refused, "method": "subscribe", "success": False,
                                                    "time_in": _now_text(), "time_out": _now_text()}))
            return stop_listening
        self.subscriptions += 1
        connection.queue.put_nowait(_dumps({"method": "subscribe", "result": {
            "channel": "executions", "snapshot": True, "snap_orders": params.get("snap_orders", True),
            "snap_trades": params.get("snap_trades", False), "order_status": params.get("order_status", True),
            "ratecounter": params.get("ratecounter", False),
            **({"maxratecount": self.max_rate_count} if params.get("ratecounter") else {}),
            "warnings": ["cancel_reason is deprecated, use reason"]},
            "success": True, "time_in": _now_text(), "time_out": _now_text()}))

        if self.withhold_snapshots > 0:  # a scripted fault: acknowledged, heartbeats, and nothing else
            self.withhold_snapshots -= 1
            connection.subscribed = True
            return lambda: None

        def on_change(rows: Rows) -> None:  # called on the account's thread, under its lock
            loop.call_soon_threadsafe(self._update, connection, rows)

        rows, stop = self.account.snapshot_and_listen(on_change)
        connection.queue.put_nowait(connection.executions("snapshot", rows))
        connection.subscribed = True
        return stop

    def _update(self, connection: _Connection, rows: Rows) -> None:
        if connection not in self._live:
            return
        skip = 1 if self._gap_next else 0
        self._gap_next = False
        connection.queue.put_nowait(connection.executions("update", rows, skip))
        if self._slow_reader_next:
            self._slow_reader_next = False
            connection.queue.put_nowait(_SLOW)

    async def _send_loop(self, connection: _Connection) -> None:
        ws = connection.ws
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(connection.queue.get(), timeout=self.heartbeat_seconds / 4)
                except TimeoutError:
                    frame = ""
                if frame is None:
                    return
                now = time.monotonic()
                if now < connection.silent_until:
                    continue  # silence: this connection loses what it would have sent
                if frame is _SLOW:
                    await ws.close(code=1008, reason="slow reader")
                    return
                if frame:
                    await ws.send(frame)
                    connection.last_sent = now
                elif connection.subscribed and now - connection.last_sent >= self.heartbeat_seconds:
                    await ws.send('{"channel":"heartbeat"}')
                    connection.last_sent = now
        except ConnectionClosed:
            return


_SLOW = "\x00slow-reader"  # a marker in a connection's queue, never sent
