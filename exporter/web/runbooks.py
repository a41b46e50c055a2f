"""`/runbooks`: the runbooks of this version (docs/runbooks.md, shipped as exporter/web/runbooks.md), as simple HTML.

Headings keep their GitHub-style anchors, so an alert's `runbook_url` (`<base>#<slug of its heading>`) opens its
section here as on the code host and the docs site. The rest is escaped text: paragraphs, lists and code blocks as
they are written, with code spans, bold and links to this page's own sections marked up; nothing else is rendered.
"""

from __future__ import annotations

import html
import re
from importlib import resources

_HEADING = re.compile(r"^(#{1,6}) (.+)$")
_INVALID_SLUG_CHAR = re.compile(r"[^\w\- ]")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")

RUNBOOKS_CSP = "default-src 'none'; style-src 'unsafe-inline'"


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but `-` and `_` dropped, each space a `-`."""
    text = _LINK.sub(r"\1", heading).strip().lower()
    return _INVALID_SLUG_CHAR.sub("", text).replace(" ", "-")


def runbooks_markdown() -> str:
    return resources.files("exporter.web").joinpath("runbooks.md").read_text(encoding="utf-8")


def _inline(text: str) -> str:
    """Escaped text with code spans, bold and same-page links marked up; other links keep their text only."""

    def link(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if target.startswith("#"):
            return f"\x00a href=\"{html.escape(target)}\"\x01{label}\x00/a\x01"
        return label

    text = html.escape(_LINK.sub(link, text), quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return text.replace("\x00", "<").replace("\x01", ">")


def render(markdown: str) -> str:
    """The page as HTML: headings with their anchors, code blocks verbatim, every other block a paragraph."""
    out: list[str] = []
    block: list[str] = []
    fence: list[str] | None = None

    def flush() -> None:
        if block:
            out.append(f"<p>{_inline(chr(10).join(block))}</p>")
            block.clear()

    for line in markdown.splitlines():
        if fence is not None:
            if line.startswith("```"):
                out.append(f"<pre><code>{html.escape(chr(10).join(fence), quote=False)}</code></pre>")
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("```"):
            flush()
            fence = []
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, title = len(heading.group(1)), heading.group(2).strip()
            out.append(f'<h{level} id="{html.escape(slug(title))}">{_inline(title)}</h{level}>')
        elif not line.strip():
            flush()
        else:
            block.append(line)
    flush()
    body = "\n".join(out)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Runbooks — kraken-capacity-exporter"
            "</title>\n<style>body{font-family:sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;line-height:1.4}"
            "p{white-space:pre-wrap}pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}</style></head><body>\n"
            f"{body}\n</body></html>\n")


RUNBOOKS_HTML = render(runbooks_markdown()).encode("utf-8")
