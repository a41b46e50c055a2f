"""The frames of Kraken's WebSocket v2 as the stream client meets them: what each one is, and whether the
`executions` sequence holds. Pure: the client reads text off the socket and asks these.

Shapes (Kraken's documentation; see docs/modes.md, "What Kraken's documentation says", for the sources):

    {"channel": "status", "type": "update", "data": [{"system": "online", "api_version": "v2", ...}]}
    {"method": "subscribe", "success": true, "result": {"channel": "executions", ...}, "time_in": ..., "time_out": ...}
    {"method": "subscribe", "success": false, "error": "...", "time_in": ..., "time_out": ...}
    {"channel": "executions", "type": "snapshot" | "update", "data": [...], "sequence": 1}
    {"channel": "heartbeat"}
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

# `krakenbot_kraken_stream_messages_total{type}`, created up front.
FRAME_KINDS = ("snapshot", "update", "heartbeat", "status", "subscribed", "rejected", "pong", "other", "malformed")


class Frame(NamedTuple):
    kind: str  # one of FRAME_KINDS
    rows: Any = None  # executions: the `data` list
    sequence: int | None = None  # executions: the `sequence` field
    error: str | None = None  # rejected: Kraken's error text; malformed: what is wrong
    detail: Any = None  # status: the status object; subscribed: the ack's `result`


HEARTBEAT = Frame("heartbeat")


NOT_JSON = Frame("malformed", error="not JSON")
loads = orjson.loads  # (orjson: a third of json's time, and the same answers)


def read_frame(text: str | bytes) -> Frame:
    """What one text frame is. Never raises: anything unexpected is `malformed` (with why) or `other`."""
    try:
        message = loads(text)
    except (ValueError, TypeError):
        return NOT_JSON
    return frame_of(message)


def frame_of(message: Any) -> Frame:
    """What one parsed message is (`read_frame` after the JSON)."""
    if type(message) is not dict:
        return Frame("malformed", error="not a JSON object")
    channel = message.get("channel")
    if channel == "heartbeat":
        return HEARTBEAT
    if channel == "executions":
        kind, data, sequence = message.get("type"), message.get("data"), message.get("sequence")
        if kind not in ("snapshot", "update") or type(data) is not list:
            return Frame("malformed", error="executions message without type snapshot/update and a data list")
        if sequence is not None and (type(sequence) is not int or sequence < 0):
            return Frame("malformed", error="sequence is not a non-negative integer")
        return Frame(kind, data, sequence)
    if channel == "status":
        data = message.get("data")
        return Frame("status", detail=data[0] if type(data) is list and data and type(data[0]) is dict else None)
    method = message.get("method")
    if method == "subscribe":
        if message.get("success") is True:
            return Frame("subscribed", detail=message.get("result"))
        error = message.get("error")
        return Frame("rejected", error=error if type(error) is str else "subscribe failed without an error text")
    if method == "pong":
        return Frame("pong")
    return Frame("other")


class SequenceCheck:
    """The `executions` sequence of one connection: the snapshot sets it, each update must be the next number.

    `check` says `ok`, `duplicate` (a number already seen: skip the message), or `gap` (a number skipped, or an
    update before any snapshot: reconnect, since something was lost). A message without `sequence` is `ok`.
    """

    def __init__(self) -> None:
        self.last: int | None = None
        self.snapshot_seen = False

    def check(self, frame: Frame) -> str:
        sequence = frame.sequence
        if frame.kind == "snapshot":
            self.snapshot_seen = True
            self.last = sequence
            return "ok"
        if not self.snapshot_seen:
            return "gap"
        if sequence is None or self.last is None:
            return "ok"
        if sequence <= self.last:
            return "duplicate"
        if sequence != self.last + 1:
            return "gap"
        self.last = sequence
        return "ok"
