"""The polled Kraken source through krakenex's real signing against the local fake Kraken."""

import logging
import os
import stat

import pytest
import requests
from prometheus_client import generate_latest

from exporter.core.pairs import PairError
from exporter.demo.fake_kraken import GARBAGE, HTTP_500, SLOW, STALE_NONCE
from exporter.sources.credentials import CredentialsError, KrakenCredentials
from exporter.sources.kraken_api import READ_ONLY_PRIVATE, READ_ONLY_PUBLIC, ReadOnlyKraken, ReadOnlyViolation
from exporter.sources.kraken_poller import KrakenOpenOrdersPoller, KrakenSourceMetrics, resolve_pairs
from exporter.web.app import create_app, start_server
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fake_kraken, kraken_secret):
    return ReadOnlyKraken(KrakenCredentials("test-key-0001", kraken_secret), fake_kraken.url, timeout=0.5)


@pytest.fixture
def telemetry(exporter):
    t = exporter.add_pair("XDGUSD", kraken_stale_after=60)
    t.set_internal_counts(active_orders=2, recovery_orders=0, slot_count=1)
    return t


@pytest.fixture
def poller(client, telemetry, registry):
    return KrakenOpenOrdersPoller(client, [telemetry], KrakenSourceMetrics(registry), interval=0.05, max_backoff=0.4)


def requests_total(registry, result):
    return registry.get_sample_value("krakenbot_kraken_requests_total", {"endpoint": "OpenOrders", "result": result})


def test_kraken_count_is_used_first_through_the_real_http_path(poller, telemetry, registry):
    assert poller.poll_once() == "ok"
    snap = telemetry.snapshot()
    assert (snap.open_orders_source, snap.open_orders_kraken, snap.open_orders_drift) == ("kraken", 3, 1)
    assert requests_total(registry, "ok") == 1
    assert registry.get_sample_value("krakenbot_kraken_up") == 1


@pytest.mark.parametrize("configured", ["DOGE/USD", "DOGEUSD", "XDG/USD", "XDGUSD", "xdgusd"])
def test_pairs_resolve_from_asset_pairs_and_filter_three_pairs(client, exporter, registry, configured):
    names = resolve_pairs(client, [configured, "BTC/USD", "ETHUSD"])
    telemetries = []
    for pair in (configured, "BTC/USD", "ETHUSD"):
        t = exporter.add_pair(pair)
        t.set_pair_names(names[pair])
        telemetries.append(t)
    KrakenOpenOrdersPoller(client, telemetries, KrakenSourceMetrics(registry)).poll_once()
    assert [t.pair for t in telemetries] == ["XDGUSD", "XBTUSD", "ETHUSD"]
    assert [t.snapshot().open_orders_kraken for t in telemetries] == [3, 2, 1]


def test_a_pair_kraken_does_not_know_is_a_clear_error(client):
    with pytest.raises(PairError, match="NOPEUSD"):
        resolve_pairs(client, ["NOPEUSD"])


@pytest.mark.parametrize(
    ("mode", "result"),
    [
        (HTTP_500, "http_error"),
        (SLOW, "timeout"),
        (GARBAGE, "invalid_json"),
        (STALE_NONCE, "invalid_nonce"),
        ("EAPI:Rate limit exceeded", "rate_limited"),
        ("EService:Unavailable", "service_unavailable"),
        ("EService:Busy", "service_busy"),
        ("EAPI:Invalid nonce", "invalid_nonce"),
        ("EAPI:Invalid key", "invalid_key"),
        ("EGeneral:Permission denied", "permission_denied"),
        ("EGeneral:Internal error", "kraken_error"),
    ],
)
def test_each_failure_falls_back_within_one_poll_counts_its_kind_and_recovers(
    fake_kraken, poller, telemetry, registry, mode, result
):
    assert poller.poll_once() == "ok"
    fake_kraken.fail(mode)
    assert poller.poll_once() == result
    snap = telemetry.snapshot()
    assert snap.open_orders_source == "internal_fallback" and snap.open_orders_kraken is None
    assert snap.open_orders_current == 2
    assert requests_total(registry, result) == 1
    assert registry.get_sample_value("krakenbot_kraken_up") == 0
    fake_kraken.heal()
    assert poller.poll_once() == "ok"
    assert telemetry.snapshot().open_orders_source == "kraken"


def test_connection_refused_is_counted_and_survived(telemetry, registry, kraken_secret):
    from tests.conftest import free_port

    dead = ReadOnlyKraken(KrakenCredentials("k", kraken_secret), f"http://127.0.0.1:{free_port()}", timeout=0.5)
    poller = KrakenOpenOrdersPoller(dead, [telemetry], KrakenSourceMetrics(registry))
    assert poller.poll_once() == "connection_error"
    assert telemetry.snapshot().open_orders_source == "internal_fallback"


