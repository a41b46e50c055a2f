"""Argument parsing of `baseline` and `advise`: the flags, their values checked, a bad one a `UsageError`."""

from __future__ import annotations

import argparse
import importlib.util
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from ..config import _pairs
from ..core.pairs import PairNames
from ..sources.store_access import HEADER_NAME, StoreAccess

PROG = "kraken-capacity-exporter"
COMMAND_HELP = {
    "baseline": "per-day baseline of fill times, partial fills, utilization and bands from Prometheus' history",
    "advise": "the scaling playbook at a moment: may a slot be added to the pair? (exit 0 yes, 1 wait, 2 no, 3 unknown)",
}


class UsageError(Exception):
    """A bad flag; the message names it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


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


def pair_labels(raw: str) -> list[str]:
    """The labels of the pairs given, comma-separated, any spelling; one pair given twice is an error."""
    return [PairNames.offline(item).label for item in _pairs(raw)]


# StoreAccess field -> its flag, so that the store client's messages name the flag to fix.
STORE_FLAGS = {
    "username": "--prometheus-username",
    "password_file": "--prometheus-password-file",
    "bearer_token_file": "--prometheus-bearer-token-file",
    "ca_file": "--prometheus-ca-file",
    "cert_file": "--prometheus-cert-file",
    "key_file": "--prometheus-key-file",
    "headers": "--prometheus-header",
}


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"{PROG} {command}", description=COMMAND_HELP[command])
    parser.add_argument("--prometheus", required=True, metavar="URL",
                        help="base URL of a Prometheus query API: http://localhost:9090, http://vm:8428/prometheus, "
                             "http://vmselect:8481/select/0/prometheus, https://mimir.example/prometheus")
    _add_store_flags(parser.add_argument_group("store access (as Prometheus' http_config names them)"))
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


def _add_store_flags(group: Any) -> None:
    group.add_argument(STORE_FLAGS["username"], metavar="NAME", help="basic auth user (with --prometheus-password-file)")
    group.add_argument(STORE_FLAGS["password_file"], metavar="FILE", help="file holding the basic auth password")
    group.add_argument(STORE_FLAGS["bearer_token_file"], metavar="FILE",
                       help="file holding a bearer token (Authorization: Bearer), instead of basic auth")
    group.add_argument(STORE_FLAGS["ca_file"], metavar="FILE",
                       help="PEM CA to verify the store's certificate by (wins over REQUESTS_CA_BUNDLE)")
    group.add_argument(STORE_FLAGS["cert_file"], metavar="FILE", help="PEM client certificate for mutual TLS")
    group.add_argument(STORE_FLAGS["key_file"], metavar="FILE", help="its unencrypted PEM key")
    group.add_argument(STORE_FLAGS["headers"], metavar="NAME=VALUE", action="append", default=[],
                       help="an extra header on every request, repeatable (X-Scope-OrgID=TENANT for Mimir)")


def _header(raw: str) -> tuple[str, str]:
    """NAME=VALUE, or curl's `NAME: VALUE` (whichever of `=` and `:` comes first ends the name). A message never
    shows what was given: the value may be a credential, and so may a "name" that is not one."""
    cut = min((i for i in (raw.find("="), raw.find(":")) if i >= 0), default=-1)
    if cut < 0:
        raise ValueError("expected NAME=VALUE (or NAME: VALUE)")
    name, value = raw[:cut].strip(), raw[cut + 1:].strip()
    if not HEADER_NAME.match(name):
        raise ValueError("expected NAME=VALUE: the text before the '=' is not a header name (not shown: it may "
                         "hold the value)")
    return name, value


def store_url(raw: str) -> str:
    """An http(s) URL with a host, checked without showing it (it may hold a password): a password with an
    unencoded `/`, `?` or `#` would send the request to another host, so an `@` after the host is refused."""
    value = str(raw).strip()
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("give an http:// or https:// URL (what was given is not shown: it may hold a password)")
    invalid = "not a valid URL (not shown: it may hold a password)"
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(invalid) from None
    if "@" in value.split("://", 1)[1][len(parts.netloc):]:
        raise ValueError("an '@' after the host: percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, "
                         "%40) or give --prometheus-username and --prometheus-password-file (the URL is not shown: "
                         "it may hold a password)")
    try:
        parts.port  # noqa: B018  # a port that is not a number is a ValueError
    except ValueError:
        raise ValueError(invalid) from None
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return value


def store_access(args: argparse.Namespace) -> StoreAccess:
    """The store flags as `StoreAccess` (nothing read yet; `StoreAccess.open()` reads and checks the files)."""
    headers = tuple(checked(STORE_FLAGS["headers"], _header, raw) for raw in args.prometheus_header)
    return StoreAccess(username=args.prometheus_username, password_file=args.prometheus_password_file,
                       bearer_token_file=args.prometheus_bearer_token_file, ca_file=args.prometheus_ca_file,
                       cert_file=args.prometheus_cert_file, key_file=args.prometheus_key_file, headers=headers,
                       names=dict(STORE_FLAGS))


def checked(name: str, parse: Callable[[str], Any], raw: str) -> Any:
    """`parse(raw)`, a ValueError turned into a UsageError that names the flag."""
    try:
        return parse(raw)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


def check_plot(path: str) -> None:
    """`--plot` needs matplotlib (the `plot` extra) and a directory to write into; say so before any query."""
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot: needs matplotlib: pip install 'kraken-capacity-exporter[plot]'")
    if not Path(path).resolve().parent.is_dir():
        raise UsageError(f"--plot: directory {Path(path).resolve().parent} does not exist")


def wants_json(argv: Sequence[str]) -> bool:
    """Whether `--format json` was asked for, read from the raw flags (so a bad flag still answers in JSON)."""
    args = list(argv)
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in zip(args, args[1:], strict=False))
