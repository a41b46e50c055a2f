"""The rollout commands over a Prometheus that holds the exporter's history: `baseline` (the spec's 7-day T3
baseline) and `advise` (the scaling playbook as one decision).

    kraken-capacity-exporter baseline --prometheus URL [--pair P] [--days 7] [--end TIME]
                                      [--format table|json|markdown] [--plot FILE.png]
    kraken-capacity-exporter advise --prometheus URL --pair P [--at TIME] [--format text|json]

Exit codes: baseline 0, or 3 when Prometheus cannot be read; advise 0 add_slot, 1 wait, 2 stop/frozen,
3 unknown; both 2 for a bad flag (one line). With `--format json` stdout holds only JSON, whatever happens;
messages go to stderr. The numbers are defined in `exporter/core/baseline.py` and `exporter/core/playbook.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn

from .config import _int, _pairs, _url
from .core.baseline import DAY_SECONDS, FillTimes, PairHistory, choose_fill, day_windows, pair_report
from .core.naming import PREFIX
from .core.pairs import PairNames
from .core.playbook import LOOKBACK_SECONDS, Advice, AdviceInputs, advise, stamp, unknown
from .core.samples import Sample, as_number
from .sources.prometheus_history import PrometheusHistory, PrometheusHistoryError, Series

PROG = "kraken-capacity-exporter"
COMMAND_HELP = {
    "baseline": "per-day baseline of fill times, partial fills, utilization and bands from Prometheus' history",
    "advise": "the scaling playbook at a moment: may a slot be added to the pair? (exit 0 yes, 1 wait, 2 no, 3 unknown)",
}
EXIT_BAD_FLAG = 2
EXIT_NO_DATA = 3

# PairHistory field -> the exporter's series.
HISTORY_SERIES = {
    "band": f"{PREFIX}_status_band",
    "kraken_available": f"{PREFIX}_kraken_data_available",
    "utilization": f"{PREFIX}_open_orders_utilization_ratio",
    "headroom": f"{PREFIX}_open_orders_headroom",
    "slots": f"{PREFIX}_slots",
    "drift": f"{PREFIX}_open_orders_drift",
    "partial_open_total": f"{PREFIX}_partial_fill_open_events_total",
    "partial_cancel_total": f"{PREFIX}_partial_fill_cancel_events_total",
}
FILL_MEDIAN = f"{PREFIX}_fill_duration_median_1d_seconds"
FILL_P95 = f"{PREFIX}_fill_duration_p95_1d_seconds"
FILL_BUCKETS = f"{PREFIX}_fill_duration_seconds_bucket"


class UsageError(Exception):
    """A bad flag; the message names it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------------- flags

def parse_time(raw: str) -> float:
    """RFC 3339 (with a zone: `2026-11-25T12:00:00Z`) or Unix seconds."""
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{raw!r} is neither RFC 3339 (2026-11-25T12:00:00Z) nor Unix seconds") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{raw!r} has no time zone (add Z or +00:00)") from None
        value = parsed.timestamp()
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{raw!r} is not a time after 1970")
    return value


def _labels(raw: str) -> list[str]:
    """The labels of the pairs given, comma-separated, any spelling; one pair given twice is an error."""
    return [PairNames.offline(item).label for item in _pairs(raw)]


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"{PROG} {command}", description=COMMAND_HELP[command])
    parser.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL, e.g. http://localhost:9090")
    if command == "baseline":
        parser.add_argument("--pair", metavar="P", help="pair(s), comma-separated (default: every pair Prometheus has)")
        parser.add_argument("--days", default="7", help="number of days, each 24 h, ending at --end (default 7)")
        parser.add_argument("--end", metavar="TIME", help="end of the last day: RFC 3339 or Unix seconds (default now)")
        parser.add_argument("--format", default="table", choices=("table", "json", "markdown"))
        parser.add_argument("--plot", metavar="FILE.png", help="also draw the days as a PNG chart")
    else:
        parser.add_argument("--pair", required=True, metavar="P", help="the pair to advise on")
        parser.add_argument("--at", metavar="TIME", help="moment to evaluate: RFC 3339 or Unix seconds (default now)")
        parser.add_argument("--format", default="text", choices=("text", "json"))
    return parser


