import pytest

from exporter.core.capacity import (
    HINTS,
    SPEC_FIELDS,
    CapacityInputs,
    classify_band,
    estimated_slots_remaining,
    evaluate,
    orders_per_slot,
    safe_cap,
)


@pytest.mark.parametrize(
    ("headroom", "cancels", "band"),
    [
        (9, 0, "stop"), (10, 0, "caution"), (19, 0, "caution"), (20, 0, "normal"),
        (9, 1, "stop"), (10, 1, "stop"), (19, 1, "stop"), (20, 1, "stop"), (-5, 0, "stop"), (500, 0, "normal"),
    ],
)
def test_band_thresholds_at_every_boundary(headroom, cancels, band):
    assert classify_band(headroom, cancels) == band


@pytest.mark.parametrize(
    ("limit", "ratio", "cap"),
    [(225, 0.75, 168), (60, 0.75, 45), (80, 0.75, 60), (1, 0.5, 1), (1, 0.01, 1), (100, 0.29, 29), (10, 1.0, 10),
     (300, 0.41, 123)],  # exact decimal product; binary floats give 122
)
def test_safe_cap_is_floor_of_limit_times_ratio_and_at_least_one(limit, ratio, cap):
    assert safe_cap(limit, ratio) == cap


def test_orders_per_slot_is_null_without_slots():
    assert orders_per_slot(10, 0) is None
    assert orders_per_slot(10, 4) == 2.5


@pytest.mark.parametrize(
    ("headroom", "current", "slots", "remaining"),
    [
        (166, 4, 2, 83),
        (10, 9, 3, 3),
        (0, 4, 2, 0),
        (-4, 4, 2, 0),
        (7, 4, 0, 0),  # no slots: no basis for an estimate
        (7, 0, 3, 7),  # spec: max(orders_per_slot, 1)
        (7, 1, 2, 7),
        (35, 7, 3, 15),  # exact: 35 / (7/3) = 15; floats give 14.999999999999998
    ],
)
def test_runway_estimate_and_its_null_and_zero_cases(headroom, current, slots, remaining):
    assert estimated_slots_remaining(headroom, current, slots) == remaining


def test_source_is_kraken_when_a_count_is_available():
    h = evaluate(CapacityInputs(internal_open_orders=10, kraken_open_orders=12, slot_count=5))
    assert h.open_orders_source == "kraken"
    assert h.open_orders_current == 12
    assert h.open_orders_drift == 2
    assert "kraken_open_orders_unavailable" not in h.blocked_risk_hint


def test_source_falls_back_to_internal_without_a_kraken_count():
    h = evaluate(CapacityInputs(internal_open_orders=10, kraken_open_orders=None))
    assert h.open_orders_source == "internal_fallback"
    assert h.open_orders_current == 10
    assert h.open_orders_kraken is None
    assert h.open_orders_drift is None
    assert h.blocked_risk_hint[0] == "kraken_open_orders_unavailable"


def test_reference_bot_scenario_one_active_one_recovery_kraken_unavailable():
    h = evaluate(CapacityInputs(limit=225, safety_ratio=0.75, internal_open_orders=2, slot_count=1))
    assert (h.open_orders_source, h.open_orders_internal, h.open_orders_current) == ("internal_fallback", 2, 2)
    assert (h.open_orders_safe_cap, h.open_order_headroom) == (168, 166)
    assert h.status_band == "normal"


def test_utilization_is_current_over_safe_cap_in_percent():
    h = evaluate(CapacityInputs(limit=200, safety_ratio=0.5, internal_open_orders=25))
    assert h.open_order_utilization_pct == 25.0


def test_hints_keep_the_reference_bots_order():
    h = evaluate(CapacityInputs(
        limit=10, safety_ratio=1.0, internal_open_orders=5, kraken_open_orders=None,
        partial_open_1d=2, partial_cancel_1d=1,
    ))
    assert h.blocked_risk_hint == [
        "kraken_open_orders_unavailable", "near_open_order_cap", "partial_fill_open_pressure",
        "partial_fill_cancel_detected",
    ]
    assert [hint for hint in HINTS if hint in h.blocked_risk_hint] == h.blocked_risk_hint


def test_drift_hint_needs_a_kraken_count():
    with_kraken = evaluate(CapacityInputs(internal_open_orders=0, kraken_open_orders=20, drift_persistent=True))
    without = evaluate(CapacityInputs(internal_open_orders=0, kraken_open_orders=None, drift_persistent=True))
    assert "open_order_drift_persistent" in with_kraken.blocked_risk_hint
    assert "open_order_drift_persistent" not in without.blocked_risk_hint


def test_caution_hint_only_between_ten_and_nineteen():
    assert "open_order_caution" in evaluate(CapacityInputs(limit=30, safety_ratio=1.0, internal_open_orders=15)).blocked_risk_hint
    near = evaluate(CapacityInputs(limit=30, safety_ratio=1.0, internal_open_orders=25)).blocked_risk_hint
    assert "near_open_order_cap" in near and "open_order_caution" not in near


@pytest.mark.parametrize(
    ("current", "cancels", "reason"),
    [
        (161, 0, "headroom 7 < 10 (stop)"),
        (150, 0, "headroom 18 < 20 (caution)"),
        (2, 0, "headroom 166 >= 20, no partial-cancel in 24h (normal)"),
        (2, 1, "1 partial-cancel in 24h > 0 (stop)"),
        (161, 2, "2 partial-cancel in 24h > 0; headroom 7 < 10 (stop)"),
    ],
)
def test_status_reason_states_the_numbers_behind_the_band(current, cancels, reason):
    h = evaluate(CapacityInputs(internal_open_orders=current, partial_cancel_1d=cancels))
    assert h.status_reason == reason


def test_block_has_the_spec_fields_in_the_spec_order_plus_status_reason():
    h = evaluate(CapacityInputs())
    keys = list(h.to_dict())
    assert keys[:17] == list(SPEC_FIELDS)
    assert len(SPEC_FIELDS) == 17
    assert keys[17:] == ["status_reason"]


def test_limit_below_one_is_treated_as_one():
    h = evaluate(CapacityInputs(limit=0, internal_open_orders=0))
    assert h.open_order_limit_configured == 1
    assert h.open_orders_safe_cap == 1
