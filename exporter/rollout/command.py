"""The entry point of `baseline` and `advise`: flags in, the store read, the answer out, the exit code back.

With `--format json` stdout holds only JSON, whatever happens; messages go to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

from ..config import _int
from ..core.playbook import unknown
from ..sources.prometheus_history import PrometheusHistory, PrometheusHistoryError
from ..sources.store_access import AccessError, StoreAccess
from .flags import (
    PROG,
    UsageError,
    build_parser,
    check_plot,
    checked,
    pair_labels,
    parse_time,
    store_access,
    store_url,
    wants_json,
)
from .reading import read_advice, read_baseline
from .report import baseline_report, error_report
from .tables import format_advice, format_baseline

EXIT_BAD_FLAG = 2
EXIT_NO_DATA = 3


def main(command: str, argv: Sequence[str], now: Callable[[], float] = time.time,
         out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run `baseline` or `advise` with `argv` (the flags after the command); returns the exit code."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser(command).parse_args(list(argv))
        url = checked("--prometheus", store_url, args.prometheus)
        access = store_access(args)
        if command == "baseline":
            pairs = checked("--pair", pair_labels, args.pair) if args.pair else None
            days = checked("--days", _int(1, 90), args.days)
            end = checked("--end", parse_time, args.end) if args.end else now()
            if args.plot:
                check_plot(args.plot)
            return run_baseline(_store(url, access), pairs, days, end, args.format, args.plot, out, err)
        pair = checked("--pair", pair_labels, args.pair)
        if len(pair) != 1:
            raise UsageError("--pair: advise takes one pair")
        at = checked("--at", parse_time, args.at) if args.at else now()
        return run_advise(_store(url, access), pair[0], at, args.format, out, err)
    except UsageError as exc:
        print(f"{PROG} {command}: error: {exc}", file=err)
        if wants_json(argv):
            print(json.dumps({"error": str(exc), "exit_code": EXIT_BAD_FLAG}), file=out)
        return EXIT_BAD_FLAG
    except BrokenPipeError:  # `... | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _store(url: str, access: StoreAccess) -> PrometheusHistory:
    """The store's client; its credential files read and its TLS files checked now, before any query."""
    try:
        return PrometheusHistory(url, access=access.open(tls=url.lower().startswith("https://")))
    except AccessError as exc:
        raise UsageError(str(exc)) from None


def _json(value: object) -> str:
    """JSON as RFC 8259 has it: a NaN or an infinity (which `json` would print bare) is a ValueError."""
    return json.dumps(value, indent=2, allow_nan=False)


def run_baseline(prom: PrometheusHistory, pairs: list[str] | None, days: int, end: float, fmt: str,
                 plot: str | None, out: IO[str], err: IO[str]) -> int:
    warnings: list[str] = []
    try:
        data = read_baseline(prom, pairs, days, end, warnings, keep_band=bool(plot))
    except PrometheusHistoryError as exc:
        return _baseline_failed(prom, days, end, fmt, str(exc), out, err)
    report = baseline_report(prom.display_url, days, end, data)
    try:
        text = _json(report) if fmt == "json" else None
    except ValueError:  # a guard: every number is checked to be finite where it is read
        return _baseline_failed(prom, days, end, fmt, "The report holds a number JSON cannot carry (NaN or an "
                                "infinity); it is not printed.", out, err)
    for warning in dict.fromkeys(warnings):
        print(f"{PROG} baseline: warning: {warning}", file=err)
    if text is not None:
        print(text, file=out)
    else:
        print(format_baseline(report, markdown=fmt == "markdown"), file=out)
    if plot:
        from .chart import plot_baseline

        try:
            plot_baseline(report, data.histories, plot)
        except OSError as exc:
            print(f"{PROG} baseline: --plot: cannot write {plot}: {exc.strerror or exc}", file=err)
            return EXIT_BAD_FLAG
        print(f"{PROG} baseline: chart written to {plot}", file=err)
    return 0


def _baseline_failed(prom: PrometheusHistory, days: int, end: float, fmt: str, reason: str, out: IO[str],
                     err: IO[str]) -> int:
    print(f"{PROG} baseline: {reason}", file=err)
    if fmt == "json":
        print(json.dumps(error_report(prom.display_url, days, end, reason)), file=out)
    return EXIT_NO_DATA


def run_advise(prom: PrometheusHistory, pair: str, at: float, fmt: str, out: IO[str], err: IO[str]) -> int:
    """The decision on stdout. When the store cannot be read: `unknown` (exit 3), said in one line on stderr, and
    with `--format json` the unknown decision on stdout too."""
    try:
        advice = read_advice(prom, pair, at)
    except PrometheusHistoryError as exc:
        print(f"{PROG} advise: {exc}", file=err)
        advice = unknown(pair, at, str(exc))
        if fmt == "json":
            print(_json(advice.as_json()), file=out)
        return advice.exit_code
    if fmt == "json":
        print(_json(advice.as_json()), file=out)
    else:
        print(format_advice(advice), file=out)
    return advice.exit_code
