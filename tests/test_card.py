"""The native card at /, rendered by a real headless Chromium (Debian's), driven by Playwright."""

import pytest
import requests

from exporter.web.app import create_app, start_server
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
COLOURS = {"normal": "rgb(31, 157, 85)", "caution": "rgb(217, 140, 0)", "stop": "rgb(214, 69, 69)"}


@pytest.fixture(scope="module")
def browser():
    chromium = require_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served(exporter):
    telemetry = exporter.add_pair("XDGUSD")
    server = start_server(create_app(exporter))
    yield telemetry, server
    server.stop()


def card_text(browser, url, test_id):
    """The text of the card's element `test_id`, once the page has rendered it."""
    page = browser.new_page()
    try:
        page.goto(url)
        element = page.get_by_test_id(test_id)
        element.wait_for(timeout=10_000)
        return element.inner_text()
    finally:
        page.close()


def drive(telemetry, clock, band):
    """Put the pair in `band`: normal (headroom 48), caution (headroom 13) or stop (a partial-cancel)."""
    counts = {"normal": 120, "caution": 155, "stop": 150}[band]
    telemetry.set_internal_counts(active_orders=counts - 2, recovery_orders=2, slot_count=60)
    telemetry.observe_kraken_count(counts)
    telemetry.observe_order_status("OFILL1-AAAAA-AAAAAA", "closed", "13", "13", placed_at=clock.now() - 90)
    telemetry.observe_order_status("OFILL2-AAAAA-AAAAAA", "closed", "13", "13", placed_at=clock.now() - 4000)
    telemetry.observe_order_status("OFILL3-AAAAA-AAAAAA", "closed", "13", "13", placed_at=clock.now() - 60)
    telemetry.observe_order_status("OPART1-AAAAA-AAAAAA", "open", "13", "4")
    if band == "stop":
        telemetry.observe_order_status("OPART1-AAAAA-AAAAAA", "canceled", "13", "4")


@pytest.mark.parametrize("band", ["normal", "caution", "stop"])
def test_the_badge_shows_the_band_in_its_colour_and_the_numbers_match_the_status(browser, served, clock, band, tmp_path):
    telemetry, server = served
    drive(telemetry, clock, band)
    block = requests.get(f"{server.url}/api/status", timeout=5).json()["capacity_fill_health"]
    assert block["status_band"] == band
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        badge = page.get_by_test_id("badge")
        badge.wait_for(timeout=10_000)
        assert badge.inner_text() == band.upper()
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == COLOURS[band]
        cap, util = block["open_orders_safe_cap"], block["open_order_utilization_pct"]
        assert page.get_by_test_id("orders").inner_text() == f"{block['open_orders_current']} / {cap} ({util:.1f}%)"
        assert page.get_by_test_id("headroom").inner_text() == (
            f"{block['open_order_headroom']} orders, ~{block['estimated_slots_remaining']} slots left")
        assert page.get_by_test_id("partials").inner_text() == (
            f"{block['partial_fill_open_events_1d']} open, {block['partial_fill_cancel_events_1d']} canceled")
        assert page.get_by_test_id("fills").inner_text() == "90s median / 67m p95"
        assert page.get_by_test_id("reason").inner_text() == block["status_reason"]
        assert page.get_by_test_id("source").inner_text() == "Kraken"
        page.screenshot(path=str(tmp_path / f"card-{band}.png"))
    finally:
        page.close()


def test_the_card_marks_the_internal_fallback(browser, served, clock):
    telemetry, server = served
    telemetry.set_internal_counts(active_orders=10, slot_count=5)
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        source = page.get_by_test_id("source")
        source.wait_for(timeout=10_000)
        assert source.inner_text() == "FALLBACK: internal count"
        assert "kraken_open_orders_unavailable" in page.get_by_test_id("hints").inner_text()
    finally:
        page.close()


def test_the_card_says_stale_when_the_status_stops_answering(browser, exporter):
    exporter.add_pair("XDGUSD")
    server = start_server(create_app(exporter))
    page = browser.new_page()
    try:
        page.goto(server.url + "/?refresh_ms=200")
        page.get_by_test_id("badge").wait_for(timeout=10_000)
        assert not page.locator("#stale.on").count()
        server.stop()
        page.locator("#stale.on").wait_for(timeout=20_000)
        assert page.locator("#stale").inner_text().startswith("STALE: no data")
        assert page.get_by_test_id("badge").inner_text() == "NORMAL"  # last numbers kept, greyed
    finally:
        page.close()


