"""The stream source against the fake Kraken (REST through krakenex's real signatures, WebSocket v2 through
`websockets`), and its fault matrix: each fault counted under its reason, the stream live again, nothing lost and
nothing counted twice. Expected numbers come from the script and the fake account's own order records."""

from __future__ import annotations

import logging
import random
import time

import pytest

from exporter.demo.fake_kraken import QUERY_CLOSED, QUERY_OPEN, order_info
from exporter.sources.kraken_stream import MAX_BACKOFF, backoff_delay
from tests.conftest import wait_for
from tests.stream_rig import StreamRig, canaries, fill_times

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(kraken_secret):
    rig = StreamRig(kraken_secret)
    yield rig
    rig.stop()


def test_the_whole_spec_arrives_live_partial_open_partial_cancel_with_reason_fill_times_and_counts(rig, caplog):
    caplog.set_level(logging.INFO)
    a = rig.account.place("XDGUSD", 13)
    b = rig.account.place("XBTUSD", "0.01")
    rig.start()
    assert rig.health("XDGUSD").open_orders_kraken == 1 and rig.health("XBTUSD").open_orders_kraken == 1
    c = rig.account.place("XDGUSD", 10)
    rig.account.trade(a, 4)
    assert wait_for(lambda: rig.health().partial_fill_open_events_1d == 1)
    assert wait_for(lambda: rig.health().open_orders_kraken == 2)  # a changed count arrives within 50 ms
    rig.account.cancel(a, reason="User requested")
    rig.account.fill(c)
    assert wait_for(lambda: rig.health().partial_fill_cancel_events_1d == 1 and rig.health().open_orders_kraken == 0)
    assert wait_for(lambda: rig.health().median_fill_seconds_1d is not None)
    assert rig.health().median_fill_seconds_1d == pytest.approx(fill_times(rig.account, [c])[0], abs=1e-5)
    [canary] = canaries(caplog, a)
    assert 'reason="User requested"' in canary.getMessage() and "vol_exec=4.00000000" in canary.getMessage()
    assert rig.value("krakenbot_kraken_stream_up") == 1
    assert rig.value("krakenbot_kraken_open_orders_reported", pair="XBTUSD", source="stream") == 1
    assert rig.value("krakenbot_kraken_stream_messages_total", type="snapshot") == 1
    assert rig.value("krakenbot_kraken_stream_messages_total", type="update") >= 5
    assert rig.value("krakenbot_kraken_stream_last_message_age_seconds") < 5
    assert rig.account.order(b).status == "open"


def test_serve_reads_as_an_embedded_pair_with_events_from_the_stream(rig):
    rig.start()
    a = rig.account.place("XDGUSD", 13)
    rig.account.trade(a, 1)
    assert wait_for(lambda: rig.health().partial_fill_open_events_1d == 1)
    reading = next(r for r in rig.exporter.readings() if r.pair == "XDGUSD")
    assert reading.events_source == "kraken_stream" and not reading.blind
    assert reading.health.partial_fill_open_events_1d == 1
    assert "partial_fill_open_pressure" in reading.health.blocked_risk_hint
    assert reading.unknown_fields == ("open_orders_internal", "open_orders_drift", "orders_per_slot_estimate",
                                      "estimated_slots_remaining")


def test_while_the_stream_is_live_the_poller_only_cross_checks_and_warns_when_the_counts_disagree_past_one_poll(
        rig, caplog):
    caplog.set_level(logging.INFO)
    rig.account.place("XDGUSD", 13)
    rig.start()
    assert rig.poller.poll_once() == "ok"
    assert rig.value("krakenbot_kraken_open_orders_reported", pair="XDGUSD", source="rest") == 1
    assert rig.poller.run_once() == "skipped"  # the stream is live: OpenOrders only every 4 intervals
    rest = {f"OREST{i}-AAAAA-AAAAAA": order_info("XDGUSD") for i in range(3)}
    rig.fake.set_open_orders(rest)  # REST now says 3; the stream still says 1
    assert rig.poller.poll_once() == "ok"
    assert wait_for(lambda: rig.value("krakenbot_kraken_open_orders_reported", pair="XDGUSD", source="rest") == 3)
    assert not [r for r in caplog.records if "disagree" in r.getMessage()]  # one poll: maybe an order in between
    rig.poller.poll_once()
    assert wait_for(lambda: [r for r in caplog.records if "disagree" in r.getMessage()])
    [warning] = [r for r in caplog.records if "disagree" in r.getMessage()]
    assert "XDGUSD" in warning.getMessage() and "stream says 1" in warning.getMessage() \
        and "OpenOrders says 3" in warning.getMessage()
    assert rig.health().open_orders_kraken == 1  # REST did not overwrite the live stream's count


