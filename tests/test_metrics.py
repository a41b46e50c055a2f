import subprocess

import pytest
from prometheus_client import generate_latest

from exporter.web.metrics import FILL_DURATION_BUCKETS
from tests.conftest import require_binary


def value(registry, name, **labels):
    return registry.get_sample_value(name, {"pair": "XDGUSD", **labels})


def test_gauges_are_computed_from_state_at_scrape_time(exporter, registry, clock):
    t = exporter.add_pair("XDGUSD")
    t.set_internal_counts(active_orders=150, recovery_orders=3, slot_count=70)
    assert value(registry, "krakenbot_open_orders_current") == 153
    assert value(registry, "krakenbot_open_orders_headroom") == 15
    assert value(registry, "krakenbot_status_band") == 1
    assert value(registry, "krakenbot_status_band_state", band="caution") == 1
    assert value(registry, "krakenbot_status_band_state", band="normal") == 0
    t.set_internal_counts(active_orders=160)
    assert value(registry, "krakenbot_status_band") == 2
    assert value(registry, "krakenbot_blocked_risk_hint", hint="near_open_order_cap") == 1
    assert value(registry, "krakenbot_open_orders_utilization_ratio") == pytest.approx(163 / 168)
    assert value(registry, "krakenbot_open_orders_safe_cap") == 168
    assert value(registry, "krakenbot_open_orders_limit") == 225
    assert value(registry, "krakenbot_open_orders_safety_ratio") == 0.75
    assert value(registry, "krakenbot_slots") == 70
    assert value(registry, "krakenbot_orders_per_slot") == pytest.approx(163 / 70)
    assert value(registry, "krakenbot_estimated_slots_remaining") == 2


def test_unknown_values_are_absent_rather_than_nan(exporter, registry):
    exporter.add_pair("XDGUSD")
    for name in ("krakenbot_open_orders_kraken", "krakenbot_open_orders_drift", "krakenbot_orders_per_slot",
                 "krakenbot_kraken_data_age_seconds", "krakenbot_fill_duration_median_1d_seconds"):
        assert value(registry, name) is None, name
    assert value(registry, "krakenbot_kraken_data_available") == 0
    assert value(registry, "krakenbot_open_orders_source", source="internal_fallback") == 1


def test_kraken_availability_age_and_drift_are_exported(exporter, registry, clock):
    t = exporter.add_pair("XDGUSD")
    t.set_internal_counts(active_orders=4)
    t.observe_kraken_count(6)
    clock.advance(30)
    assert value(registry, "krakenbot_kraken_data_available") == 1
    assert value(registry, "krakenbot_kraken_data_age_seconds") == 30
    assert value(registry, "krakenbot_open_orders_kraken") == 6
    assert value(registry, "krakenbot_open_orders_drift") == 2
    assert value(registry, "krakenbot_open_orders_source", source="kraken") == 1


def test_window_gauges_match_the_status_block(exporter, registry, clock):
    t = exporter.add_pair("XDGUSD")
    t.observe_order_status("A", "open", "13", "1")
    t.observe_order_status("B", "canceled", "13", "1")
    t.observe_order_status("C", "closed", "13", "13", placed_at=clock.now() - 40)
    snap = t.snapshot()
    assert value(registry, "krakenbot_partial_fill_open_events_1d") == snap.partial_fill_open_events_1d == 1
    assert value(registry, "krakenbot_partial_fill_cancel_events_1d") == 1
    assert value(registry, "krakenbot_fill_duration_median_1d_seconds") == snap.median_fill_seconds_1d == 40
    assert value(registry, "krakenbot_fill_duration_p95_1d_seconds") == 40


def test_histogram_buckets_span_seconds_to_a_week():
    assert FILL_DURATION_BUCKETS[0] == 1
    assert FILL_DURATION_BUCKETS[-1] == 7 * 86400
    assert list(FILL_DURATION_BUCKETS) == sorted(FILL_DURATION_BUCKETS)


def test_hook_error_kinds_exist_from_the_start_at_zero(exporter, registry):
    exporter.add_pair("XDGUSD")
    assert value(registry, "krakenbot_hook_errors_total", kind="invalid_volume") == 0


def test_a_removed_pair_leaves_no_series(exporter, registry):
    exporter.add_pair("XDGUSD").observe_order_status("A", "open", "13", "1")
    exporter.add_pair("XBTUSD")
    exporter.remove_pair("XDGUSD")
    text = generate_latest(registry).decode()
    assert 'pair="XDGUSD"' not in text
    assert 'pair="XBTUSD"' in text


