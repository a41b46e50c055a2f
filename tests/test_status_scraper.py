"""`scrape`: mirroring a reference-bot /api/status through a local fake bot server."""

import copy
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from exporter import status_payload
from exporter.sources.status_scraper import BotStatusScraper, ScrapeMetrics, parse_block
from exporter.web.app import create_app, start_server
from tests.conftest import require_binary, wait_for

pytestmark = pytest.mark.integration

# The reference bot's payload shape: its own top-level keys, and extra keys inside the block.
REFERENCE_PAYLOAD = {
    "mode": "RUNNING",
    "pause_reason": "",
    "pair": "DOGE/USD",
    "price": 0.1801,
    "slot_count": 12,
    "total_orphans": 3,
    "capacity_fill_health": {
        "open_orders_current": 117,
        "open_orders_source": "kraken",
        "open_orders_internal": 115,
        "open_orders_kraken": 117,
        "open_orders_drift": 2,
        "open_order_limit_configured": 225,
        "open_orders_safe_cap": 168,
        "open_order_headroom": 51,
        "open_order_utilization_pct": 69.6,
        "orders_per_slot_estimate": 9.75,
        "estimated_slots_remaining": 5,
        "partial_fill_open_events_1d": 1,
        "partial_fill_cancel_events_1d": 0,
        "median_fill_seconds_1d": 44.0,
        "p95_fill_seconds_1d": 132,
        "status_band": "normal",
        "blocked_risk_hint": ["partial_fill_open_pressure"],
        "auto_soft_close_total": 4,
        "auto_soft_close_last_at": 1760738484.9,
        "auto_recovery_drain_total": 0,
        "entry_scheduler": {"pending": 2},
        "private_api_metronome": {"budget": 3},
    },
}


class FakeBot:
    """A bot's /api/status that a test can change, break or take away."""

    def __init__(self):
        self.payload = copy.deepcopy(REFERENCE_PAYLOAD)
        self.body: bytes | None = None  # raw override
        self.status = 200
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = bot.body if bot.body is not None else json.dumps(bot.payload).encode()
                self.send_response(bot.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/status"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()

    def go_away(self):
        self.server.shutdown()
        self.server.server_close()

    def come_back(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.server.RequestHandlerClass)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()


@pytest.fixture
def bot():
    fake = FakeBot()
    yield fake
    fake.go_away()


@pytest.fixture
def scraper(bot, exporter, registry, clock):
    s = BotStatusScraper(bot.url, ScrapeMetrics(registry), timeout=2, clock=clock)
    exporter.add_source(s)
    return s


def gauge(registry, name, **labels):
    return registry.get_sample_value(name, {"pair": "XDGUSD", **labels})


def test_every_numeric_field_becomes_a_gauge_labelled_with_the_payloads_pair(scraper, registry):
    assert scraper.scrape_once() == "ok"
    assert scraper.pair == "XDGUSD"
    assert gauge(registry, "krakenbot_open_orders_current") == 117
    assert gauge(registry, "krakenbot_open_orders_drift") == 2
    assert gauge(registry, "krakenbot_open_orders_headroom") == 51
    assert gauge(registry, "krakenbot_open_orders_utilization_ratio") == pytest.approx(0.696)
    assert gauge(registry, "krakenbot_fill_duration_p95_1d_seconds") == 132
    assert gauge(registry, "krakenbot_estimated_slots_remaining") == 5
    assert gauge(registry, "krakenbot_status_scrape_up") == 1


def test_band_and_hints_become_state_sets(scraper, registry, bot):
    scraper.scrape_once()
    assert gauge(registry, "krakenbot_status_band_state", band="normal") == 1
    assert gauge(registry, "krakenbot_status_band_state", band="stop") == 0
    assert gauge(registry, "krakenbot_blocked_risk_hint", hint="partial_fill_open_pressure") == 1
    assert gauge(registry, "krakenbot_blocked_risk_hint", hint="near_open_order_cap") == 0
    bot.payload["capacity_fill_health"].update(status_band="stop", blocked_risk_hint=["near_open_order_cap"])
    scraper.scrape_once()
    assert gauge(registry, "krakenbot_status_band") == 2
    assert gauge(registry, "krakenbot_blocked_risk_hint", hint="near_open_order_cap") == 1


def test_unknown_keys_are_ignored_and_the_status_mirrors_the_block(scraper, exporter):
    scraper.scrape_once()
    server = start_server(create_app(exporter))
    try:
        body = requests.get(f"{server.url}/api/status", timeout=5).json()
    finally:
        server.stop()
    block = body["capacity_fill_health"]
    for key, value in REFERENCE_PAYLOAD["capacity_fill_health"].items():
        if key in block:
            assert block[key] == value
    assert "auto_soft_close_total" not in block and "invalid_fields" not in block
    assert block["status_reason"] == "headroom 51 >= 20, no partial-cancel in 24h (normal)"


def test_a_bot_that_goes_away_exports_up_zero_and_no_stale_values_then_recovers(scraper, registry, bot):
    scraper.scrape_once()
    bot.go_away()
    assert scraper.scrape_once() == "connection_error"
    assert gauge(registry, "krakenbot_status_scrape_up") == 0
    assert gauge(registry, "krakenbot_open_orders_current") is None
    assert gauge(registry, "krakenbot_status_band") is None
    assert gauge(registry, "krakenbot_status_scrape_errors_total", reason="connection_error") == 1
    assert "failed" in scraper.reading().problem
    bot.come_back()
    assert scraper.scrape_once() == "ok"
    assert gauge(registry, "krakenbot_open_orders_current") == 117


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"<html>oops</html>", 200, "invalid_json"),
        (b'{"mode": "RUNNING"}', 200, "no_capacity_block"),
        (b'[1, 2]', 200, "no_capacity_block"),
        (b"{}", 500, "http_error"),
    ],
)
def test_a_malformed_payload_is_counted_by_reason_and_exports_nothing(scraper, registry, bot, body, status, reason):
    bot.body, bot.status = body, status
    assert scraper.scrape_once() == reason
    assert gauge(registry, "krakenbot_open_orders_current") is None
    assert scraper.reading().health is None