def test_a_bad_signature_is_counted_as_an_auth_error(fake_kraken, telemetry, registry):
    import base64

    wrong = ReadOnlyKraken(KrakenCredentials("test-key-0001", base64.b64encode(b"w" * 64).decode()), fake_kraken.url)
    poller = KrakenOpenOrdersPoller(wrong, [telemetry], KrakenSourceMetrics(registry))
    assert poller.poll_once() == "invalid_key"
    assert fake_kraken.rejections == ["EAPI:Invalid key"]


def test_permission_errors_name_the_missing_key_permission(fake_kraken, poller, caplog):
    fake_kraken.fail("EGeneral:Permission denied")
    with caplog.at_level(logging.WARNING):
        poller.poll_once()
    assert any("Query Open Orders & Trades" in r.getMessage() for r in caplog.records)


def test_rate_limits_back_off_exponentially_up_to_a_cap(fake_kraken, poller, registry):
    fake_kraken.fail("EAPI:Rate limit exceeded")
    delays = []
    for _ in range(5):
        poller.poll_once()
        delays.append(poller.backoff)
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.4]
    assert registry.get_sample_value("krakenbot_kraken_backoff_seconds") == 0.4
    fake_kraken.heal()
    poller.poll_once()
    assert poller.backoff == 0


def test_stale_data_falls_back_when_the_poller_stops_answering(poller, telemetry, clock):
    poller.poll_once()
    clock.advance(61)
    assert telemetry.snapshot().open_orders_source == "internal_fallback"


def test_background_poller_switches_to_fallback_and_back_on_an_outage(fake_kraken, poller, telemetry, exporter):
    server = start_server(create_app(exporter))
    poller.start()
    try:
        def status():
            return requests.get(f"{server.url}/api/status", timeout=5).json()["capacity_fill_health"]

        def metric(name):
            text = requests.get(f"{server.url}/metrics", timeout=5).text
            return [line for line in text.splitlines() if line.startswith(name + "{")]

        assert wait_for(lambda: status()["open_orders_source"] == "kraken", timeout=10)
        assert status()["open_orders_drift"] == 1
        assert metric("krakenbot_open_orders_drift") == ['krakenbot_open_orders_drift{pair="XDGUSD"} 1.0']
        fake_kraken.fail("EService:Unavailable")
        assert wait_for(lambda: status()["open_orders_source"] == "internal_fallback", timeout=10)
        assert status()["open_orders_kraken"] is None and status()["open_orders_drift"] is None
        assert metric("krakenbot_kraken_data_available") == ['krakenbot_kraken_data_available{pair="XDGUSD"} 0.0']
        assert metric("krakenbot_open_orders_drift") == []
        fake_kraken.heal()
        assert wait_for(lambda: status()["open_orders_source"] == "kraken", timeout=10)
        assert metric("krakenbot_kraken_data_available") == ['krakenbot_kraken_data_available{pair="XDGUSD"} 1.0']
    finally:
        poller.stop()
        server.stop()


def test_only_read_endpoints_are_ever_called(fake_kraken, client, poller):
    resolve_pairs(client, ["XDGUSD"])
    for _ in range(3):
        poller.poll_once()
    with pytest.raises(ReadOnlyViolation):
        client.private("AddOrder", {"pair": "XDGUSD"})
    with pytest.raises(ReadOnlyViolation):
        client.private("CancelAll")
    allowed = {f"public/{m}" for m in READ_ONLY_PUBLIC} | {f"private/{m}" for m in READ_ONLY_PRIVATE}
    assert fake_kraken.calls and set(fake_kraken.calls) <= allowed


def test_the_secret_never_appears_in_logs_metrics_or_status(fake_kraken, poller, exporter, registry, kraken_secret, caplog):
    with caplog.at_level(logging.DEBUG):
        poller.poll_once()
        fake_kraken.fail("EAPI:Invalid key")
        poller.poll_once()
        fake_kraken.fail(HTTP_500)
        poller.poll_once()
    server = start_server(create_app(exporter))
    try:
        served = requests.get(f"{server.url}/metrics", timeout=5).text + requests.get(f"{server.url}/api/status", timeout=5).text
    finally:
        server.stop()
    everything = caplog.text + served + generate_latest(registry).decode() + repr(poller.client)
    for secret in (kraken_secret, "test-key-0001"):
        assert secret not in everything


def test_credentials_mask_themselves(kraken_secret):
    creds = KrakenCredentials("ABCDEFGHIJKLMNOP", kraken_secret)
    assert kraken_secret not in repr(creds) and "ABCDEFGHIJKLMNOP" not in str(creds)


def test_a_key_file_readable_by_others_is_refused(tmp_path, kraken_secret):
    path = tmp_path / "kraken.key"
    path.write_text(f"key-1\n{kraken_secret}\n")
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError, match="chmod 600"):
        KrakenCredentials.from_file(str(path))
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert KrakenCredentials.from_file(str(path)).key == "key-1"


def test_credentials_must_be_complete_and_base64():
    with pytest.raises(CredentialsError):
        KrakenCredentials("key", "")
    with pytest.raises(CredentialsError, match="base64"):
        KrakenCredentials("key", "not base64!!")
