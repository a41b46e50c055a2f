"""Findings of the review of issue 17 (the Kraken WebSocket v2 `executions` stream), each reproduced against the
fake Kraken (REST through krakenex's real signatures, WebSocket v2 through `websockets`)."""

from __future__ import annotations

import logging
import time

import pytest

from exporter.demo.fake_kraken import QUERY_CLOSED, QUERY_OPEN, STARTER, WEBSOCKET
from exporter.sources.kraken_settle import DEFAULT_PACE
from exporter.sources.kraken_stream import MAX_MALFORMED_RUN
from tests.conftest import wait_for
from tests.stream_rig import StreamRig, canaries, fill_times

pytestmark = pytest.mark.integration


def test_the_websocket_token_never_reaches_the_logs_even_with_websockets_debug_logging(kraken_secret, caplog):
    caplog.set_level(logging.DEBUG)  # the root and `websockets.*` at DEBUG: websockets logs every frame it sends
    rig = StreamRig(kraken_secret)
    try:
        rig.account.place("XDGUSD", 13)
        rig.start()
        rig.server.disconnect()  # a second connection, a second token
        assert wait_for(lambda: rig.fake.tokens.issued >= 2 and rig.stream.live, timeout=20)
        tokens = list(rig.fake.tokens._issued)
        assert tokens
        text = caplog.text + "".join(str(r.args) for r in caplog.records)
        assert "subscribe" in text  # the frames were logged (with the token taken out)
        for token in tokens:
            for piece in (token[:12], token[-12:], token[16:28]):
                assert piece not in text, "a piece of the WebSocket token is in the logs"
    finally:
        rig.stop()


def test_a_key_without_query_closed_orders_gets_one_warning_naming_it_not_a_retry_loop(kraken_secret, caplog):
    caplog.set_level(logging.INFO)
    rig = StreamRig(kraken_secret, permissions=frozenset({QUERY_OPEN, WEBSOCKET}))
    try:
        a = rig.account.place("XDGUSD", 13)
        b = rig.account.place("XDGUSD", 10)
        rig.start()
        rig.server.refuse_tokens(1)  # away for a moment: A partly filled and canceled, B filled meanwhile
        rig.server.disconnect()
        rig.account.trade(a, 4)
        rig.account.cancel(a, reason="User requested")
        rig.account.fill(b)
        assert wait_for(lambda: rig.reconnects("subscribe_rejected") >= 1 and rig.stream.live, timeout=20)
        assert wait_for(lambda: not rig.stream.book.has_pending and not rig.stream.settler.busy, timeout=10), \
            rig.stream.book.pending_lookups()
        time.sleep(1.0)  # a retry loop (backoff up to 0.3 s here) would ask again within this
        denied = sum(rig.value("krakenbot_kraken_requests_total", endpoint=e, result="permission_denied") or 0
                     for e in ("ClosedOrders", "QueryOrders"))
        assert denied == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and QUERY_CLOSED in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        assert "2 order(s)" in warnings[0].getMessage()  # what could not be settled is said, not lost silently
        assert rig.stream.live and rig.health().open_orders_kraken == 0
        assert "Traceback" not in caplog.text
    finally:
        rig.stop()


def test_a_large_settle_after_a_gap_is_paced_within_a_starter_keys_rest_counter(kraken_secret):
    scale = 20.0  # time runs 20x: the fake's counter decays 20x faster, the stream's default pace is 20x shorter
    rig = StreamRig(kraken_secret, rest_counter=(STARTER[0], STARTER[1] * scale), rest_pace=DEFAULT_PACE / scale)
    try:
        txids = [rig.account.place("XDGUSD", 13) for _ in range(1500)]
        rig.start()
        rig.server.refuse_tokens(1)  # away for a moment: 1,500 orders end meanwhile, 100 of them partly filled
        rig.server.disconnect()
        for txid in txids[:100]:
            rig.account.trade(txid, 4)
        for txid in txids:
            rig.account.cancel(txid, reason="User requested")
        assert wait_for(lambda: rig.reconnects("subscribe_rejected") >= 1 and rig.stream.live, timeout=20)
        assert wait_for(lambda: rig.health().partial_fill_cancel_events_1d == 100, timeout=60), (
            rig.health().partial_fill_cancel_events_1d, rig.fake.rate_limited, rig.stream.reconnects, rig.fake.calls[-5:])
        assert rig.stream.live and rig.health().partial_fill_open_events_1d == 100
        assert rig.fake.rate_limited == 0  # Kraken never had to refuse a call: the settle did not burst
        assert rig.fake.calls.count("private/ClosedOrders") == 30  # one call per 50, each asked once
    finally:
        rig.stop()


