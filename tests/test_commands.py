"""The `serve`, `scrape` and `demo` commands end to end, as real processes on 127.0.0.1."""

import os
import subprocess
import sys

import pytest
import requests

from tests.conftest import free_port, wait_for
from tests.test_status_scraper import FakeBot

pytestmark = pytest.mark.integration


def start(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRAKEN_", "EXPORTER_"))}
    env.update(env_extra or {})
    proc = subprocess.Popen([sys.executable, "-m", "exporter", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    return proc


def run(args, env_extra=None):
    proc = start(args, env_extra)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def stop(proc):
    proc.terminate()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def get(port, path):
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def kraken_env(fake, secret):
    return {"KRAKEN_API_URL": fake.url, "KRAKEN_API_KEY": "test-key-0001", "KRAKEN_API_SECRET": secret}


def test_serve_exports_what_kraken_knows_and_says_what_it_cannot(fake_kraken, kraken_secret):
    """Without Kraken's stream (`--kraken-stream off`): OpenOrders only; tests/test_serve_stream.py has it on."""
    port = free_port()
    proc = start(["serve", "--pair", "DOGE/USD,XBTUSD", "--port", str(port), "--kraken-poll-interval", "0.2",
                  "--kraken-stream", "off"],
                 kraken_env(fake_kraken, kraken_secret))
    try:
        assert "listening on" in proc.stdout.readline()
        assert wait_for(lambda: get(port, "/api/status").json()["capacity_fill_health"] is not None, timeout=15)
        body = get(port, "/api/status").json()
        block = body["capacity_fill_health"]
        assert body["pairs"] == ["XDGUSD", "XBTUSD"]
        assert (block["open_orders_source"], block["open_orders_kraken"], block["open_orders_current"]) == ("kraken", 3, 3)
        assert block["open_order_headroom"] == 165
        assert block["open_orders_internal"] is None and "open_orders_internal" in block["unknown_fields"]
        assert "standalone" in block["status_reason"]
        assert body["capacity_fill_health_by_pair"]["XBTUSD"]["open_orders_kraken"] == 2
        metrics = get(port, "/metrics").text
        assert 'krakenbot_open_orders_kraken{pair="XDGUSD"} 3.0' in metrics
        assert "krakenbot_open_orders_internal{" not in metrics
        fake_kraken.fail("EService:Unavailable")
        assert wait_for(lambda: get(port, "/api/status").json()["capacity_fill_health"] is None, timeout=15)
        assert "no fresh Kraken" in get(port, "/api/status").json()["problems"]["XDGUSD"]
        metrics = get(port, "/metrics").text
        assert 'krakenbot_pair_blind{pair="XDGUSD"} 1.0' in metrics and "krakenbot_kraken_up 0.0" in metrics
        assert 'krakenbot_exporter_info{mode="serve",' in metrics
    finally:
        out, err = stop(proc)
    assert kraken_secret not in out + err
    assert set(fake_kraken.calls) <= {"public/AssetPairs", "private/OpenOrders"}


def test_serve_refuses_a_pair_kraken_does_not_know(fake_kraken, kraken_secret):
    code, _, err = run(["serve", "--pair", "NOPEUSD", "--port", str(free_port())], kraken_env(fake_kraken, kraken_secret))
    assert code == 2 and err.count("\n") == 1 and "--pair" in err and "NOPEUSD" in err


def test_serve_without_credentials_says_what_to_set(fake_kraken):
    code, _, err = run(["serve", "--port", str(free_port())], {"KRAKEN_API_URL": fake_kraken.url})
    assert code == 2 and "KRAKEN_API_KEY" in err and "Traceback" not in err


def test_scrape_turns_a_reference_bot_status_into_metrics_and_drops_up_when_it_goes_away():
    bot = FakeBot()
    port = free_port()
    proc = start(["scrape", "--status-url", bot.url, "--port", str(port), "--scrape-interval", "0.2"])
    try:
        assert "listening on" in proc.stdout.readline()
        assert wait_for(lambda: 'krakenbot_status_scrape_up{pair="XDGUSD"} 1.0' in get(port, "/metrics").text, 15)
        assert 'krakenbot_open_orders_current{pair="XDGUSD"} 117.0' in get(port, "/metrics").text
        assert get(port, "/api/status").json()["capacity_fill_health"]["open_orders_drift"] == 2
        bot.go_away()
        assert wait_for(lambda: 'krakenbot_status_scrape_up{pair="XDGUSD"} 0.0' in get(port, "/metrics").text, 15)
        assert "krakenbot_open_orders_current{" not in get(port, "/metrics").text
        assert 'krakenbot_pair_blind{pair="XDGUSD"} 1.0' in get(port, "/metrics").text
        assert get(port, "/api/status").json()["capacity_fill_health"] is None
        assert get(port, "/api/status").json()["mode"] == "scrape"
    finally:
        stop(proc)


def test_scrape_needs_a_status_url():
    code, _, err = run(["scrape", "--port", str(free_port())])
    assert code == 2 and "--status-url" in err


def test_demo_reads_its_fake_kraken_through_krakenex():
    port = free_port()
    proc = start(["demo", "--port", str(port), "--duration", "60"], {"EXPORTER_DEMO_OUTAGE_EVERY": "300"})
    try:
        assert "listening on" in proc.stdout.readline()
        assert wait_for(lambda: get(port, "/api/status").json()["capacity_fill_health"]["open_orders_source"] == "kraken", 15)
        metrics = get(port, "/metrics").text
        assert 'krakenbot_kraken_requests_total{endpoint="OpenOrders",result="ok"}' in metrics
        assert 'krakenbot_open_orders_drift{pair="XDGUSD"}' in metrics
        assert 'krakenbot_exporter_info{mode="demo",' in metrics
        assert get(port, "/api/status").json()["mode"] == "demo"
    finally:
        stop(proc)


def test_the_demos_scripted_outage_makes_the_poller_fall_back_then_heals(fake_kraken, kraken_secret, exporter, registry):
    from exporter.demo.run import FIRST_OUTAGE_AFTER, OUTAGE_WALL_SECONDS, OutageSchedule
    from exporter.sources.credentials import KrakenCredentials
    from exporter.sources.kraken_api import ReadOnlyKraken
    from exporter.sources.kraken_poller import KrakenOpenOrdersPoller, KrakenSourceMetrics

    telemetry = exporter.add_pair("XDGUSD")
    client = ReadOnlyKraken(KrakenCredentials("test-key-0001", kraken_secret), fake_kraken.url)
    poller = KrakenOpenOrdersPoller(client, [telemetry], KrakenSourceMetrics(registry))
    schedule = OutageSchedule(fake_kraken, every=300)
    schedule.update(FIRST_OUTAGE_AFTER - 1)
    assert poller.poll_once() == "ok"
    schedule.update(FIRST_OUTAGE_AFTER)
    assert poller.poll_once() == "service_unavailable"
    assert telemetry.snapshot().open_orders_source == "internal_fallback"
    schedule.update(FIRST_OUTAGE_AFTER + OUTAGE_WALL_SECONDS)
    assert poller.poll_once() == "ok"
    schedule.update(FIRST_OUTAGE_AFTER + 300)
    assert poller.poll_once() == "service_unavailable"


def unreadable_key_file(tmp_path):
    """A key file whose read fails: mode 000 for a normal user; root reads any mode, so there a file whose
    read fails at the I/O level (/proc/self/mem, mode 600, EIO on read) stands in."""
    if os.geteuid() == 0:
        return "/proc/self/mem"
    path = tmp_path / "locked.key"
    path.write_text("key\nc2VjcmV0\n")
    os.chmod(path, 0)
    return str(path)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: str(tmp), "is a directory"),
        (lambda tmp: str(tmp / "missing.key"), "No such file"),
        (lambda tmp: _key_file(tmp, b"\xff\xfekey\n\x80secret\n"), "not UTF-8"),
        (unreadable_key_file, "cannot read key file"),
        (lambda tmp: _key_file(tmp, b""), "key on line 1 and the secret on line 2"),
        (lambda tmp: _key_file(tmp, b"only-a-key\n"), "key on line 1 and the secret on line 2"),
        (lambda tmp: _key_file(tmp, b"key\nnot base64!!\n"), "not base64"),
        (lambda tmp: _key_file(tmp, b"k" * 70_000), "larger than"),
        (lambda tmp: _key_file(tmp, b"key\nc2VjcmV0\n", mode=0o644), "chmod 600"),
    ],
    ids=["directory", "missing", "not-utf8", "unreadable", "empty", "one-line", "not-base64", "huge", "world-readable"],
)
def test_a_key_file_problem_is_one_line_naming_the_file_and_the_problem_with_exit_2(tmp_path, make, problem):
    path = make(tmp_path)
    code, out, err = run(["serve", "--port", str(free_port()), "--kraken-key-file", path],
                         {"KRAKEN_API_URL": "http://127.0.0.1:9"})
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "--kraken-key-file" in lines[0] and path in lines[0] and problem in lines[0]
    assert "Traceback" not in err


def _key_file(tmp, content: bytes, mode: int = 0o600) -> str:
    path = tmp / "kraken.key"
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


def test_demo_with_a_pair_it_does_not_simulate_names_the_pairs_it_does():
    code, _, err = run(["demo", "--pair", "ADAUSD", "--port", str(free_port())])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "--pair" in lines[0] and "ADAUSD" in lines[0]
    for simulated in ("XDGUSD", "XBTUSD", "ETHUSD", "SOLUSD"):
        assert simulated in lines[0]
    assert "Kraken does not know" not in lines[0]