def test_a_pair_is_blind_only_when_neither_the_stream_nor_open_orders_has_told_its_count(kraken_secret):
    rig = StreamRig(kraken_secret, stale_after=1.0)  # --kraken-stale-after: one limit for both
    try:
        rig.account.place("XDGUSD", 13)
        rig.start()
        blind = lambda: next(r for r in rig.exporter.readings() if r.pair == "XDGUSD").blind  # noqa: E731
        rig.fake.fail("EService:Unavailable")  # OpenOrders fails: the live stream keeps the count
        assert rig.poller.poll_once() == "service_unavailable"
        time.sleep(1.5)
        assert not blind() and rig.health().open_orders_kraken == 1
        rig.server.refuse_tokens(10**6)  # now the stream goes too
        rig.server.disconnect()
        assert wait_for(blind, timeout=10)
        rig.fake.heal()  # OpenOrders answers again, the stream is still refused: OpenOrders alone keeps it seen
        assert rig.poller.poll_once() == "ok"
        assert not blind() and rig.health().open_orders_kraken == 1 and not rig.stream.live
    finally:
        rig.stop()


def test_a_key_without_the_websocket_permission_gets_one_warning_and_serve_goes_on_with_open_orders(
        kraken_secret, caplog):
    caplog.set_level(logging.INFO)
    rig = StreamRig(kraken_secret, permissions=frozenset({QUERY_OPEN, QUERY_CLOSED}), max_backoff=0.05)
    try:
        rig.account.place("XDGUSD", 13)
        rig.start(wait_live=False)
        assert rig.stream.wait_stopped(10) and rig.stream.state == "off"
        time.sleep(0.3)  # a retry loop would ask again within this
        assert rig.value("krakenbot_kraken_requests_total", endpoint="GetWebSocketsToken",
                         result="permission_denied") == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "WebSocket interface" in r.getMessage()]
        assert len(warnings) == 1 and "stays off" in warnings[0].getMessage()
        assert rig.value("krakenbot_kraken_stream_up") == 0
        assert rig.poller.poll_once() == "ok"  # REST only, as before the stream
        reading = next(r for r in rig.exporter.readings() if r.pair == "XDGUSD")
        assert reading.health.open_orders_kraken == 1 and reading.events_source is None
        assert "partial_fill_open_events_1d" in reading.unknown_fields
    finally:
        rig.stop()


def test_a_rejected_key_is_counted_as_for_open_orders_and_retried_without_a_storm(kraken_secret):
    rig = StreamRig(kraken_secret, max_backoff=MAX_BACKOFF)
    try:
        rig.fake.revoke_key()
        rig.start(wait_live=False)
        time.sleep(3.0)
        tries = rig.value("krakenbot_kraken_requests_total", endpoint="GetWebSocketsToken", result="invalid_key")
        assert 1 <= tries <= 3, tries  # waits of 0.5-1 s, 1-2 s, 2-4 s: at most 3 tries in 3 s
        assert rig.reconnects("token_error") == tries and not rig.stream.live
    finally:
        rig.stop()


def test_the_backoff_doubles_with_jitter_and_never_waits_more_than_60_seconds():
    rng = random.Random(3)
    waits = [[backoff_delay(attempt, rng) for _ in range(200)] for attempt in range(12)]
    for attempt, samples in enumerate(waits):
        top = min(MAX_BACKOFF, 2.0 ** attempt)
        assert top / 2 <= min(samples) and max(samples) <= top, attempt
        assert max(samples) - min(samples) > top / 4  # jitter: reconnecting clients do not move in step
    assert MAX_BACKOFF == 60.0


# ---- the fault matrix ------------------------------------------------------------------------------------------