class _OffsetClock:
    """Our clock `offset` seconds off Kraken's (the fake account's, which is the wall clock)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset


def test_our_clock_two_minutes_behind_krakens_still_counts_and_times_every_fill(kraken_secret):
    rig = StreamRig(kraken_secret, clock=_OffsetClock(-120.0))
    try:
        a = rig.account.place("XDGUSD", 13)  # open before we connect: its start comes from REST's opentm
        rig.start()
        b = rig.account.place("XDGUSD", 10)
        c = rig.account.place("XDGUSD", 8)
        rig.account.trade(c, 3)
        rig.account.fill(a)
        rig.account.fill(b)
        rig.account.cancel(c, reason="User requested")
        assert wait_for(lambda: rig.telemetries["XDGUSD"].reading().counts.fill_count == 2, timeout=10), \
            rig.telemetries["XDGUSD"].hook_errors
        errors = rig.telemetries["XDGUSD"].hook_errors
        assert not [kind for kind in errors if "future" in kind or kind.startswith("invalid")], errors
        health = rig.health()
        assert (health.partial_fill_open_events_1d, health.partial_fill_cancel_events_1d) == (1, 1)
        assert health.median_fill_seconds_1d == pytest.approx(fill_times(rig.account, [a, b])[0], abs=1e-5)
    finally:
        rig.stop()


def test_our_clock_five_minutes_ahead_of_krakens_still_finds_what_ended_during_a_gap(kraken_secret, caplog):
    caplog.set_level(logging.INFO)
    rig = StreamRig(kraken_secret, clock=_OffsetClock(300.0))
    try:
        rig.account.place("XDGUSD", 13)
        rig.start()  # no event yet: where the gap began is known only on our clock
        rig.server.refuse_tokens(1)
        rig.server.disconnect()
        f = rig.account.place("XDGUSD", 7)  # placed, partly filled and canceled in the gap: no snapshot lists it
        rig.account.trade(f, 2)
        rig.account.cancel(f, reason="Post only order")
        assert wait_for(lambda: rig.reconnects("subscribe_rejected") >= 1 and rig.stream.live, timeout=20)
        assert wait_for(lambda: rig.health().partial_fill_cancel_events_1d == 1, timeout=10), \
            rig.fake.calls
        assert len(canaries(caplog, f)) == 1
    finally:
        rig.stop()


def test_the_demo_served_from_the_stream_says_events_source_kraken_stream_in_api_status():
    from exporter.demo.run import Demo, DemoSettings
    from exporter.web.status import health_dict

    demo = Demo(DemoSettings(pairs=("XDGUSD",), limit=225, safety_ratio=0.2, speedup=600.0, seed=7, stream=True))
    try:
        demo.start()
        assert demo.stream is not None and wait_for(lambda: demo.stream.events_known, timeout=20)
        [reading] = demo.exporter.readings()
        block = health_dict(reading)
        assert block is not None and block["events_source"] == "kraken_stream"
        assert block["open_orders_internal"] is not None  # the simulated bot still tells its own counts
    finally:
        demo.stop()


def test_the_token_calls_rejected_key_series_exists_at_zero_before_any_call_so_the_first_rejection_pages(
        kraken_secret):
    # increase() cannot see a counter's first increment when its series appears at 1: OpenOrders' series are created
    # at 0 up front, and GetWebSocketsToken's must be too for KrakenBotKrakenKeyRejected to page as for OpenOrders
    rig = StreamRig(kraken_secret)
    try:
        for result in ("ok", "invalid_key", "permission_denied"):
            assert rig.value("krakenbot_kraken_requests_total", endpoint="GetWebSocketsToken", result=result) == 0.0
    finally:
        rig.stop()


def test_one_txid_kraken_does_not_know_does_not_block_the_other_lookups_in_its_query_orders_batch(kraken_secret):
    # Kraken answers QueryOrders with EOrder:Invalid order, for the whole call, when one txid is unknown to it: an
    # update for an order nobody knows (another subaccount's, a garbled id) must not hold the others' lookups forever
    rig = StreamRig(kraken_secret)
    try:
        a = rig.account.place("XDGUSD", 13, at=time.time() - 40.0)  # open before we connect
        rig.fake.set_open_orders({})  # OpenOrders does not tell A's opentm: only QueryOrders can
        rig.start()
        rig.server.publish([{"order_id": "OUNKNO-WNXXX-XXXXXX", "exec_type": "new", "order_status": "new",
                             "timestamp": "2026-01-01T00:00:00.000000Z"}])  # an order never seen: asked of REST
        rig.account.fill(a)  # A's fill waits for its start from QueryOrders, in a batch with the unknown txid
        assert wait_for(lambda: rig.telemetries["XDGUSD"].reading().counts.fill_count == 1, timeout=15), \
            (rig.stream.book.pending_lookups(), rig.fake.calls[-4:])
        assert rig.health().median_fill_seconds_1d == pytest.approx(fill_times(rig.account, [a])[0], abs=1e-5)
        assert wait_for(lambda: not rig.stream.book.has_pending and not rig.stream.settler.busy, timeout=10)
    finally:
        rig.stop()


def test_a_subscription_acknowledged_without_a_snapshot_is_dropped_after_the_silence_limit_not_waited_on_forever(
        kraken_secret):
    rig = StreamRig(kraken_secret, silence=1.0)
    try:
        rig.account.place("XDGUSD", 13)
        rig.server.withhold_snapshots = 1  # acknowledged, heartbeats every 0.1 s, never a snapshot
        rig.start(wait_live=False)
        assert wait_for(lambda: rig.stream.live, timeout=10), (rig.stream.state, rig.stream.reconnects)
        assert rig.reconnects("silence") == 1 and rig.health().open_orders_kraken == 1
    finally:
        rig.stop()


def test_a_token_refused_on_every_subscription_is_retried_with_backoff_not_a_storm(kraken_secret):
    rig = StreamRig(kraken_secret, max_backoff=60.0)
    try:
        rig.server.refuse_tokens(10**6)
        rig.start(wait_live=False)
        time.sleep(3.0)
        assert 1 <= rig.server.rejected <= 3, rig.server.rejected  # waits of 0.5-1 s, 1-2 s, 2-4 s
        assert rig.fake.tokens.issued == rig.server.rejected  # a fresh token for each try
    finally:
        rig.stop()


def test_malformed_frames_that_persist_between_heartbeats_still_drop_the_connection(kraken_secret):
    # heartbeats are not evidence that Kraken's executions messages can be read: a run of malformed frames with only
    # heartbeats between them persists, and the stream must resubscribe rather than tell a count it cannot follow
    rig = StreamRig(kraken_secret, heartbeat=0.03)
    try:
        rig.start()
        for _ in range(MAX_MALFORMED_RUN + 5):
            rig.server.garbage(1)
            time.sleep(0.05)  # a heartbeat between each two
            if rig.reconnects("malformed"):
                break
        assert rig.value("krakenbot_kraken_stream_messages_total", type="heartbeat") > 20
        assert rig.reconnects("malformed") == 1
        assert wait_for(lambda: rig.stream.live, timeout=10)
    finally:
        rig.stop()
