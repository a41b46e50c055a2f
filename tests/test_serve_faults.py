"""The fault matrix of `serve` against the fake Kraken, through krakenex's real signing, unpatched.

Each fault is injected into the fake (which keeps speaking Kraken's real shapes), then the exporter `serve` builds
polls once: the fault is counted under its result, every pair is blind after that one poll (no block, a problem
that says why), and the next good reply makes them whole again. The log has no traceback. The last test runs the
real `serve` process through the faults and reads its stderr.
"""

import logging
import os
import subprocess
import sys

import pytest
import requests

from exporter.cli import build_serve
from exporter.config import Config
from exporter.demo import fake_kraken as fk
from exporter.demo.fake_kraken import FakeKraken, order_info
from exporter.sources.credentials import KrakenCredentials
from exporter.sources.kraken_api import MAX_ABANDONED_CALLS
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.integration

KEY = "test-key-0001"
PAIRS = ("XDGUSD", "XBTUSD")
TIMEOUT = 0.5
# (fault injected into the fake, the result it must be counted as)
FAULTS = [
    (fk.HTTP_500, "http_error"),
    ("http_502", "http_error"),
    ("http_503", "http_error"),
    ("http_504", "http_error"),
    (fk.SLOW, "timeout"),
    (fk.TRICKLE, "timeout"),
    (fk.TRUNCATED, "connection_error"),
    (fk.TRUNCATED_JSON, "invalid_json"),
    (fk.GARBAGE, "invalid_json"),
    (fk.EMPTY, "invalid_json"),
    (fk.WRONG_OPEN, "malformed_reply"),
    ("EAPI:Rate limit exceeded", "rate_limited"),
    ("EService:Unavailable", "service_unavailable"),
    ("EService:Busy", "service_busy"),
    (fk.STALE_NONCE, "invalid_nonce"),
    ("EAPI:Invalid key", "invalid_key"),
    ("EGeneral:Permission denied", "permission_denied"),
    ("EGeneral:Internal error", "kraken_error"),
]


@pytest.fixture
def fake(fake_kraken):
    # a trickled OpenOrders reply of the fixture's orders lasts minutes at this pace, but every byte comes well
    # within requests' own read timeout: only a deadline on the whole call can end it
    fake_kraken.trickle_seconds = TIMEOUT / 10
    return fake_kraken


def serve_config(url: str, **extra) -> Config:
    return Config(command="serve", pairs=PAIRS, kraken_url=url, kraken_timeout=TIMEOUT, kraken_poll_interval=0.05,
                  **extra)


@pytest.fixture
def serve(fake, kraken_secret):
    exporter, poller = build_serve(serve_config(fake.url), KrakenCredentials(KEY, kraken_secret))
    return exporter, poller


def counted(exporter, result):
    return exporter.registry.get_sample_value(
        "krakenbot_kraken_requests_total", {"endpoint": "OpenOrders", "result": result})


def assert_all_blind(exporter):
    readings = exporter.readings()
    assert [r.pair for r in readings] == list(PAIRS)
    for r in readings:
        assert r.blind and r.health is None, r
        assert "no fresh Kraken open-order count" in r.problem
        assert exporter.registry.get_sample_value("krakenbot_pair_blind", {"pair": r.pair}) == 1
        assert exporter.registry.get_sample_value("krakenbot_kraken_data_available", {"pair": r.pair}) == 0
    assert exporter.registry.get_sample_value("krakenbot_kraken_up") == 0


def assert_all_seen(exporter, counts=(3, 2)):
    readings = exporter.readings()
    assert [r.blind for r in readings] == [False, False]
    assert [r.health.open_orders_kraken for r in readings] == list(counts)
    for r in readings:
        assert exporter.registry.get_sample_value("krakenbot_pair_blind", {"pair": r.pair}) == 0
        assert exporter.registry.get_sample_value("krakenbot_kraken_data_available", {"pair": r.pair}) == 1
    assert exporter.registry.get_sample_value("krakenbot_kraken_up") == 1


def assert_no_traceback(caplog):
    assert not [r for r in caplog.records if r.exc_info], "a log record carries a traceback"
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("fault", "result"), FAULTS, ids=[f for f, _ in FAULTS])
def test_each_fault_is_counted_blinds_every_pair_within_one_poll_and_heals_on_the_next_good_reply(
    fake, serve, caplog, fault, result
):
    exporter, poller = serve
    caplog.set_level(logging.DEBUG)
    assert poller.poll_once() == "ok"
    assert_all_seen(exporter)
    fake.fail(fault)
    assert poller.poll_once() == result
    assert counted(exporter, result) == 1
    assert_all_blind(exporter)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"({result}:" in warnings[0] and "blind" in warnings[0], warnings
    fake.heal()
    assert poller.poll_once() == "ok"
    assert counted(exporter, "ok") == 2
    assert_all_seen(exporter)
    assert_no_traceback(caplog)


def test_a_trickling_reply_is_abandoned_at_the_deadline_and_the_next_call_uses_a_fresh_connection(fake, serve):
    exporter, poller = serve
    fake.fail(fk.TRICKLE, times=1)
    assert poller.poll_once() == "timeout"
    assert poller.client.abandoned_calls == 1  # still trickling in the background, nobody waits for it
    assert poller.poll_once() == "ok"
    assert_all_seen(exporter)


def test_calls_stuck_past_their_deadline_are_bounded(fake, serve):
    exporter, poller = serve
    fake.fail(fk.TRICKLE)
    results = [poller.poll_once() for _ in range(MAX_ABANDONED_CALLS + 2)]
    assert results == ["timeout"] * (MAX_ABANDONED_CALLS + 2)
    assert poller.client.abandoned_calls == MAX_ABANDONED_CALLS
    assert fake.calls.count("private/OpenOrders") == MAX_ABANDONED_CALLS  # the last two never started
    assert_all_blind(exporter)


