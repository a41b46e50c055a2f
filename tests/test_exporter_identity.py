"""What the exporter says about itself: version, mode (demo data never passes for production), process metrics."""

import platform

import pytest
import requests

from exporter import CapacityExporter
from exporter.core.version import __version__
from exporter.web.status import status_payload


@pytest.mark.parametrize("mode", ["demo", "serve", "scrape", "embedded"])
def test_exporter_info_and_the_status_payload_name_the_mode(registry, mode):
    exporter = CapacityExporter(registry=registry, mode=mode)
    exporter.add_pair("XDGUSD")
    assert registry.get_sample_value("krakenbot_exporter_info", {"version": __version__, "mode": mode,
                                                                "tier": "unknown" if mode == "scrape" else "pro"}) == 1
    assert status_payload(exporter)["mode"] == mode


def test_a_library_exporter_is_embedded_by_default(registry):
    exporter = CapacityExporter(registry=registry)
    assert exporter.mode == "embedded"
    assert registry.get_sample_value("krakenbot_exporter_info", {"version": __version__, "mode": "embedded", "tier": "pro"}) == 1


@pytest.mark.parametrize(("tier", "limit", "threshold"), [("starter", 60, 60), ("intermediate", 80, 125), ("pro", 225, 180)])
def test_the_tier_sets_both_walls_and_is_said_in_the_info_metric_and_the_status(registry, tier, limit, threshold):
    exporter = CapacityExporter(registry=registry, tier=tier)
    telemetry = exporter.add_pair("XDGUSD")
    assert telemetry.limit == limit
    assert registry.get_sample_value("krakenbot_exporter_info", {"version": __version__, "mode": "embedded",
                                                                "tier": tier}) == 1
    assert registry.get_sample_value("krakenbot_order_rate_threshold", {"pair": "XDGUSD"}) == threshold
    assert status_payload(exporter)["kraken_tier"] == tier
    assert status_payload(exporter)["capacity_fill_health"]["order_rate_threshold"] == threshold


def test_an_explicit_limit_wins_over_the_tier_and_a_pair_may_name_its_own_tier(registry):
    exporter = CapacityExporter(registry=registry, tier="starter")
    assert exporter.add_pair("XDGUSD", 100).limit == 100
    pro = exporter.add_pair("XBTUSD", tier="pro")
    assert (pro.limit, pro.tier) == (225, "pro")
    with pytest.raises(ValueError, match="starter, intermediate, pro"):
        CapacityExporter(registry=registry, tier="gold")


def test_the_standard_process_and_platform_collectors_are_on_the_exporters_registry(registry):
    CapacityExporter(registry=registry)
    assert registry.get_sample_value("process_start_time_seconds") > 0
    assert registry.get_sample_value("process_resident_memory_bytes") > 0
    info = [s for f in registry.collect() if f.name == "python_info" for s in f.samples]
    assert [s.labels["version"] for s in info] == [platform.python_version()]


def test_an_unknown_mode_is_refused(registry):
    with pytest.raises(ValueError, match="mode"):
        CapacityExporter(registry=registry, mode="production")


@pytest.mark.integration
def test_the_served_metrics_and_status_carry_the_mode(registry):
    exporter = CapacityExporter(registry=registry, mode="scrape")
    exporter.add_pair("XDGUSD")
    server = exporter.serve(port=0)
    try:
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        assert f'krakenbot_exporter_info{{mode="scrape",tier="unknown",version="{__version__}"}} 1.0' in text
        assert requests.get(f"{server.url}/api/status", timeout=5).json()["kraken_tier"] is None  # the bot's
        assert "process_start_time_seconds " in text
        assert requests.get(f"{server.url}/api/status", timeout=5).json()["mode"] == "scrape"
    finally:
        server.stop()
