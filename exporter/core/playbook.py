"""The spec's scaling playbook as one decision: "may I add a slot to this pair now?", from raw samples.

Rules, first match wins (thresholds from `thresholds.py`, shared with the alert rules):

1. any partial-cancel in the 24h before -> `frozen` (exit 2): v0.2 partial-cancel handling comes first;
2. band stop now -> `stop` (exit 2);
3. any stop sample in the 72h before -> `wait` (exit 1) until 72h after the last one;
4. caution now -> `add_slot` (exit 0) unless a slot was added in the 24h before, else `wait` (exit 1) until 24h
   after that addition;
5. normal now -> `add_slot` (exit 0).

And the second capacity (issue 18): where the rules would allow a slot, the answer is `wait` (exit 1) instead when
Kraken's order rate counter peaked above 80% of its threshold in the 24h before, or an order was refused with
`EOrder:Rate limit exceeded` then: a slot adds order traffic. The wait runs until that peak or refusal is a day old.

"Now" is the latest band sample no older than `BLIND_AFTER_SECONDS` before `at`; with none, the answer is
`unknown` (exit 3), as it is when Prometheus cannot be read or does not know the pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .capacity import BAND_CAUTION, BAND_NORMAL, BAND_STOP, BAND_VALUE
from .samples import Sample, counter_increase, in_window, positive_steps, scrape_interval
from .thresholds import (
    BLIND_AFTER_SECONDS,
    CAUTION_MAX_SLOTS_PER_DAY,
    CAUTION_SLOT_WINDOW_SECONDS,
    ORDER_RATE_HIGH_RATIO,
    PARTIAL_CANCEL_FREEZE_SECONDS,
    RESUME_NORMAL_SECONDS,
)

ADD_SLOT, WAIT, STOP, FROZEN, UNKNOWN = "add_slot", "wait", "stop", "frozen", "unknown"
EXIT_CODES = {ADD_SLOT: 0, WAIT: 1, STOP: 2, FROZEN: 2, UNKNOWN: 3}
# How far back the advisor needs samples: the longest rule, plus a day to find where a normal run began.
LOOKBACK_SECONDS = max(RESUME_NORMAL_SECONDS, PARTIAL_CANCEL_FREEZE_SECONDS, CAUTION_SLOT_WINDOW_SECONDS) + 86400.0
_BAND_NAME = {value: name for name, value in BAND_VALUE.items()}


@dataclass(frozen=True)
class AdviceInputs:
    """Raw samples of one pair up to `at`, reaching back at least LOOKBACK_SECONDS."""

    at: float
    band: Sequence[Sample]
    slots: Sequence[Sample] = ()
    partial_cancel_total: Sequence[Sample] = ()
    rate_peak: Sequence[Sample] = ()  # krakenbot_order_rate_peak_1d
    rate_threshold: Sequence[Sample] = ()  # krakenbot_order_rate_threshold
    rate_limited_total: Sequence[Sample] = ()  # krakenbot_order_rate_limited_total


@dataclass(frozen=True)
class Advice:
    pair: str
    at: float
    decision: str
    exit_code: int
    band: str | None
    reasons: list[str] = field(default_factory=list)
    stop_last_seen: float | None = None
    normal_since: float | None = None
    wait_seconds: float | None = None
    slots_added_24h: int | None = None
    partial_cancel_24h: int | None = None
    order_rate_peak_1d: float | None = None
    order_rate_threshold: float | None = None
    order_rate_limited_24h: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def stamp(t: float) -> str:
    """Unix seconds as RFC 3339 UTC, for sentences."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def unknown(pair: str, at: float, reason: str) -> Advice:
    """The answer when the data cannot say: exit 3, the reason as a sentence."""
    return Advice(pair=pair, at=at, decision=UNKNOWN, exit_code=EXIT_CODES[UNKNOWN], band=None, reasons=[reason])


def current_band(band: Sequence[Sample], at: float) -> Sample | None:
    """The latest band sample in (at - BLIND_AFTER_SECONDS, at], or None."""
    recent = in_window(band, at - BLIND_AFTER_SECONDS, at)
    return recent[-1] if recent else None