def test_a_key_revoked_mid_run_blinds_the_pairs_says_why_and_heals_when_the_key_is_back(fake, serve, caplog):
    exporter, poller = serve
    caplog.set_level(logging.INFO)
    assert poller.poll_once() == "ok"
    fake.revoke_key()
    assert [poller.poll_once() for _ in range(3)] == ["invalid_key"] * 3
    assert counted(exporter, "invalid_key") == 3
    assert_all_blind(exporter)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "key was deleted" in warnings[0] and "blind" in warnings[0]
    fake.restore_key(KEY)
    assert poller.poll_once() == "ok"
    assert_all_seen(exporter)
    assert_no_traceback(caplog)


def test_a_higher_nonce_from_another_client_is_counted_until_ours_passes_it(fake, serve, caplog):
    exporter, poller = serve
    caplog.set_level(logging.INFO)
    assert poller.poll_once() == "ok"
    fake.advance_nonce(milliseconds=300)
    assert poller.poll_once() == "invalid_nonce"
    assert_all_blind(exporter)
    assert any("its own key" in r.getMessage() for r in caplog.records)
    assert wait_for(lambda: poller.poll_once() == "ok", timeout=10, step=0.1)
    assert counted(exporter, "invalid_nonce") >= 1
    assert_all_seen(exporter)
    assert_no_traceback(caplog)


def test_a_rate_limit_storm_backs_off_to_the_cap_counts_every_refusal_and_recovers(fake, serve, caplog):
    exporter, poller = serve
    fake.fail("EAPI:Rate limit exceeded", times=30)
    results = [poller.poll_once() for _ in range(30)]
    assert results == ["rate_limited"] * 30
    assert counted(exporter, "rate_limited") == 30
    assert poller.backoff == poller.max_backoff
    assert exporter.registry.get_sample_value("krakenbot_kraken_backoff_seconds") == poller.max_backoff
    assert_all_blind(exporter)
    assert poller.poll_once() == "ok"
    assert poller.backoff == 0
    assert_all_seen(exporter)
    assert_no_traceback(caplog)


def test_kraken_down_at_start_leaves_the_pairs_blind_and_they_see_once_it_answers(kraken_secret, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    exporter, poller = build_serve(serve_config(f"http://127.0.0.1:{port}"), KrakenCredentials(KEY, kraken_secret))
    assert_no_poll_yet = [r.problem for r in exporter.readings()]
    assert all("no fresh Kraken" in p for p in assert_no_poll_yet)
    assert [r.blind for r in exporter.readings()] == [True, True]
    assert poller.poll_once() == "connection_error"
    assert_all_blind(exporter)
    fake = FakeKraken(KEY, kraken_secret, open_orders={
        "OAAAAA-AAAAA-AAAAA1": order_info("XDGUSD"), "OBBBBB-BBBBB-BBBBB1": order_info("XBTUSD"),
    })
    fake.start(port)
    try:
        assert poller.poll_once() == "ok"
        assert_all_seen(exporter, counts=(1, 1))
    finally:
        fake.stop()
    assert any("AssetPairs" in r.getMessage() for r in caplog.records)
    assert_no_traceback(caplog)


# ---- the real process --------------------------------------------------------------------------

PROCESS_FAULTS = [("http_503", "http_error"), (fk.TRICKLE, "timeout"), (fk.TRUNCATED, "connection_error"),
                  (fk.GARBAGE, "invalid_json"), (fk.EMPTY, "invalid_json"), (fk.WRONG_OPEN, "malformed_reply"),
                  ("EAPI:Rate limit exceeded", "rate_limited"), ("EAPI:Invalid key", "invalid_key")]


def test_the_serve_process_survives_the_fault_matrix_with_one_warning_per_fault_and_no_traceback(fake, kraken_secret):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
    env.update({"KRAKEN_API_URL": fake.url, "KRAKEN_API_KEY": KEY, "KRAKEN_API_SECRET": kraken_secret})
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve", "--pair", ",".join(PAIRS), "--port", str(port),
         "--kraken-poll-interval", "0.2", "--kraken-timeout", str(TIMEOUT), "--kraken-stream", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def metric(result):
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        line = f'krakenbot_kraken_requests_total{{endpoint="OpenOrders",result="{result}"}} '
        return next(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line))

    def status():
        return requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).json()

    try:
        assert "listening on" in proc.stdout.readline()
        assert wait_for(lambda: status()["capacity_fill_health"] is not None, timeout=15)
        for fault, result in PROCESS_FAULTS:
            before = metric(result)
            fake.fail(fault)
            assert wait_for(lambda: metric(result) > before, timeout=15), fault  # noqa: B023
            body = status()
            assert body["capacity_fill_health_by_pair"] == {"XDGUSD": None, "XBTUSD": None}, fault
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for pair in PAIRS:
                assert f'krakenbot_pair_blind{{pair="{pair}"}} 1.0' in text, fault
            assert set(body["problems"]) == set(PAIRS)
            ok = metric("ok")
            fake.heal()
            assert wait_for(lambda: metric("ok") > ok, timeout=15), fault  # noqa: B023
            assert status()["capacity_fill_health"]["open_orders_kraken"] == 3
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert "Traceback" not in err, err
    for _, result in PROCESS_FAULTS:
        assert f"Kraken OpenOrders failed ({result}:" in err
    assert err.count("Kraken OpenOrders answers again") == len(PROCESS_FAULTS)
    assert kraken_secret not in out + err
