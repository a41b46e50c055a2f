"""URLs as they may be shown: a password or token in a URL never reaches a log line, a metric or a payload."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(url: str) -> str:
    """`url` with its user information and query replaced by `***` (what is left names the server and path).

    The user information is cut from the raw text up to the *last* `@`, not where a parser ends the authority: a
    password pasted with an unencoded `/`, `?` or `#` would otherwise end the authority early and be shown as part
    of the path, the query or the fragment. An `@` later in the URL (a path or query holding one) makes this hide
    more than it must, never less."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<unparsable URL>"
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    try:
        parts = urlsplit(f"{scheme}://{rest}")
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "***" if parts.query else "", ""))
    except ValueError:
        return "<unparsable URL>"