def inject(rig: StreamRig, fault: str) -> None:
    server, fake = rig.server, rig.fake
    if fault == "disconnect":
        server.disconnect()
    elif fault == "expired_token":
        fake.tokens.lifetime = 0.0  # every token is past its 15 minutes when it reaches the subscription
        server.disconnect()
    elif fault == "invalid_token":
        server.refuse_tokens(2)
        server.disconnect()
    elif fault == "garbage":
        server.garbage(12)
    elif fault == "sequence_gap":
        server.gap()
    elif fault == "silence":
        server.silence(3.0)
    elif fault == "slow_reader":
        server.slow_reader()
    elif fault == "invalid_key":
        fake.revoke_key()
        server.disconnect()


def heal(rig: StreamRig, fault: str) -> None:
    if fault == "expired_token":
        rig.fake.tokens.lifetime = 900.0
    elif fault == "invalid_key":
        rig.fake.restore_key("test-key-0001")


# fault -> the reconnect reason it must be counted under (None: the connection stays up)
FAULTS = {
    "disconnect": "disconnect",
    "expired_token": "subscribe_rejected",
    "invalid_token": "subscribe_rejected",
    "garbage": None,
    "sequence_gap": "sequence_gap",
    "silence": "silence",
    "slow_reader": "disconnect",
    "invalid_key": "token_error",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_stream_fault_is_counted_recovers_and_loses_or_doubles_nothing(kraken_secret, caplog, fault):
    caplog.set_level(logging.INFO)
    rig = StreamRig(kraken_secret, silence=1.5 if fault == "silence" else 5.0)
    try:
        acct = rig.account
        a, b, c, d = (acct.place("XDGUSD", q) for q in (13, 10, 8, 5))
        rig.start()
        acct.trade(a, 4)  # A partly filled while the stream watches
        assert wait_for(lambda: rig.health().partial_fill_open_events_1d == 1)
        inject(rig, fault)
        # while the fault lasts: B partly filled then canceled, C filled, E placed and partly filled, F placed, partly
        # filled and canceled (no snapshot ever lists it), G placed and filled
        acct.trade(b, 3)
        acct.cancel(b, reason="Order replaced")
        acct.fill(c)
        e = acct.place("XDGUSD", 6)
        acct.trade(e, 1)
        f = acct.place("XDGUSD", 7)
        acct.trade(f, 2)
        acct.cancel(f, reason="Post only order")
        g = acct.place("XDGUSD", 9, at=time.time() - 30.0)
        acct.fill(g)
        time.sleep(0.5)
        heal(rig, fault)
        reason = FAULTS[fault]
        if reason is not None:
            assert wait_for(lambda: rig.reconnects(reason) >= 1, timeout=20), rig.stream.reconnects
        assert wait_for(rig.settled, timeout=30), (rig.stream.reconnects, rig.stream.book.pending_lookups())
        # after it: A canceled with its fill, D and E filled
        acct.cancel(a, reason="User requested")
        acct.fill(d)
        acct.fill(e)
        assert wait_for(lambda: rig.settled() and rig.health().open_orders_kraken == 0, timeout=20)
        health = rig.health()
        assert (health.partial_fill_open_events_1d, health.partial_fill_cancel_events_1d) == (4, 3)  # A B E F; A B F
        assert [len(canaries(caplog, txid)) for txid in (a, b, c, d, e, f, g)] == [1, 1, 0, 0, 0, 1, 0]
        assert 'reason="Order replaced"' in canaries(caplog, b)[0].getMessage()
        assert 'reason="Post only order"' in canaries(caplog, f)[0].getMessage()
        counts = rig.telemetries["XDGUSD"].reading().counts
        assert counts.fill_count == 4 and counts.partial_open_total == 4 and counts.partial_cancel_total == 3
        expected_median, expected_p95 = fill_times(acct, [c, d, e, g])
        assert health.median_fill_seconds_1d == pytest.approx(expected_median, abs=1e-5)
        assert health.p95_fill_seconds_1d == pytest.approx(expected_p95, abs=1e-5)
        if fault == "garbage":
            assert rig.value("krakenbot_kraken_stream_messages_total", type="malformed") == 6
            assert rig.value("krakenbot_kraken_stream_bad_rows_total", reason="unknown_exec_type") == 2
            assert rig.value("krakenbot_kraken_stream_bad_rows_total", reason="unknown_symbol") == 2
            assert rig.value("krakenbot_kraken_stream_bad_rows_total", reason="missing_order_id") == 2
            assert sum(rig.stream.reconnects.values()) == 0  # garbage alone is no reason to drop the connection
        assert "Traceback" not in caplog.text
    finally:
        rig.stop()