def test_every_series_carries_a_pair_label(exporter, registry):
    """Every series of ours but the process-wide `krakenbot_exporter_info`; process_* and python_* are the
    standard collectors' and carry none."""
    exporter.add_pair("XDGUSD").observe_order_status("A", "closed", "13", "13", placed_at=1)
    for family in registry.collect():
        if not family.name.startswith("krakenbot_") or family.name == "krakenbot_exporter":
            continue
        for s in family.samples:
            assert "pair" in s.labels, s


@pytest.mark.integration
def test_exposition_passes_promtool_check_metrics(exporter, registry, clock):
    promtool = require_binary("promtool")
    t = exporter.add_pair("XDGUSD")
    exporter.add_pair("XBTUSD")
    t.set_internal_counts(active_orders=4, recovery_orders=1, slot_count=2)
    t.observe_kraken_count(5)
    t.observe_order_status("A", "open", "13", "1")
    t.observe_order_status("B", "canceled", "13", "1")
    t.observe_order_status("C", "closed", "13", "13", placed_at=clock.now() - 40)
    t.observe_order_status("D", "open", "x", "1")
    text = generate_latest(registry)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert findings == [], findings


def test_every_hint_is_exported_as_zero_when_none_is_raised(exporter, registry):
    t = exporter.add_pair("XDGUSD")
    t.observe_kraken_count(0)
    assert t.snapshot().blocked_risk_hint == []
    for hint in ("kraken_open_orders_unavailable", "partial_fill_cancel_detected"):
        assert value(registry, "krakenbot_blocked_risk_hint", hint=hint) == 0


class NoDataSource:
    """A source that has nothing (a Kraken outage in serve, a bot down in scrape)."""

    pair = "XBTUSD"

    def reading(self):
        from exporter.core.reading import PairReading

        return PairReading(pair=self.pair, health=None, blind=True, problem="nothing")


def test_every_configured_pair_stays_in_metrics_with_blind_and_data_available_even_without_data(exporter, registry):
    t = exporter.add_pair("XDGUSD")
    t.observe_kraken_count(3)
    exporter.add_source(NoDataSource())
    assert value(registry, "krakenbot_pair_blind") == 0
    assert value(registry, "krakenbot_kraken_data_available") == 1
    other = {"pair": "XBTUSD"}
    assert registry.get_sample_value("krakenbot_pair_blind", other) == 1
    assert registry.get_sample_value("krakenbot_kraken_data_available", other) == 0
    assert registry.get_sample_value("krakenbot_open_orders_current", other) is None


def test_an_embedded_pair_without_hook_calls_is_exported_as_blind(exporter, registry, clock):
    t = exporter.add_pair("XDGUSD")
    assert value(registry, "krakenbot_pair_blind") == 0
    clock.advance(121)
    assert value(registry, "krakenbot_pair_blind") == 1
    t.set_internal_counts(active_orders=1)
    assert value(registry, "krakenbot_pair_blind") == 0
    clock.advance(121)
    assert value(registry, "krakenbot_pair_blind") == 1


def test_event_counters_are_exported_from_the_telemetry_with_created_timestamps(exporter, registry, clock):
    started = clock.now()
    t = exporter.add_pair("XDGUSD")
    t.observe_order_status("A", "open", "13", "1")
    t.observe_order_status("B", "canceled", "13", "1")
    t.observe_order_status("C", "closed", "13", "13", placed_at=clock.now() - 100_000_000)  # past every bucket
    t.observe_order_status("D", "open", "x", "1")
    assert value(registry, "krakenbot_partial_fill_open_events_total") == 1
    assert value(registry, "krakenbot_partial_fill_cancel_events_total") == 1
    assert value(registry, "krakenbot_partial_fill_open_events_created") == started
    assert value(registry, "krakenbot_fill_duration_seconds_bucket", le="604800.0") == 0
    assert value(registry, "krakenbot_fill_duration_seconds_bucket", le="+Inf") == 1
    assert value(registry, "krakenbot_fill_duration_seconds_count") == 1
    assert value(registry, "krakenbot_fill_duration_seconds_created") == started
    assert value(registry, "krakenbot_hook_errors_total", kind="invalid_volume") == 1