def _checked(name: str, parse: Callable[[str], Any], raw: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def _check_plot(path: str) -> None:
    """`--plot` needs matplotlib (the `plot` extra) and a directory to write into; say so before any query."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot: needs matplotlib: pip install 'kraken-capacity-exporter[plot]'")
    if not Path(path).resolve().parent.is_dir():
        raise UsageError(f"--plot: directory {Path(path).resolve().parent} does not exist")


def _wants_json(argv: Sequence[str]) -> bool:
    args = list(argv)
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in zip(args, args[1:], strict=False))


# ---------------------------------------------------------------------------------------------------- entry

def main(command: str, argv: Sequence[str], now: Callable[[], float] = time.time,
         out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run `baseline` or `advise` with `argv` (the flags after the command); returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser(command).parse_args(list(argv))
        url = _checked("--prometheus", _url, args.prometheus)
        if command == "baseline":
            pairs = _checked("--pair", _labels, args.pair) if args.pair else None
            days = _checked("--days", _int(1, 90), args.days)
            end = _checked("--end", parse_time, args.end) if args.end else now()
            if args.plot:
                _check_plot(args.plot)
            return run_baseline(PrometheusHistory(url), pairs, days, end, args.format, args.plot, out, err)
        pair = _checked("--pair", _labels, args.pair)
        if len(pair) != 1:
            raise UsageError("--pair: advise takes one pair")
        at = _checked("--at", parse_time, args.at) if args.at else now()
        return run_advise(PrometheusHistory(url), pair[0], at, args.format, out)
    except UsageError as exc:
        print(f"{PROG} {command}: error: {exc}", file=err)
        if _wants_json(argv):
            print(json.dumps({"error": str(exc), "exit_code": EXIT_BAD_FLAG}), file=out)
        return EXIT_BAD_FLAG
    except BrokenPipeError:  # `... | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


# ---------------------------------------------------------------------------------------------------- baseline

def run_baseline(prom: PrometheusHistory, pairs: list[str] | None, days: int, end: float, fmt: str,
                 plot: str | None, out: IO[str], err: IO[str]) -> int:
    start = end - days * DAY_SECONDS
    warnings: list[str] = []
    try:
        report, histories = read_baseline(prom, pairs, days, end, warnings)
    except PrometheusHistoryError as exc:
        print(f"{PROG} baseline: {exc}", file=err)
        if fmt == "json":
            print(json.dumps({"prometheus": prom.display_url, "start": start, "end": end, "error": str(exc), "pairs": {}}),
                  file=out)
        return EXIT_NO_DATA
    for warning in warnings:
        print(f"{PROG} baseline: warning: {warning}", file=err)
    if fmt == "json":
        print(json.dumps(report, indent=2), file=out)
    else:
        print(format_baseline(report, markdown=fmt == "markdown"), file=out)
    if plot:
        try:
            plot_baseline(report, histories, plot)
        except OSError as exc:
            print(f"{PROG} baseline: --plot: cannot write {plot}: {exc.strerror or exc}", file=err)
            return EXIT_BAD_FLAG
        print(f"{PROG} baseline: chart written to {plot}", file=err)
    return 0


def read_baseline(prom: PrometheusHistory, pairs: list[str] | None, days: int, end: float,
                  warnings: list[str]) -> tuple[dict[str, Any], dict[str, PairHistory]]:
    """The report of `baseline --format json`, and the samples it was made from (for the chart)."""
    start = end - days * DAY_SECONDS
    if pairs is None:
        pairs = prom.label_values("pair", f'{{__name__=~"{PREFIX}_.+"}}', start, end)
        if not pairs:
            warnings.append(f"no {PREFIX}_* series between {_iso(start)} and {_iso(end)}; give --pair to list a pair anyway")
    histories = read_histories(prom, pairs, start - DAY_SECONDS, end, warnings) if pairs else {}
    fills = read_fills(prom, pairs, [e for _, e in day_windows(end, days)], warnings) if pairs else {}
    report = {
        "prometheus": prom.display_url, "start": as_number(start), "end": as_number(end),
        "pairs": {pair: pair_report(histories[pair], end, days, fills[pair]) for pair in pairs},
    }
    return report, histories


def _pair_filter(pairs: Sequence[str]) -> str:
    return f'{{pair=~"{"|".join(pairs)}"}}'


def _by_pair(series: list[Series], name: str, warnings: list[str]) -> dict[str, list[Sample]]:
    """The samples of each pair; with several series for one pair (two jobs?), the fullest one, and a warning."""
    grouped: dict[str, list[Series]] = {}
    for s in series:
        if s.pair is not None:
            grouped.setdefault(s.pair, []).append(s)
    chosen = {}
    for pair, candidates in grouped.items():
        best = max(candidates, key=lambda s: len(s.samples))
        if len(candidates) > 1:
            warnings.append(f"{len(candidates)} series of {name} for pair {pair}; using {best.labels} (most samples)")
        chosen[pair] = best.samples
    return chosen


def read_histories(prom: PrometheusHistory, pairs: list[str], start: float, end: float,
                   warnings: list[str]) -> dict[str, PairHistory]:
    samples: dict[str, dict[str, list[Sample]]] = {pair: {} for pair in pairs}
    for field_name, metric in HISTORY_SERIES.items():
        for pair, values in _by_pair(prom.raw_samples(metric + _pair_filter(pairs), start, end), metric, warnings).items():
            if pair in samples:
                samples[pair][field_name] = values
    return {pair: PairHistory(**fields) for pair, fields in samples.items()}


def _latest_values(series: list[Series], expr: str, warnings: list[str]) -> dict[str, float]:
    values = {}
    for pair, samples in _by_pair(series, expr, warnings).items():
        if samples and math.isfinite(samples[-1][1]):
            values[pair] = samples[-1][1]
    return values


def _values_at_day_ends(prom: PrometheusHistory, expr: str, day_ends: list[float],
                        warnings: list[str]) -> list[dict[str, float]]:
    """Per day end, what an instant query of `expr` there answers, from one range query with a step of a day
    (its end is padded by half a step so that rounding to milliseconds cannot drop the last day)."""
    per_day: list[list[Series]] = [[] for _ in day_ends]
    for s in prom.query_range(expr, day_ends[0], day_ends[-1] + DAY_SECONDS / 2, DAY_SECONDS):
        for t, v in s.samples:
            per_day[round((t - day_ends[0]) / DAY_SECONDS)].append(Series(s.labels, [(t, v)]))
    return [_latest_values(series, expr, warnings) for series in per_day]


def read_fills(prom: PrometheusHistory, pairs: list[str], day_ends: list[float],
               warnings: list[str]) -> dict[str, list[FillTimes]]:
    """Each day's median/p95 fill time: the exporter's 24h gauges at the day's end (as an instant query sees them,
    so a gauge that went stale is absent), else PromQL's `histogram_quantile` over the day's `increase()` of the
    fill histogram at the day's end. One range query per expression, stepping from day end to day end."""
    selector = _pair_filter(pairs)
    median = _values_at_day_ends(prom, FILL_MEDIAN + selector, day_ends, warnings)
    p95 = _values_at_day_ends(prom, FILL_P95 + selector, day_ends, warnings)
    hist: dict[float, list[dict[str, float]]] = {q: [{} for _ in day_ends] for q in (0.5, 0.95)}
    if any(pair not in m and pair not in p for m, p in zip(median, p95, strict=True) for pair in pairs):
        for q in hist:
            expr = f"histogram_quantile({q}, sum by (pair, le) (increase({FILL_BUCKETS}{selector}[{int(DAY_SECONDS)}s])))"
            hist[q] = _values_at_day_ends(prom, expr, day_ends, warnings)
    return {pair: [choose_fill((median[i].get(pair), p95[i].get(pair)),
                               (hist[0.5][i].get(pair), hist[0.95][i].get(pair))) for i in range(len(day_ends))]
            for pair in pairs}


