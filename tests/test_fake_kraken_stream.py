"""The fake Kraken's WebSocket v2 endpoint speaks the documented messages, checks tokens from its REST side (which
checks krakenex's real signatures), and binds 127.0.0.1 only."""

from __future__ import annotations

import json

import krakenex
import pytest
from websockets.sync.client import connect

from exporter.core.executions import parse_time
from exporter.demo.fake_kraken import FakeKraken
from tests.stream_rig import fake_kraken

pytestmark = pytest.mark.integration
KEY = "test-key-0001"


@pytest.fixture
def fake(kraken_secret):
    with fake_kraken(kraken_secret, 0.1) as (account, rest, stream):
        yield account, rest, stream


def token(rest: FakeKraken, secret: str, key: str = KEY) -> dict:
    api = krakenex.API(key, secret)
    api.uri = rest.url
    return api.query_private("GetWebSocketsToken")


def subscribe(ws, token_text: str) -> None:
    ws.send(json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": token_text,
                                                          "snap_orders": True, "snap_trades": False,
                                                          "order_status": True}}))


def test_a_token_comes_from_the_signed_rest_call_and_a_bad_signature_gets_none(fake, kraken_secret):
    _, rest, _ = fake
    reply = token(rest, kraken_secret)
    assert reply["error"] == [] and reply["result"]["expires"] == 900 and reply["result"]["token"]
    assert token(rest, kraken_secret, key="someone-else")["error"] == ["EAPI:Invalid key"]


def test_status_then_ack_then_a_snapshot_and_updates_in_sequence_then_heartbeats(fake, kraken_secret):
    account, rest, stream = fake
    first = account.place("XDGUSD", 13)
    assert stream.url.startswith("ws://127.0.0.1:") and stream.url.endswith("/v2")
    with connect(stream.url) as ws:
        status = json.loads(ws.recv(timeout=5))
        assert status["channel"] == "status" and status["data"][0]["system"] == "online"
        subscribe(ws, token(rest, kraken_secret)["result"]["token"])
        ack = json.loads(ws.recv(timeout=5))
        assert ack["method"] == "subscribe" and ack["success"] is True and ack["result"]["channel"] == "executions"
        snapshot = json.loads(ws.recv(timeout=5))
        assert (snapshot["channel"], snapshot["type"], snapshot["sequence"]) == ("executions", "snapshot", 1)
        assert [(r["order_id"], r["symbol"], r["order_qty"], r["order_status"]) for r in snapshot["data"]] == [
            (first, "DOGE/USD", 13.0, "new")]
        account.trade(first, 13)
        update = json.loads(ws.recv(timeout=5))
        assert update["sequence"] == 2
        assert [(r["exec_type"], r["order_status"]) for r in update["data"]] == [
            ("trade", "partially_filled"), ("filled", "filled")]  # Kraken's caution: the trade's status word
        assert parse_time(update["data"][1]["timestamp"]) == pytest.approx(account.order(first).closed_at, abs=1e-6)
        assert json.loads(ws.recv(timeout=5)) == {"channel": "heartbeat"}
        ws.send(json.dumps({"method": "ping", "req_id": 7}))
        assert json.loads(ws.recv(timeout=5))["method"] == "pong"


def test_a_token_not_handed_out_or_past_its_15_minutes_is_refused_on_subscribe(fake, kraken_secret):
    _, rest, stream = fake
    with connect(stream.url) as ws:
        ws.recv(timeout=5)
        subscribe(ws, "not-a-token")
        refused = json.loads(ws.recv(timeout=5))
        assert refused["success"] is False and refused["method"] == "subscribe" and refused["error"]
    issued = token(rest, kraken_secret)["result"]["token"]
    rest.tokens.expire_all()
    with connect(stream.url) as ws:
        ws.recv(timeout=5)
        subscribe(ws, issued)
        assert json.loads(ws.recv(timeout=5))["success"] is False
    assert stream.rejected == 2 and stream.subscriptions == 0


def test_a_gap_skips_one_sequence_number_and_garbage_is_sent_between_real_messages(fake, kraken_secret):
    account, rest, stream = fake
    with connect(stream.url) as ws:
        ws.recv(timeout=5)
        subscribe(ws, token(rest, kraken_secret)["result"]["token"])
        ws.recv(timeout=5), ws.recv(timeout=5)
        stream.gap()
        account.place("XDGUSD", 1)  # pending_new, then new: two updates
        assert [json.loads(ws.recv(timeout=5))["sequence"] for _ in range(2)] == [3, 4]
        stream.garbage(2)
        assert ws.recv(timeout=5) == "this is not JSON {"
        assert json.loads(ws.recv(timeout=5)) == ["an", "array"]