def normal_run_start(band: Sequence[Sample], at: float) -> float | None:
    """When the current run of normal samples began: the first normal sample after the last other one."""
    start = None
    for t, v in reversed(in_window(band, float("-inf"), at)):
        if v != BAND_VALUE[BAND_NORMAL]:
            break
        start = t
    return start


def advise(pair: str, inputs: AdviceInputs) -> Advice:
    """Apply the playbook at `inputs.at` (see the module docstring)."""
    at = inputs.at
    now = current_band(inputs.band, at)
    band = _BAND_NAME.get(int(now[1])) if now is not None and float(now[1]).is_integer() else None
    if band is None:
        before = in_window(inputs.band, float("-inf"), at)
        last = f"; the last one is from {stamp(before[-1][0])}" if before else ""
        return unknown(pair, at, f"No band sample for {pair} in the {BLIND_AFTER_SECONDS:.0f} s before {stamp(at)}{last}.")
    notes: list[str] = []
    cancels = counter_increase(inputs.partial_cancel_total, at - PARTIAL_CANCEL_FREEZE_SECONDS, at)
    if cancels is None:
        notes.append("No partial-cancel counter sample in the 24 h before; counted as 0.")
    added = positive_steps(inputs.slots, at - CAUTION_SLOT_WINDOW_SECONDS, at)
    if added is None:
        notes.append("No slot sample in the 24 h before; counted as 0 slots added.")
    stops = [t for t, v in in_window(inputs.band, at - RESUME_NORMAL_SECONDS, at) if v == BAND_VALUE[BAND_STOP]]
    last_stop = stops[-1] if stops else None
    normal_since = normal_run_start(inputs.band, at) if band == BAND_NORMAL else None
    decision, wait, reasons = _decide(pair, at, band, last_stop, normal_since, cancels, added)
    peak, threshold, limited = _rate(inputs, at)
    if decision == ADD_SLOT:
        decision, wait, reasons = _rate_decision(pair, at, decision, wait, reasons, peak, threshold, limited)
    if peak is None and not inputs.rate_limited_total:
        notes.append("Kraken's order rate counter is unknown here (no rate series: no executions stream, or scrape "
                     "mode): its wall was not checked.")
    return Advice(
        pair=pair, at=at, decision=decision, exit_code=EXIT_CODES[decision], band=band,
        reasons=reasons + notes + _coverage_note(inputs.band, at),
        stop_last_seen=last_stop,
        normal_since=normal_since,
        wait_seconds=wait,
        slots_added_24h=added[0] if added else 0,
        partial_cancel_24h=cancels[0] if cancels else 0,
        order_rate_peak_1d=None if peak is None else peak[0],
        order_rate_threshold=threshold,
        order_rate_limited_24h=limited[0] if limited else (None if not inputs.rate_limited_total else 0),
    )


def _rate(inputs: AdviceInputs, at: float) -> tuple[tuple[float, float] | None, float | None,
                                                    tuple[int, float | None] | None]:
    """The order rate counter's 24h peak now (with when it was first reached), its threshold, and the rejections
    of the 24h before (with the last one's time); None where the store has no such series."""
    peak_now = current_band(inputs.rate_peak, at)
    threshold_now = current_band(inputs.rate_threshold, at)
    peak = None
    if peak_now is not None:
        value = peak_now[1]
        reached = next((t for t, v in in_window(inputs.rate_peak, at - 86400.0, at) if v >= value), peak_now[0])
        peak = (value, reached)
    limited = counter_increase(inputs.rate_limited_total, at - 86400.0, at) if inputs.rate_limited_total else None
    return peak, None if threshold_now is None else threshold_now[1], limited


