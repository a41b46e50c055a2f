"""URLs as they may be shown: a password or token in a URL never reaches a log line, a metric or a payload."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(url: str) -> str:
    """`url` with its user information and query replaced by `***` (what is left names the server and path)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))