@pytest.mark.parametrize(("asked", "used"), [("1", 1000), ("0", 5000), ("-5", 5000), ("nope", 5000),
                                             ("1e20", 3600000), ("2500", 2500)])
def test_a_crafted_refresh_ms_cannot_make_the_card_poll_faster_than_once_a_second(browser, exporter, asked, used):
    exporter.add_pair("XDGUSD")
    server = start_server(create_app(exporter))
    page = browser.new_page()
    fetches: list[str] = []
    page.on("request", lambda request: fetches.append(request.url) if "api/status" in request.url else None)
    try:
        page.goto(server.url + f"/?refresh_ms={asked}")
        page.get_by_test_id("badge").wait_for(timeout=10_000)
        page.wait_for_timeout(2500)  # the window in which the fetches are counted
        assert page.evaluate("REFRESH_MS") == used
        assert 1 <= len(fetches) <= 1 + 2500 // used + 1  # the first, then one per interval (one more for timing)
    finally:
        page.close()
        server.stop()


def test_the_card_shows_one_pair_when_asked_and_every_pair_otherwise(browser, exporter):
    exporter.add_pair("XDGUSD")
    exporter.add_pair("XBTUSD")
    server = start_server(create_app(exporter))
    page = browser.new_page()
    try:
        page.goto(server.url + "/")
        page.locator("section.card").nth(1).wait_for(timeout=10_000)
        assert page.locator("section.card").count() == 2
        page.goto(server.url + "/?pair=XBTUSD")
        page.locator("section.card").first.wait_for(timeout=10_000)
        assert page.locator("section.card").evaluate_all("cards => cards.map(c => c.dataset.pair)") == ["XBTUSD"]
    finally:
        page.close()
        server.stop()


def test_the_card_page_is_self_contained_and_read_only(served):
    _, server = served
    reply = requests.get(server.url + "/", timeout=5)
    assert reply.headers["Content-Type"].startswith("text/html")
    html = reply.text
    assert "http://" not in html and "https://" not in html  # no CDN, nothing external
    assert "method:" not in html and "POST" not in html
    assert "connect-src 'self'" in reply.headers["Content-Security-Policy"]