def _rate_decision(pair: str, at: float, decision: str, wait: float | None, reasons: list[str],
                   peak: tuple[float, float] | None, threshold: float | None,
                   limited: tuple[int, float | None] | None) -> tuple[str, float | None, list[str]]:
    """`wait` instead of `add_slot` when the rate counter was near its threshold or refused an order in the 24h."""
    extra: list[str] = []
    until = at
    if peak is not None and threshold and peak[0] > ORDER_RATE_HIGH_RATIO * threshold:
        extra.append(f"Adding a slot adds order traffic: the rate counter of {pair} peaked at {peak[0]:g} of "
                     f"{threshold:g} in the 24 h before {stamp(at)} (above {ORDER_RATE_HIGH_RATIO:.0%}).")
        until = max(until, peak[1] + 86400.0)
    if limited and limited[0] > 0:
        extra.append(f"Kraken refused {limited[0]} order(s) of {pair} with EOrder:Rate limit exceeded in the 24 h "
                     f"before {stamp(at)}, the last at {stamp(limited[1] or at)}: adding a slot adds order traffic.")
        until = max(until, (limited[1] or at) + 86400.0)
    if not extra:
        return decision, wait, reasons
    left = until - at
    return WAIT, left, reasons + extra + [f"Wait until that is a day old: {hours(left)}, at {stamp(until)}."]


def _decide(pair: str, at: float, band: str, last_stop: float | None, normal_since: float | None,
            cancels: tuple[int, float | None] | None,
            added: tuple[int, float | None] | None) -> tuple[str, float | None, list[str]]:
    if cancels and cancels[0] > 0:
        return FROZEN, None, [
            f"{cancels[0]} partial-cancel(s) of {pair} in the 24 h before {stamp(at)}, the last seen at "
            f"{stamp(cancels[1] or at)}: freeze scaling and put the v0.2 partial-cancel handling first (playbook rule 4)."
        ]
    if band == BAND_STOP:
        return STOP, None, [f"{pair} is in the stop band at {stamp(at)}: add no slot (playbook rule 3)."]
    if last_stop is not None:
        wait = last_stop + RESUME_NORMAL_SECONDS - at
        return WAIT, wait, [
            f"{pair} was last seen in the stop band at {stamp(last_stop)}, {hours(at - last_stop)} before {stamp(at)}: "
            f"scaling resumes only {RESUME_NORMAL_SECONDS / 3600:g} h after the last stop (playbook rule 5), "
            f"in {hours(wait)} at {stamp(at + wait)}; the band is {band} now."
        ]
    if band == BAND_CAUTION:
        if added and added[0] >= CAUTION_MAX_SLOTS_PER_DAY:
            wait = (added[1] or at) + CAUTION_SLOT_WINDOW_SECONDS - at
            return WAIT, wait, [
                f"{pair} is in caution and {added[0]} slot(s) were added in the 24 h before {stamp(at)}, the last at "
                f"{stamp(added[1] or at)}: at most {CAUTION_MAX_SLOTS_PER_DAY} a day (playbook rule 2); the next may be "
                f"added in {hours(wait)} at {stamp(at + wait)}."
            ]
        return ADD_SLOT, None, [
            f"{pair} is in caution with no slot added in the 24 h before {stamp(at)} and no stop in the 72 h before: "
            f"one slot may be added today (playbook rule 2)."
        ]
    since = f" since {stamp(normal_since)}" if normal_since is not None else ""
    return ADD_SLOT, None, [
        f"{pair} is in normal{since} with no stop in the 72 h before {stamp(at)} and no partial-cancel "
        f"in the 24 h before: slots may be added (playbook rule 1)."
    ]


def _coverage_note(band: Sequence[Sample], at: float) -> list[str]:
    """Sentences when the band data of the 72h window has holes, since a stop inside one cannot be seen."""
    start = at - RESUME_NORMAL_SECONDS
    window = in_window(band, start, at)
    interval = scrape_interval(band)
    if not window or interval is None:
        return []
    notes = []
    if window[0][0] - start > 2 * interval:
        notes.append(f"Band data begins at {stamp(window[0][0])}, less than 72 h before {stamp(at)}: "
                     f"a stop before it cannot be seen.")
    gaps = [(a, b) for (a, _), (b, _) in zip(window, window[1:], strict=False) if b - a > 2 * interval]
    if gaps:
        longest = max(gaps, key=lambda g: g[1] - g[0])
        notes.append(f"Band data has {len(gaps)} gap(s) in the 72 h before, {hours(sum(b - a for a, b in gaps))} in all "
                     f"(the longest from {stamp(longest[0])} to {stamp(longest[1])}): a stop during a gap cannot be seen.")
    return notes
