"""The rollout commands over a Prometheus (or a store it writes to) that holds the exporter's history:
`baseline` (the spec's 7-day T3 baseline) and `advise` (the scaling playbook as one decision).

    kraken-capacity-exporter baseline --prometheus URL [--pair P] [--days 7] [--end TIME]
                                      [--format table|json|markdown] [--plot FILE.png]
    kraken-capacity-exporter advise --prometheus URL --pair P [--at TIME] [--format text|json]

URL is any Prometheus-compatible query API (a path prefix allowed); the store flags (`--prometheus-username`,
`--prometheus-password-file`, `--prometheus-bearer-token-file`, `--prometheus-ca-file`, `--prometheus-cert-file`,
`--prometheus-key-file`, `--prometheus-header`) say how to reach it (`exporter/sources/store_access.py`).

Exit codes: baseline 0, or 3 when the store cannot be read; advise 0 add_slot, 1 wait, 2 stop/frozen,
3 unknown; both 2 for a bad flag (one line). With `--format json` stdout holds only JSON, whatever happens;
messages go to stderr. The numbers are defined in `exporter/core/baseline.py` and `exporter/core/playbook.py`.

One module per part: `flags.py` (argument parsing), `reading.py` (the queries: which series, read how),
`report.py` (the baseline report's JSON), `tables.py` (text and Markdown), `chart.py` (the PNG), and
`command.py` (the entry point: exit codes and output streams).
"""

from .command import main
from .flags import COMMAND_HELP

__all__ = ["COMMAND_HELP", "main"]