def with_status_fields(app, extra):
    """`app` with `extra(payload)` merged into /api/status: a payload as the other parts of the exporter add to it."""
    import json

    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") != "/api/status":
            return app(environ, start_response)
        seen = {}
        body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.update(status=status)))
        payload = json.loads(body)
        payload.update(extra(payload))
        data = json.dumps(payload).encode()
        start_response(seen["status"], [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wrapped


def open_card(browser, url, **context_options):
    context = browser.new_context(**context_options)
    page = context.new_page()
    reply = page.goto(url)
    return context, page, reply


@pytest.mark.parametrize("mode", ["demo", "serve", "scrape", "embedded"])
def test_the_card_marks_simulated_data_as_demo_and_only_then(browser, registry, clock, mode):
    from exporter import CapacityExporter

    exporter = CapacityExporter(registry=registry, clock=clock, mode=mode)
    exporter.add_pair("XDGUSD")
    server = start_server(create_app(exporter))
    context, page, _ = open_card(browser, server.url + "/")
    try:
        page.get_by_test_id("badge").wait_for(timeout=10_000)
        marker = page.get_by_test_id("demo")
        if mode == "demo":
            assert marker.is_visible() and marker.inner_text().startswith("DEMO")
            assert page.title().startswith("DEMO")
        else:
            assert not marker.is_visible() and not page.title().startswith("DEMO")
    finally:
        context.close()
        server.stop()


@pytest.mark.parametrize(("age_hours", "shown"), [(2.5, "counting for 2 h"), (0.25, "counting for 15 min"), (24, None),
                                                  (None, None)])
def test_the_card_says_how_long_it_has_been_counting_while_the_window_is_younger_than_a_day(browser, exporter, age_hours,
                                                                                           shown):
    exporter.add_pair("XDGUSD")

    def window(payload):  # the block's own window_started_at (core's field), set to the age under test
        started = None if age_hours is None else payload["generated_at"] - age_hours * 3600
        blocks = {p: {**b, "window_started_at": started} for p, b in payload["capacity_fill_health_by_pair"].items()}
        return {"capacity_fill_health": blocks[payload["pair"]], "capacity_fill_health_by_pair": blocks}

    server = start_server(with_status_fields(create_app(exporter), window))
    context, page, _ = open_card(browser, server.url + "/")
    try:
        page.get_by_test_id("badge").wait_for(timeout=10_000)
        notes = page.get_by_test_id("window")
        if shown is None:
            assert notes.count() == 0
        else:
            assert notes.inner_text().startswith(shown + ":")
    finally:
        context.close()
        server.stop()


def test_the_card_and_its_fetches_work_behind_basic_auth_in_chromium(browser, exporter, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from exporter.web.app import WebConfigFile
    from tests.certs import bcrypt_hash

    exporter.add_pair("XDGUSD").set_internal_counts(active_orders=10, slot_count=5)
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  viewer: {bcrypt_hash('let me see')}\n")
    server = start_server(create_app(exporter, WebConfigFile(path)))
    try:
        context, page, reply = open_card(browser, server.url + "/?refresh_ms=300", http_credentials={
            "username": "viewer", "password": "let me see"})
        try:
            assert reply.status == 200
            page.get_by_test_id("badge").wait_for(timeout=10_000)  # drawn from a fetch of api/status
            assert page.get_by_test_id("orders").inner_text().startswith("10 / 168")
            later = page.wait_for_event("response", lambda r: "api/status" in r.url and r.status == 200, timeout=10_000)
            assert later.ok  # later refreshes keep working
            assert not page.locator("#stale.on").count()
        finally:
            context.close()
        for credentials in (None, {"username": "viewer", "password": "wrong"}):
            context = browser.new_context(http_credentials=credentials)
            try:
                try:
                    reply = context.new_page().goto(server.url + "/")
                    refused = reply.status == 401
                except sync_api.Error as exc:  # headless Chromium cannot show the login prompt
                    refused = "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
                assert refused
            finally:
                context.close()
        denied = requests.get(server.url + "/api/status", auth=("viewer", "wrong"), timeout=5)
        assert denied.status_code == 401
    finally:
        server.stop()


def test_the_card_shows_when_the_headroom_trend_reaches_the_stop_band(browser, served, clock):
    telemetry, server = served
    # headroom 68, 59, 50, 41, 32, read a minute apart: falling 9 a minute, the stop edge (10) minutes ahead
    for active in (100, 109, 118, 127, 136):
        clock.advance(60)
        telemetry.set_internal_counts(active_orders=active, recovery_orders=0, slot_count=10)
        status = requests.get(server.url + "/api/status", timeout=5).json()
    hours = status["capacity_fill_health"]["forecast_hours_to_stop"]
    assert 0 < hours < 1
    assert card_text(browser, server.url + "/", "forecast") == f"stop band in ~{max(1, round(hours * 60))} min at the 6 h trend"


def test_the_card_says_the_headroom_is_not_falling_when_there_is_no_forecast(browser, served, clock):
    telemetry, server = served
    telemetry.set_internal_counts(active_orders=100, recovery_orders=0, slot_count=10)
    assert card_text(browser, server.url + "/", "forecast") == "headroom not falling (6 h trend)"


def test_the_card_says_the_stop_band_is_here_now_when_the_headroom_is_in_it(browser, served, clock):
    telemetry, server = served
    for active in (161, 161, 160):  # headroom 7, 7, 8: in the stop band, flat and then rising
        clock.advance(60)
        telemetry.set_internal_counts(active_orders=active, recovery_orders=0, slot_count=10)
        block = requests.get(server.url + "/api/status", timeout=5).json()["capacity_fill_health"]
        assert (block["status_band"], block["forecast_hours_to_stop"]) == ("stop", 0)
    assert card_text(browser, server.url + "/", "badge") == "STOP"
    assert card_text(browser, server.url + "/", "forecast") == "in the stop band now"


def test_the_card_shows_the_order_rate_counter_against_its_threshold_with_the_peak_and_refusals(browser, served, clock):
    telemetry, server = served
    telemetry.set_internal_counts(active_orders=10, recovery_orders=0, slot_count=1)
    clock.advance(120)  # past the first minute: orders first seen now were placed now
    telemetry.observe_order_status("ONEW1-AAAAA-AAAAAA", "open", "13", "0")
    telemetry.observe_order_status("ONEW1-AAAAA-AAAAAA", "canceled", "13", "0", placed_at=clock.now() - 1)  # +8
    telemetry.observe_order_rejected("EOrder:Rate limit exceeded")
    block = requests.get(server.url + "/api/status", timeout=5).json()["capacity_fill_health"]
    assert (block["order_rate_counter"], block["order_rate_threshold"], block["order_rate_limited_1d"]) == (9.0, 180.0, 1)
    assert card_text(browser, server.url + "/", "order-rate") == "9.0 / 180 (peak 1d 9.0, 1 refused 1d)"
