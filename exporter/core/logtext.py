"""Caller values made safe for one log line: no newline or control character reaches the log verbatim.

A value whose `str()` raises (or is huge) becomes a placeholder, so the line that carries it is still written.
"""

from __future__ import annotations

from typing import Any

MAX_VALUE_CHARS = 200
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/+")


def text(value: Any) -> str:
    """`str(value)` escaped for a log line: printable characters only, quoted when it holds spaces or `=`.

    Non-printable characters are written as Python escapes (`\\n`, `\\x1b`); a value longer than
    MAX_VALUE_CHARS is cut and marked; a value that cannot be formatted is `<unprintable TYPE>`.
    """
    try:
        raw = value if type(value) is str else str(value)
        if type(raw) is not str:
            raise TypeError("__str__ returned a non-string")
    except Exception:
        return placeholder(value)
    if raw and len(raw) <= MAX_VALUE_CHARS and all(ch in _SAFE for ch in raw):
        return raw
    return _quoted(raw)


def number(value: Any, digits: int = 8) -> str:
    """A volume with `digits` decimals, or the escaped text of the value when it is not a finite number."""
    try:
        result = f"{float(value):.{digits}f}"
    except Exception:
        return text(value)
    return result if result[-1].isdigit() else text(value)


def placeholder(value: Any) -> str:
    try:
        name = type(value).__name__
    except Exception:
        name = "object"
    return f"<unprintable {_quoted(name)[1:-1]}>"


def _quoted(raw: str) -> str:
    cut = len(raw) > MAX_VALUE_CHARS
    raw = raw[:MAX_VALUE_CHARS]
    out = []
    for ch in raw:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return '"' + "".join(out) + ('…(cut)' if cut else "") + '"'
