import json
import math

import pytest

from exporter import CapacityTelemetry, ManualClock, add_capacity_fill_health, status_payload
from exporter.core.capacity import SPEC_FIELDS
from exporter.web.status import UnknownPair

# The spec's table: field -> allowed JSON types (None where the field is nullable).
SPEC_TYPES = {
    "open_orders_current": (int,),
    "open_orders_source": (str,),
    "open_orders_internal": (int,),
    "open_orders_kraken": (int, type(None)),
    "open_orders_drift": (int, type(None)),
    "open_order_limit_configured": (int,),
    "open_orders_safe_cap": (int,),
    "open_order_headroom": (int,),
    "open_order_utilization_pct": (float,),
    "orders_per_slot_estimate": (float, type(None)),
    "estimated_slots_remaining": (int,),
    "partial_fill_open_events_1d": (int,),
    "partial_fill_cancel_events_1d": (int,),
    "median_fill_seconds_1d": (float, type(None)),
    "p95_fill_seconds_1d": (float, type(None)),
    "status_band": (str,),
    "blocked_risk_hint": (list,),
}


def check_block(block):
    assert set(SPEC_TYPES) == set(SPEC_FIELDS)
    for name, types in SPEC_TYPES.items():
        assert name in block, name
        value = block[name]
        assert type(value) in types, f"{name}={value!r} is {type(value).__name__}, spec allows {types}"
    assert block["status_band"] in ("normal", "caution", "stop")
    assert block["open_orders_source"] in ("kraken", "internal_fallback")
    assert all(isinstance(h, str) for h in block["blocked_risk_hint"])
    assert isinstance(block["status_reason"], str) and block["status_reason"]


def roundtrip(payload):
    return json.loads(json.dumps(payload, allow_nan=False))


def test_empty_telemetry_has_every_field_with_nulls_where_the_spec_allows():
    block = roundtrip(add_capacity_fill_health({}, CapacityTelemetry("XDGUSD", clock=ManualClock())))["capacity_fill_health"]
    check_block(block)
    for nullable in ("open_orders_kraken", "open_orders_drift", "orders_per_slot_estimate",
                     "median_fill_seconds_1d", "p95_fill_seconds_1d"):
        assert block[nullable] is None


def test_busy_telemetry_has_every_field_with_values_of_the_spec_types(clock):
    t = CapacityTelemetry("XDGUSD", clock=clock)
    t.set_internal_counts(active_orders=10, recovery_orders=2, slot_count=4)
    t.observe_kraken_count(13)
    t.observe_order_status("A", "open", "13", "1")
    t.observe_order_status("B", "closed", "13", "13", placed_at=clock.now() - 100)
    block = roundtrip(add_capacity_fill_health({}, t))["capacity_fill_health"]
    check_block(block)
    assert block["open_orders_kraken"] == 13 and block["open_orders_drift"] == 1
    assert block["orders_per_slot_estimate"] == 3.25
    assert block["median_fill_seconds_1d"] == 100.0


def test_existing_status_keys_are_unchanged(clock):
    status = {"pair": "XDGUSD", "slots": [{"id": 1}], "capacity": {"x": 1}, "mode": "RUNNING", "price": 0.18}
    before = json.loads(json.dumps(status))
    result = add_capacity_fill_health(status, CapacityTelemetry("XDGUSD", clock=clock))
    assert result is status
    assert {k: v for k, v in status.items() if k != "capacity_fill_health"} == before


def test_several_pairs_pick_the_first_by_default_and_any_by_name(exporter):
    exporter.add_pair("XDGUSD").set_internal_counts(active_orders=1)
    exporter.add_pair("XBTUSD").set_internal_counts(active_orders=7)
    default = status_payload(exporter)
    assert default["pair"] == "XDGUSD"
    assert default["capacity_fill_health"]["open_orders_internal"] == 1
    assert set(default["capacity_fill_health_by_pair"]) == {"XDGUSD", "XBTUSD"}
    for block in default["capacity_fill_health_by_pair"].values():
        check_block(roundtrip(block))
    assert status_payload(exporter, "XBTUSD")["capacity_fill_health"]["open_orders_internal"] == 7
    assert status_payload(exporter, "BTC/USD")["pair"] == "XBTUSD"


def test_an_unknown_pair_is_an_error(exporter):
    exporter.add_pair("XDGUSD")
    with pytest.raises(UnknownPair):
        status_payload(exporter, "ETHUSD")


def test_exporter_status_adds_both_keys_to_a_bot_status(exporter):
    exporter.add_pair("XDGUSD")
    status = add_capacity_fill_health({"mode": "RUNNING"}, exporter)
    assert set(status) == {"mode", "capacity_fill_health", "capacity_fill_health_by_pair"}


def test_the_codes_field_type_table_matches_the_spec_table_here():
    from exporter.core.capacity import SPEC_FIELD_TYPES

    assert SPEC_FIELD_TYPES == SPEC_TYPES


def test_each_block_says_since_when_it_counts_and_whether_a_whole_day_is_in(exporter, clock):
    started = clock.now()
    exporter.add_pair("XDGUSD").set_internal_counts(active_orders=1)
    block = roundtrip(status_payload(exporter))["capacity_fill_health"]
    assert (block["window_started_at"], block["window_complete"]) == (started, False)
    clock.advance(86_400)
    block = roundtrip(status_payload(exporter))["capacity_fill_health"]
    assert (block["window_started_at"], block["window_complete"]) == (started, True)


class FixedClock:
    def __init__(self, value: float) -> None:
        self.value = value

    def now(self) -> float:
        return self.value


@pytest.mark.parametrize("broken", [math.nan, math.inf, -math.inf, "now"], ids=["nan", "inf", "-inf", "not-a-number"])
def test_a_broken_clock_makes_the_bots_block_null_and_never_raises_into_its_status_handler(clock, broken):
    telemetry = CapacityTelemetry("XDGUSD", clock=clock)
    telemetry.observe_order_status("TX1", "open", "10", "2")
    telemetry.clock = FixedClock(broken)
    status = add_capacity_fill_health({"mode": "RUNNING"}, telemetry)
    assert status == {"mode": "RUNNING", "capacity_fill_health": None}  # blind: no block it cannot vouch for
    assert telemetry.reading().blind
    telemetry.clock = clock  # the clock mended: the block is back, the event still counted
    assert add_capacity_fill_health({}, telemetry)["capacity_fill_health"]["partial_fill_open_events_1d"] == 1