# ---------------------------------------------------------------------------------------------------- tables

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
)


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


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


def format_baseline(report: dict[str, Any], markdown: bool = False) -> str:
    """The report as one aligned text table (or a Markdown table) per pair; the last row is the whole span."""
    blocks = [f"Baseline from {report['prometheus']}, {_iso(report['start'])} to {_iso(report['end'])} UTC"]
    for pair, data in report["pairs"].items():
        header = ["day ending (UTC)", *(name for name, _ in COLUMNS)]
        rows = [[_iso(day["end"]), *(cell(day) for _, cell in COLUMNS)] for day in data["days"]]
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


# ---------------------------------------------------------------------------------------------------- advise

def run_advise(prom: PrometheusHistory, pair: str, at: float, fmt: str, out: IO[str]) -> int:
    advice = read_advice(prom, pair, at)
    if fmt == "json":
        print(json.dumps(advice.as_json(), indent=2), file=out)
    else:
        print(format_advice(advice), file=out)
    return advice.exit_code


def read_advice(prom: PrometheusHistory, pair: str, at: float) -> Advice:
    """The playbook's decision for `pair` at `at`; `unknown` when Prometheus cannot be read or has no such pair."""
    band_metric = HISTORY_SERIES["band"]
    try:
        known = prom.label_values("pair", band_metric)
        if pair not in known:
            has = ", ".join(known) if known else "none"
            return unknown(pair, at, f"Prometheus at {prom.display_url} has no {band_metric} series for pair {pair} "
                                     f"(pairs it has: {has}).")
        warnings: list[str] = []
        start = at - LOOKBACK_SECONDS
        series = {name: _by_pair(prom.raw_samples(f'{HISTORY_SERIES[name]}{{pair="{pair}"}}', start, at),
                                 HISTORY_SERIES[name], warnings).get(pair, [])
                  for name in ("band", "slots", "partial_cancel_total")}
    except PrometheusHistoryError as exc:
        return unknown(pair, at, str(exc))
    advice = advise(pair, AdviceInputs(at=at, band=series["band"], slots=series["slots"],
                                       partial_cancel_total=series["partial_cancel_total"]))
    if warnings:
        advice.reasons.extend(w[0].upper() + w[1:] + "." for w in warnings)
    return advice


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


