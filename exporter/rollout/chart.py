"""The baseline report as a PNG chart (matplotlib, imported only when a chart is asked for)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..core.baseline import DAY_SECONDS, PairHistory
from ..core.samples import Sample
from .tables import iso

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
    parts = [pair, f"{len(report['pairs'][pair]['days'])} days to {iso(report['end'])} UTC"]
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
