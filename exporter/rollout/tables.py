"""The baseline report as text: an aligned table or a Markdown table per pair; the advice as text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..core.playbook import Advice, stamp

COLUMNS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("coverage", lambda d: _pct(d["coverage_ratio"])),
    ("median s", lambda d: _num(d["median_fill_seconds"], 0)),
    ("p95 s", lambda d: _num(d["p95_fill_seconds"], 0)),
    ("fill from", lambda d: d.get("fill_source") or "-"),
    ("p-open", lambda d: _num(d["partial_open_events"])),
    ("p-cancel", lambda d: _num(d["partial_cancel_events"])),
    ("util peak", lambda d: _pct(d["utilization_peak_ratio"])),
    ("util mean", lambda d: _pct(d["utilization_mean_ratio"])),
    ("headroom min", lambda d: _num(d["headroom_min"])),
    ("slots", lambda d: _slots(d)),
    ("+slots", lambda d: _num(d["slots_added"])),
    ("normal h", lambda d: _band_hours(d, "normal")),
    ("caution h", lambda d: _band_hours(d, "caution")),
    ("stop h", lambda d: _band_hours(d, "stop")),
    ("fallback h", lambda d: _hours(d["seconds_kraken_fallback"])),
    ("drift max", lambda d: _num(d["drift_max_abs"])),
    ("rate peak", lambda d: _rate_peak(d)),
    ("rate refused", lambda d: _num(d.get("order_rate_limited"))),
)


def _rate_peak(day: dict[str, Any]) -> str:
    """The order rate counter's peak of the day against its threshold, e.g. `152/180`."""
    peak, threshold = day.get("order_rate_peak"), day.get("order_rate_threshold")
    if peak is None:
        return "-"
    return f"{peak:.0f}/{threshold:.0f}" if threshold is not None else f"{peak:.0f}"


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 3600:.1f}"


def _band_hours(day: dict[str, Any], band: str) -> str:
    return "-" if day["seconds_in_band"] is None else _hours(day["seconds_in_band"][band])


def _slots(day: dict[str, Any]) -> str:
    if day["slots_start"] is None:
        return "-"
    return f"{day['slots_start']}" if day["slots_start"] == day["slots_end"] else f"{day['slots_start']}→{day['slots_end']}"


def iso(t: float) -> str:
    """Unix seconds as `YYYY-MM-DD HH:MM` (UTC), for table rows and titles."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def format_baseline(report: dict[str, Any], markdown: bool = False) -> str:
    """The report as one aligned text table (or a Markdown table) per pair; the last row is the whole span."""
    blocks = [f"Baseline from {report['prometheus']}, {iso(report['start'])} to {iso(report['end'])} UTC"]
    for pair, data in report["pairs"].items():
        header = ["day ending (UTC)", *(name for name, _ in COLUMNS)]
        rows = [[iso(day["end"]), *(cell(day) for _, cell in COLUMNS)] for day in data["days"]]
        summary = dict(data["summary"], fill_source=None)
        rows.append([f"{len(data['days'])} days", *(cell(summary) for _, cell in COLUMNS)])
        interval = data["scrape_interval_seconds"]
        title = f"{pair}: scrape interval {interval:g} s" if interval else f"{pair}: no band samples in the span"
        blocks.append(_markdown(title, header, rows) if markdown else _text_table(title, header, rows))
    if not report["pairs"]:
        blocks.append("No pair with data.")
    return "\n\n".join(blocks)


def _text_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


def _markdown(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---", *["---:"] * (len(header) - 1)]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[:-1]]
    lines.append("| " + " | ".join(f"**{c}**" if c != "-" else c for c in rows[-1]) + " |")
    return "\n".join(lines)



def format_advice(advice: Advice) -> str:
    band = f", band {advice.band}" if advice.band else ""
    lines = [f"{advice.pair} at {stamp(advice.at)}: {advice.decision.upper().replace('_', ' ')} (exit {advice.exit_code}){band}"]
    lines += [f"  - {reason}" for reason in advice.reasons]
    if advice.decision != "unknown":
        facts = [
            f"stop last seen: {_when(advice.stop_last_seen)}",
            f"normal since: {_when(advice.normal_since)}",
            f"wait: {'-' if advice.wait_seconds is None else f'{advice.wait_seconds / 3600:.1f} h'}",
            f"slots added in 24 h: {advice.slots_added_24h}",
            f"partial-cancels in 24 h: {advice.partial_cancel_24h}",
        ]
        lines.append("  " + "; ".join(facts))
    return "\n".join(lines)


def _when(t: float | None) -> str:
    return "-" if t is None else stamp(t)