# ---------------------------------------------------------------------------------------------------- chart

BAND_COLOURS = {0: "#43a047", 1: "#fbc02d", 2: "#e53935"}
NO_DATA = "#eeeeee"
FILL_COLOURS = ("#1565c0", "#bbdefb")
UTIL_COLOURS = ("#ef6c00", "#ffe0b2")


def plot_baseline(report: dict[str, Any], histories: dict[str, PairHistory], path: str) -> None:
    """One panel group per pair: fill time per day (median in front of p95), utilization per day (mean in front
    of peak, against the safe cap), and the band over time as a coloured strip, grey where there is no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(report["pairs"])
    fig = plt.figure(figsize=(11, 5.4 * max(1, len(pairs))), dpi=100, layout="constrained")
    if not pairs:
        fig.text(0.5, 0.5, "no pair with data", ha="center", va="center", fontsize=14, color="#757575")
    else:
        grid = fig.add_gridspec(3 * len(pairs), 1, height_ratios=[3, 2, 0.5] * len(pairs))
        for i, pair in enumerate(pairs):
            axes = [fig.add_subplot(grid[3 * i + j]) for j in range(3)]
            _plot_pair(axes, pair, report, histories.get(pair))
    fig.savefig(path)
    plt.close(fig)


def _plot_pair(axes: list[Any], pair: str, report: dict[str, Any], history: PairHistory | None) -> None:
    from matplotlib.patches import Patch

    fill, util, strip = axes
    data = report["pairs"][pair]
    days, summary = data["days"], data["summary"]
    xs = list(range(len(days)))
    medians = [d["median_fill_seconds"] for d in days]
    p95s = [d["p95_fill_seconds"] for d in days]
    top = max([v for v in p95s + medians if v is not None], default=1.0)
    unit, scale = ("h", 3600.0) if top >= 3 * 3600 else ("min", 60.0) if top >= 180 else ("s", 1.0)
    _bars(fill, xs, [None if v is None else v / scale for v in p95s], 0.75, FILL_COLOURS[1], "p95",
          lambda v: _duration(v * scale), "#546e7a")
    _bars(fill, xs, [None if v is None else v / scale for v in medians], 0.45, FILL_COLOURS[0], "median",
          lambda v: _duration(v * scale), "white", inside=True)
    for x, d in zip(xs, days, strict=True):
        if d["fill_source"] == "histogram" and d["p95_fill_seconds"] is not None:
            fill.text(x, d["p95_fill_seconds"] / scale * 0.55, "from the\nhistogram", ha="center", va="center",
                      fontsize=7, color="#546e7a", zorder=3)
        if not d["coverage_ratio"]:
            fill.text(x, 0.45, "no data", transform=fill.get_xaxis_transform(), ha="center", color="#9e9e9e")
    fill.set_ylim(0, 1.18 * top / scale)
    fill.set_ylabel(f"fill time ({unit})")
    fill.set_title(_headline(pair, report, summary), loc="left", fontsize=11, fontweight="bold")

    peaks = [None if d["utilization_peak_ratio"] is None else 100 * d["utilization_peak_ratio"] for d in days]
    means = [None if d["utilization_mean_ratio"] is None else 100 * d["utilization_mean_ratio"] for d in days]
    _bars(util, xs, peaks, 0.75, UTIL_COLOURS[1], "peak", lambda v: f"{v:.0f}%", "#8d6e63")
    _bars(util, xs, means, 0.45, UTIL_COLOURS[0], "mean", lambda v: f"{v:.0f}%", "white", inside=True)
    util.axhline(100, color="#c62828", linewidth=1, linestyle="--")
    util.text(1.005, 100, "safe cap", transform=util.get_yaxis_transform(), va="center", fontsize=8, color="#c62828")
    util.set_ylim(0, max([120.0, *(1.12 * p for p in peaks if p is not None)]))
    util.set_ylabel("utilization")
    util.yaxis.set_major_formatter(lambda v, _: f"{v:.0f}%")

    strip.set_facecolor(NO_DATA)
    interval = data["scrape_interval_seconds"]
    if history is not None and interval:
        day0, width = report["start"], DAY_SECONDS
        for value, (t0, t1) in _band_runs(history.band, report["start"], report["end"], interval):
            strip.axvspan((t0 - day0) / width - 0.5, (t1 - day0) / width - 0.5,
                          color=BAND_COLOURS.get(int(value), "#9e9e9e"), linewidth=0)
    strip.set_yticks([])
    strip.set_ylabel("band", rotation=0, ha="right", va="center")
    handles = [Patch(color=c, label=n) for n, c in zip(("normal", "caution", "stop"), BAND_COLOURS.values(), strict=True)]
    handles.append(Patch(facecolor=NO_DATA, edgecolor="#bdbdbd", label="no data"))
    strip.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, -0.75), ncols=4, frameon=False, fontsize=8)

    for ax in (fill, util, strip):
        ax.set_xlim(-0.5, len(days) - 0.5)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        for x in xs[1:]:
            ax.axvline(x - 0.5, color="#e0e0e0", linewidth=0.8, zorder=0)
        ax.set_xticks(xs)
        ax.tick_params(length=0)
    for ax in (fill, util):
        ax.grid(axis="y", color="#eeeeee", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.set_xticklabels([])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", frameon=False, ncols=2, fontsize=8)
    strip.set_xticklabels([_day_label(d) for d in days], fontsize=8)


def _headline(pair: str, report: dict[str, Any], summary: dict[str, Any]) -> str:
    parts = [pair, f"{len(report['pairs'][pair]['days'])} days to {_iso(report['end'])} UTC"]
    if summary["median_fill_seconds"] is not None:
        parts.append(f"median fill {_duration(summary['median_fill_seconds'])}")
    if summary["seconds_in_band"]:
        bands = summary["seconds_in_band"]
        parts.append(f"caution {bands['caution'] / 3600:.0f} h · stop {bands['stop'] / 3600:.0f} h")
    if summary["partial_cancel_events"]:
        parts.append(f"partial-cancels {summary['partial_cancel_events']}")
    return "  ·  ".join(parts)


def _day_label(day: dict[str, Any]) -> str:
    start, end = (datetime.fromtimestamp(day[k], UTC) for k in ("start", "end"))
    if start.hour == 0 and start.minute == 0 and end.hour == 0 and end.minute == 0:
        return start.strftime("%a %b %d")
    return f"{start:%b %d %H:%M} →\n{end:%b %d %H:%M}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest:02d}s"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _bars(ax: Any, xs: list[int], values: list[float | None], width: float, colour: str, label: str,
          text: Callable[[float], str], text_colour: str, inside: bool = False) -> None:
    points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
    if not points:
        return
    ax.bar([x for x, _ in points], [v for _, v in points], width=width, color=colour, label=label, zorder=2)
    for x, v in points:
        ax.annotate(text(v), (x, v), xytext=(0, -3 if inside else 2), textcoords="offset points", ha="center",
                    va="top" if inside else "bottom", fontsize=7, color=text_colour, zorder=3)


def _band_runs(band: Sequence[Sample], start: float, end: float, interval: float) -> list[tuple[float, tuple[float, float]]]:
    """Runs of one band value: each sample stands for the scrape interval before it; a longer gap ends a run."""
    runs: list[tuple[float, tuple[float, float]]] = []
    for t, v in band:
        if not start < t <= end:
            continue
        if runs and runs[-1][0] == v and t - runs[-1][1][1] <= 1.5 * interval:
            runs[-1] = (v, (runs[-1][1][0], t))
        else:
            runs.append((v, (max(start, t - interval), t)))
    return runs