def test_a_missing_or_mistyped_field_is_counted_reported_and_never_guessed(scraper, registry, bot):
    block = bot.payload["capacity_fill_health"]
    del block["open_order_headroom"]
    block["open_orders_current"] = "117"
    block["open_orders_drift"] = 2.5
    block["status_band"] = "panic"
    assert scraper.scrape_once() == "ok"
    assert gauge(registry, "krakenbot_open_orders_headroom") is None
    assert gauge(registry, "krakenbot_open_orders_current") is None
    assert gauge(registry, "krakenbot_open_orders_drift") is None
    assert gauge(registry, "krakenbot_status_band") is None
    assert gauge(registry, "krakenbot_open_orders_internal") == 115
    for field in ("open_order_headroom", "open_orders_current", "open_orders_drift", "status_band"):
        assert gauge(registry, "krakenbot_status_field_errors_total", field=field) == 1
    assert set(scraper.reading().invalid_fields) == {
        "open_order_headroom", "open_orders_current", "open_orders_drift", "status_band"}


def test_numbers_too_large_to_be_counts_are_mistyped_fields_and_the_scrape_and_metrics_go_on(scraper, registry, bot):
    block = bot.payload["capacity_fill_health"]
    bot.body = json.dumps(bot.payload).replace(
        f'"open_orders_current": {block["open_orders_current"]}', '"open_orders_current": ' + "9" * 400).replace(
        f'"open_order_utilization_pct": {block["open_order_utilization_pct"]}', '"open_order_utilization_pct": 1e400',
    ).encode()
    assert b"9" * 400 in bot.body and b"1e400" in bot.body
    assert scraper.scrape_once() == "ok"
    assert {"open_orders_current", "open_order_utilization_pct"} <= set(scraper.reading().invalid_fields)
    assert gauge(registry, "krakenbot_open_orders_current") is None
    assert gauge(registry, "krakenbot_open_orders_internal") == 115  # the other fields still mirrored


def test_a_worker_whose_run_raises_logs_it_and_keeps_running(caplog):
    from exporter.sources.worker import BackgroundWorker

    class Flaky(BackgroundWorker):
        calls = 0

        def run_once(self):
            Flaky.calls += 1
            raise RuntimeError("boom")

    worker = Flaky(interval=0.01, join_timeout=5)
    worker.start()
    try:
        assert wait_for(lambda: Flaky.calls >= 3, timeout=10)
    finally:
        worker.stop()
    errors = [r for r in caplog.records if "unexpected RuntimeError" in r.getMessage()]
    assert len(errors) >= 3 and errors[0].exc_info and not errors[1].exc_info


def test_nulls_are_fine_where_the_spec_allows_them():
    block = dict(REFERENCE_PAYLOAD["capacity_fill_health"], open_orders_kraken=None, open_orders_drift=None,
                 median_fill_seconds_1d=None, p95_fill_seconds_1d=None, orders_per_slot_estimate=None)
    _, invalid = parse_block(block)
    assert invalid == ()
    _, invalid = parse_block(dict(block, open_orders_current=None, open_order_utilization_pct=True))
    assert set(invalid) == {"open_orders_current", "open_order_utilization_pct"}


def test_pair_flag_overrides_the_payload(bot, registry):
    s = BotStatusScraper(bot.url, ScrapeMetrics(registry), pair="BTC/USD")
    s.scrape_once()
    assert registry.get_sample_value("krakenbot_status_scrape_up", {"pair": "XBTUSD"}) == 1


def test_a_bot_whose_pair_changes_leaves_no_series_and_no_forecast_history_under_the_old_name(scraper, exporter,
                                                                                             registry, bot):
    exporter.readings()  # before the first scrape: the placeholder pair
    bot.payload["capacity_fill_health"]["status_band"] = "panic"  # a mistyped field, counted under the pair
    assert scraper.scrape_once() == "ok"
    exporter.readings()
    assert gauge(registry, "krakenbot_status_field_errors_total", field="status_band") == 1
    assert set(exporter._headroom) == {"XDGUSD"}  # the placeholder's history is gone
    bot.payload["pair"] = "XBT/USD"
    assert scraper.scrape_once() == "ok"
    exporter.readings()
    old = [s for f in registry.collect() for s in f.samples if s.labels.get("pair") == "XDGUSD"]
    assert old == []
    assert registry.get_sample_value("krakenbot_status_field_errors_total", {"pair": "XBTUSD", "field": "status_band"}) == 1
    assert set(exporter._headroom) == {"XBTUSD"}


def test_a_payload_without_a_pair_needs_the_flag(bot, registry):
    del bot.payload["pair"]
    s = BotStatusScraper(bot.url, ScrapeMetrics(registry))
    assert s.scrape_once() == "no_pair"


def test_scraped_metrics_pass_promtool(scraper, registry, bot):
    promtool = require_binary("promtool")
    scraper.scrape_once()
    bot.go_away()
    scraper.scrape_once()
    bot.come_back()
    scraper.scrape_once()
    check = subprocess.run([promtool, "check", "metrics"], input=generate_latest(registry), capture_output=True, timeout=30)
    assert check.returncode == 0 and check.stdout == b"", check.stdout


def test_before_the_first_scrape_the_pair_is_blind(scraper):
    reading = scraper.reading()
    assert reading.blind and reading.health is None and "no successful scrape" in reading.problem


def test_an_unreachable_bot_makes_the_pair_blind_and_keeps_when_it_last_answered(scraper, bot, clock):
    assert scraper.scrape_once() == "ok"
    answered_at = clock.now()
    assert not scraper.reading().blind
    clock.advance(15)
    bot.go_away()
    scraper.scrape_once()
    reading = scraper.reading()
    assert reading.blind and reading.health is None
    assert reading.last_update == answered_at
    bot.come_back()
    scraper.scrape_once()
    assert not scraper.reading().blind


def test_a_last_good_scrape_older_than_the_stale_limit_makes_the_pair_blind(bot, registry, clock):
    s = BotStatusScraper(bot.url, ScrapeMetrics(registry), interval=15, timeout=2, clock=clock, stale_after=45)
    assert s.scrape_once() == "ok"
    clock.advance(45)
    assert not s.reading().blind and s.reading().health is not None
    clock.advance(1)  # e.g. a scrape that hangs, or a worker that died: no failure is ever recorded
    reading = s.reading()
    assert reading.blind and reading.health is None
    assert "46 s old (stale after 45 s)" in reading.problem
    assert s.scrape_once() == "ok"
    assert not s.reading().blind


def test_the_default_stale_limit_is_four_intervals_and_never_shorter_than_an_interval_plus_the_timeout(bot, registry):
    assert BotStatusScraper(bot.url, ScrapeMetrics(registry), interval=15, timeout=5).stale_after == 60
    assert BotStatusScraper(bot.url, ScrapeMetrics(CollectorRegistry()), interval=1, timeout=10).stale_after == 11
    with pytest.raises(ValueError, match="stale_after"):
        BotStatusScraper(bot.url, ScrapeMetrics(CollectorRegistry()), stale_after=0)


def test_a_password_or_token_in_the_status_url_reaches_no_log_status_or_metric(bot, exporter, registry, clock, caplog):
    url = bot.url.replace("http://", "http://op:hunter2@") + "?token=s3cr3t"
    scraper = BotStatusScraper(url, ScrapeMetrics(registry), timeout=2, clock=clock)
    exporter.add_source(scraper)
    bot.go_away()
    assert scraper.scrape_once() == "connection_error"
    shown = " ".join([caplog.text, json.dumps(status_payload(exporter)), generate_latest(registry).decode()])
    assert "/api/status" in shown
    assert "hunter2" not in shown and "s3cr3t" not in shown and "op:" not in shown
    bot.come_back()


def test_redacted_urls_keep_the_server_and_path_and_hide_credentials_and_query():
    from exporter.sources.urls import redacted

    assert redacted("http://bot:8080/api/status") == "http://bot:8080/api/status"
    assert redacted("https://u:p@bot:8443/api/status?token=x") == "https://***@bot:8443/api/status?***"
    assert redacted("http://[::1]:9/x") == "http://[::1]:9/x"
    assert redacted("http://a:b@[::1]:9/x?q=1#f") == "http://***@[::1]:9/x?***"
