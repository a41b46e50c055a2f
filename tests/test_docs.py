"""The README and docs/ are a contract: their examples run, their references are what the code exports and reads,
the site builds with no broken link or anchor, every alert has its runbook, and no link leads to an address nobody
we can vouch for owns."""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import promql_parser
import pytest
import requests
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import SETTINGS
from exporter.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()


def page(name: str) -> str:
    return (DOCS / name).read_text()


def section(text: str, title: str) -> str:
    """The section under the heading `title` (any level), up to the next heading of the same or a higher level;
    `#` lines inside code blocks are not headings."""
    lines, out, level, fenced = text.splitlines(keepends=True), [], 0, False
    for line in lines:
        heading = None if fenced else re.match(r"^(#+) (.+)$", line)
        if line.startswith("```"):
            fenced = not fenced
        if level and heading and len(heading.group(1)) <= level:
            break
        if level:
            out.append(line)
        elif heading and heading.group(2).strip() == title:
            level = len(heading.group(1))
    assert level, title
    return "".join(out)


def table_first_column(text: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)


def github_slug(heading: str) -> str:
    """GitHub's rule, written here independently of the exporter: lower case, drop what is not a letter, digit,
    space, `-` or `_`, turn each space into `-`."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", heading).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def headings(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # comments in code blocks are not headings
    return re.findall(r"^#{1,6} (.+)$", text, flags=re.M)


# ---- the examples run ---------------------------------------------------------------------------------------------

def test_the_readme_embedding_example_runs_against_a_bot_like_namespace():
    [code] = re.findall(r"```python\n(.*?)```", section(README, "Embedding it in a bot"), flags=re.S)
    code = code.replace("9477", "0")
    bot = {
        "txid": "OUF4EM-FRGI2-MQMWZD",
        "row": {"status": "open", "vol": "1000.00000000", "vol_exec": "400.00000000"},
        "order": SimpleNamespace(placed_at=1_700_000_000.0),
        "active": [1, 2], "recovery": [3], "slots": [1],
        "open_orders_reply": {"error": [], "result": {"open": {
            "OUF4EM-FRGI2-MQMWZD": {"status": "open", "descr": {"pair": "XDGUSD"}, "vol": "1000", "vol_exec": "400"},
            "OTHER": {"status": "open", "descr": {"pair": "XBTUSD"}, "vol": "1", "vol_exec": "0"},
        }}},
        "status": {"mode": "RUNNING"},
    }
    namespace = dict(bot)
    exec(compile(code, "README.md", "exec"), namespace)
    try:
        status = namespace["status"]
        assert status["mode"] == "RUNNING"
        block = status["capacity_fill_health"]
        assert block["partial_fill_open_events_1d"] == 1
        assert (block["open_orders_internal"], block["open_orders_kraken"], block["open_orders_drift"]) == (3, 1, -2)
        served = requests.get(f"{namespace['server'].url}/api/status", timeout=5).json()
        assert served["capacity_fill_health"]["open_orders_kraken"] == 1
    finally:
        namespace["server"].stop()


def docs_python_blocks() -> list[tuple[str, str]]:
    return [(path.name, code) for path in sorted(DOCS.glob("*.md"))
            for code in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)]


def test_the_docs_have_python_examples():
    assert any(name == "embedding.md" for name, _ in docs_python_blocks())


@pytest.mark.parametrize(("name", "code"), docs_python_blocks(), ids=[n for n, _ in docs_python_blocks()])
def test_every_python_block_of_the_docs_runs_as_written(name, code):
    namespace: dict = {}
    exec(compile(code, f"docs/{name}", "exec"), namespace)  # the blocks assert what they claim


# ---- the references are generated from the code ------------------------------------------------------------------

def test_the_generated_metrics_configuration_and_runbooks_copy_are_current():
    generator = runpy.run_path(str(DOCS / "generate.py"))
    assert generator["main"](["--check"]) == 0, "run python docs/generate.py"


def test_the_metric_tables_list_exactly_the_exported_metrics(exporter, registry, clock):
    t = exporter.add_pair("XDGUSD")
    t.set_internal_counts(active_orders=3, slot_count=1)
    t.observe_kraken_count(3)
    t.observe_order_status("C", "closed", "13", "13", placed_at=clock.now() - 5)
    families = text_string_to_metric_families(generate_latest(registry).decode())
    exported = {f.name for f in families if not f.name.endswith("_created")}  # prometheus-client's own
    standard = {name for name in exported if name.startswith(("process_", "python_"))}
    metrics = page("metrics.md")
    names = table_first_column(section(metrics, "Per pair")) + table_first_column(section(metrics, "The process"))
    table = {name.removesuffix("_total") for name in names} - {"krakenbot_web_config_reload_failed"}
    assert table == exported - standard
    assert {"process_start_time_seconds", "python_info"} <= standard


def test_the_source_metric_table_lists_the_poller_stream_and_scraper_metrics(registry):
    from exporter.sources.kraken_poller import KrakenSourceMetrics
    from exporter.sources.kraken_stream import StreamMetrics
    from exporter.sources.status_scraper import ScrapeMetrics

    KrakenSourceMetrics(registry)
    StreamMetrics(registry)
    scrape = ScrapeMetrics(registry)
    scrape.up.labels(pair="XDGUSD").set(1)
    scrape.last_success.labels(pair="XDGUSD").set(1)
    scrape.errors.labels(pair="XDGUSD", reason="timeout")
    scrape.field_errors.labels(pair="XDGUSD", field="status_band")
    families = text_string_to_metric_families(generate_latest(registry).decode())
    exported = {f.name for f in families if not f.name.endswith("_created")}
    names = table_first_column(section(page("metrics.md"), "Per data source"))
    assert {name.removesuffix("_total") for name in names} == exported


def test_the_status_reference_names_every_field_a_block_can_carry(exporter):
    import dataclasses

    from exporter.web.status import health_dict

    t = exporter.add_pair("XDGUSD")
    t.set_internal_counts(active_orders=3, slot_count=1)
    t.observe_kraken_count(3)
    [reading] = exporter.readings()
    fuller = dataclasses.replace(reading, unknown_fields=("open_orders_internal",), invalid_fields=("status_band",),
                                 events_source="kraken_stream")  # serve's and scrape's extra fields at once
    block = health_dict(fuller, now=0.0)
    assert block is not None and {"events_source", "unknown_fields", "invalid_fields"} <= set(block)
    payload = section(page("status-api.md"), "The payload")
    assert {key for key in block if f"`{key}`" not in f'{payload}' and f'"{key}"' not in payload} == set()


def label_values(metric: str) -> list[str]:
    """The values metrics.md lists for `metric`'s label: the code spans of its item before any parenthesis, and
    before a `;` or the name of another label (what follows is a remark, not a value)."""
    item = re.search(rf"^- `{re.escape(metric)}\{{\w+\}}`: (.*?)(?=^- |\n\n)", page("metrics.md"), re.M | re.S)
    assert item, metric
    text = re.split(r";|`\w+` is ", re.sub(r"\([^)]*\)", "", item.group(1)))[0]
    return re.findall(r"`([a-z_]+)`", text)


def test_the_label_values_metrics_md_lists_are_exactly_the_codes_own():
    from exporter.core.executions import SKIP_REASONS
    from exporter.core.stream_frames import FRAME_KINDS
    from exporter.sources.kraken_api import RESULTS
    from exporter.sources.kraken_stream import RECONNECT_REASONS
    from exporter.sources.status_scraper import SCRAPE_ERRORS

    assert label_values("krakenbot_kraken_requests_total") == list(RESULTS)
    assert label_values("krakenbot_kraken_stream_reconnects_total") == list(RECONNECT_REASONS)
    assert label_values("krakenbot_kraken_stream_messages_total") == list(FRAME_KINDS)
    assert label_values("krakenbot_kraken_stream_bad_rows_total") == list(SKIP_REASONS)
    assert label_values("krakenbot_status_scrape_errors_total") == list(SCRAPE_ERRORS)


def test_the_configuration_table_lists_every_setting():
    rows = re.findall(r"^\| `(--[a-z-]+)` \| `([A-Z_]+)` \|", page("configuration.md"), flags=re.M)
    assert rows == [(s.flag, s.env) for s in SETTINGS]


# ---- the site ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_mkdocs_builds_the_site_strictly_with_no_broken_link_anchor_or_page_outside_the_nav(site):
    assert (site / "index.html").exists() and (site / "runbooks" / "index.html").exists()
    published = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {p for p in published if p.endswith(".py")} == set()  # the generator is not published


def test_strict_validation_fails_on_a_broken_anchor_and_a_page_outside_the_nav(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](#no-such-heading)\n")
    (docs / "stray.md").write_text("# Stray\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().split("\nnav:")[0].replace(
        "!!python/object/apply:pymdownx.slugs.slugify {kwds: {case: lower}}", "null"))
    config["markdown_extensions"] = ["tables"]
    config["nav"] = [{"Home": "index.md"}]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump({**config, "docs_dir": str(docs)}))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(tmp_path / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode != 0
    assert "no-such-heading" in done.stderr and "stray.md" in done.stderr


def test_every_heading_anchor_in_the_site_is_githubs_slug_and_unique_on_its_page(site):
    for path in sorted(DOCS.glob("*.md")):
        titles = headings(path.read_text())
        slugs = [github_slug(t) for t in titles]
        assert len(slugs) == len(set(slugs)), path.name  # GitHub numbers duplicates -1, MkDocs _1
        built = site / ("index.html" if path.stem == "index" else f"{path.stem}/index.html")
        ids = set(re.findall(r'<h[1-6] id="([^"]+)"', built.read_text()))
        assert set(slugs) <= ids, (path.name, set(slugs) - ids)


def test_every_link_of_the_readme_resolves_to_a_docs_page_and_heading():
    for target in re.findall(r"\]\((docs/[^)\s]+)\)", README):
        file, _, anchor = target.partition("#")
        assert (ROOT / file).exists(), target
        if anchor and file.endswith(".md"):
            assert anchor in {github_slug(h) for h in headings((ROOT / file).read_text())}, target


def test_the_readme_stays_short_and_maps_every_page():
    assert len(README.splitlines()) <= 250
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    pages = set(re.findall(r": ([a-z0-9-]+\.md)$", nav, flags=re.M)) - {"index.md"}
    assert pages == {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert {p for p in pages if f"(docs/{p}" not in README} == set()


def test_the_readme_holds_the_one_map_of_the_pages_and_the_docs_home_no_second_one():
    linked = set(re.findall(r"\]\(([a-z0-9-]+\.md)[#)]", page("index.md")))
    assert len(linked) <= 6, linked  # a few starting points and definitions, not a list of every page
    assert not re.search(r"^\| \[", page("index.md"), flags=re.M)


def prose_words(text: str) -> list[str]:
    text = re.sub(r"<!-- generated.*?<!-- end of generated[^>]*-->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.findall(r"[\w`'./<>=-]+", text.lower())


def test_no_two_pages_say_the_same_thing_in_the_same_words():
    """14 words in a row shared by two pages (code blocks and generated tables aside) is a passage said twice:
    one page says it, the other links there."""
    run, seen, twice = 14, {}, set()
    pages = {"README.md": README, **{f"docs/{p.name}": p.read_text() for p in sorted(DOCS.glob("*.md"))}}
    for name, text in pages.items():
        words = prose_words(text)
        for i in range(len(words) - run + 1):
            key = " ".join(words[i:i + run])
            if seen.setdefault(key, name) != name:
                twice.add((seen[key], name, key))
    assert sorted(twice)[:3] == []


# ---- the runbooks --------------------------------------------------------------------------------------------------

RULES = yaml.safe_load((ROOT / "alerts" / "rules.yml").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_runbook_section_saying_what_to_check_and_how_it_resolves():
    runbooks = page("runbooks.md")
    for rule in ALERTS:
        text = section(runbooks, rule["alert"])
        assert "**Check first.**" in text and "**Resolves**" in text, rule["alert"]
        assert "```promql" in text, rule["alert"]
    documented = set(re.findall(r"^## (KrakenBot\w+)$", runbooks, flags=re.M))
    assert documented == {rule["alert"] for rule in ALERTS}  # and no section for an alert that is gone


def test_the_alerts_for_a_down_exporter_say_where_to_read_their_runbook_when_the_exporter_cannot_serve_it():
    runbooks = page("runbooks.md")
    for name in ("KrakenBotExporterDown", "KrakenBotExporterAbsent"):
        [rule] = [r for r in ALERTS if r["alert"] == name]
        assert "docs/runbooks.md" in rule["annotations"]["description"], name
        assert "exporter/web/runbooks.md" in rule["annotations"]["description"], name
        assert "`exporter/web/runbooks.md`" in section(runbooks, name), name
    assert "When the exporter is what is down" in section(page("alerts.md"), "Runbook links")


def seconds(duration: str) -> int:
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in re.findall(r"(\d+)([smhd])", duration))


def test_every_runbook_opens_with_its_alerts_severity_and_for_as_rules_yml_has_them():
    runbooks = page("runbooks.md")
    for rule in ALERTS:
        opening = re.match(r"\s*\*([^*]+)\*", section(runbooks, rule["alert"]))
        assert opening, rule["alert"]
        words = re.match(r"(\w+)(?:, after (\d+) (min|h|s)\b)?", opening.group(1))
        assert words, (rule["alert"], opening.group(1))
        said = int(words.group(2)) * {"min": 60, "h": 3600, "s": 1}[words.group(3)] if words.group(2) else 0
        assert (words.group(1), said) == (rule["labels"]["severity"], seconds(rule.get("for", "0s"))), rule["alert"]


def test_every_runbook_query_parses_as_promql():
    queries = re.findall(r"```promql\n(.*?)```", page("runbooks.md"), flags=re.S)
    lines = [line for q in queries for line in q.strip().splitlines()]
    assert len(lines) >= len(ALERTS)
    for line in lines:
        promql_parser.parse(line)


def test_the_exporter_serves_the_runbooks_with_an_anchor_for_every_alert(exporter):
    exporter.add_pair("XDGUSD")
    app = create_app(exporter)
    replies: list = []
    body = b"".join(app({"PATH_INFO": "/runbooks", "REQUEST_METHOD": "GET"},
                        lambda status, headers: replies.append((status, dict(headers))))).decode()
    status, headers = replies[0]
    assert status == "200 OK" and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for rule in ALERTS:
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f'id="{anchor}">{rule["alert"]}</h2>' in body, rule["alert"]
    assert "<script" not in body
    assert "&lt;" in body or "<" not in page("runbooks.md")  # text is escaped, never markup


def test_the_runbooks_page_is_not_cached_and_answers_with_a_trailing_slash_too(exporter):
    app = create_app(exporter)
    for path in ("/runbooks", "/runbooks/"):
        replies: list = []
        body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"},
                            lambda status, headers, replies=replies: replies.append((status, dict(headers)))))
        status, headers = replies[0]
        assert status == "200 OK" and b'id="krakenbotstopband"' in body, path
        assert headers["Cache-Control"] == "no-store", path  # like / and /api/status: the page of this version


def test_the_runbooks_page_escapes_what_it_shows():
    from exporter.web.runbooks import render

    html = render("## A <b>\n\nx <script>alert(1)</script> `a<b` [t](https://example.org/) [s](#a-b)\n")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<h2 id="a-b">A &lt;b&gt;</h2>' in html and '<a href="#a-b">s</a>' in html
    assert "<code>a&lt;b</code>" in html and "example.org" not in html


def test_the_runbooks_page_shows_no_control_character_and_lets_none_pose_as_markup():
    from exporter.web.runbooks import render

    html = render("text \x00script\x01alert(1)\x00/script\x01 \x00img src=x onerror=alert(2)\x01 \x1b[31m\x7f\x85\n")
    body = html.split("<body>", 1)[1]
    assert "<script" not in body and "<img" not in body
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", html)
    assert body.count("\ufffd") == 9


# ---- no link to an address nobody we can vouch for owns -----------------------------------------------------------

# Hosts a shipped file may link to: the projects and vendors the docs cite, and placeholders nobody can own.
VOUCHED_HOSTS = {
    "prometheus.io", "grafana.com", "kraken.com", "www.kraken.com", "docs.kraken.com", "support.kraken.com",
    "api.kraken.com", "ws-auth.kraken.com", "ws.kraken.com", "status.kraken.com", "pypi.org", "docs.python.org",
    "www.mkdocs.org", "squidfunk.github.io", "facelessuser.github.io", "pgjones.gitlab.io", "docs.docker.com",
    "compose-spec.io", "json-schema.org", "peps.python.org", "victoriametrics.com", "docs.victoriametrics.com",
    "playwright.dev", "hypothesis.readthedocs.io", "prometheus.github.io", "127.0.0.1", "localhost",
}
# github.com is vouched for only for these projects (the ones the docs and code cite), never a whole host.
GITHUB_PROJECTS = {
    "prometheus/prometheus", "prometheus/alertmanager", "prometheus/exporter-toolkit", "prometheus/client_python",
    "grafana/grafana", "grafana/grafana-foundation-sdk", "grafana/dashboard-linter", "grafana/mimir",
    "monitoring-mixins/mixtool", "kubernetes-monitoring/kubernetes-mixin", "veox/python3-krakenex",
    "robjohncolson/doge-grid-bot", "VictoriaMetrics/VictoriaMetrics", "compose-spec/compose-spec",
    "squidfunk/mkdocs-material", "mkdocs/mkdocs", "pgjones/hypercorn", "python-websockets/websockets",
}
# The runbook base an operator chose (`alerts/generate.py --runbook-base`, recorded in alerts/rules.yml's header): its
# links are theirs to vouch for, so a fork that sets its own base keeps this test green (only `<base>#anchor`).
RUNBOOK_BASE = runpy.run_path(str(ROOT / "alerts" / "generate.py"))["committed_base"]()
def tracked_files() -> list[Path]:
    done = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=ROOT, timeout=60, check=True)
    names = [n for n in done.stdout.decode().split("\0") if n]
    return [ROOT / n for n in names if (ROOT / n).is_file() and not n.endswith((".png", ".whl"))]


PLACEHOLDER = re.compile(r"(^|\.)(example(\.(com|org|net|internal))?|invalid|test|localhost|internal)$")
# Numbers that are no one's address on the internet: loopback, "any", and the documentation ranges (RFC 5737, 3849).
NOWHERE = [ipaddress.ip_network(n) for n in ("127.0.0.1/32", "::1/128", "0.0.0.0/32", "192.0.2.0/24",
                                             "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
# Anything a reader (or GitHub's autolinker) would follow: a scheme in any case, a protocol-relative `//host`, a bare
# `www.` name. Braces are part of a URL: templates are resolved below, never skipped.
URL = re.compile(r"(?:\b(?:https?|ftp|wss?)://|(?<![\w/:.@%-])//(?=[\w\[%{$])|(?<![\w/:.@%-])www\.)"
                 r"[^\s<>\"'`)|\\]+", flags=re.I)
TEMPLATE = re.compile(r"\{\{.*?\}\}|\$\{[^{}]*\}|\{[^{}]*\}")  # Go templates ({{ $labels.x }}), ${var}, {python}
HOLE = "templatehole"


def unvouched(url: str, code: bool = False) -> str | None:
    """Why `url` is a link we cannot vouch for, or None. `code`: the URL is in source code, where a host that is
    wholly a template (`http://{host}:{port}`) is an address given at run time."""
    url = url.rstrip(".,;:")
    if "[" not in url:  # `]` belongs to an IPv6 literal, else it closes the text around the URL
        url = url.split("]")[0]
    if url.split("#")[0] == RUNBOOK_BASE:
        return None
    if url.lower().startswith("www."):
        url = "https://" + url
    elif url.startswith("//"):
        url = "https:" + url
    url = TEMPLATE.sub(HOLE, url)
    if "{" in url:  # an expression the text cut short: a template from there on
        url = url[:url.index("{")] + HOLE
    try:
        parts = urlsplit(url)
        netloc_host = parts.netloc.rsplit("@", 1)[-1]
        host = unquote(parts.hostname or netloc_host).lower().rstrip(".")
    except ValueError:  # an unclosed IPv6 bracket (tests of malformed URLs): no browser opens it either
        return None if re.match(r"^[a-z]+://[^/]*\[[^\]/]*(/|$)", url, flags=re.I) else "not a URL"
    scheme = parts.scheme.lower()
    if HOLE in host or not host:
        return None if host in (HOLE, "") and code else "a template in the host"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return None if any(address in net for net in NOWHERE) else "a numeric address someone owns"
    if re.fullmatch(r"[0-9.]+|0x[0-9a-fx.]+", host):
        return "a numeric address in another notation"
    if PLACEHOLDER.search(host) or re.fullmatch(r"[a-z][a-z0-9-]*", host):
        return None  # a placeholder or a local name (`bot`, `vmselect`): no one can register it on the internet
    if scheme not in ("https", "wss"):
        return f"{scheme} to a public host"
    if host in VOUCHED_HOSTS:
        return None
    if host == "github.com":
        path = posixpath.normpath("/" + unquote(parts.path.replace(HOLE, "x")))  # what the browser opens
        project = "/".join(path.strip("/").split("/")[:2]).lower()
        return None if project in {p.lower() for p in GITHUB_PROJECTS} else f"github.com/{project}"
    return host


def test_the_url_check_refuses_each_way_round_it_and_accepts_what_we_vouch_for():
    s = "https" + "://"  # split, so this file does not hold the very links it refuses
    refused = [
        s + "github.com/kraken-capacity-exporter/kraken-capacity-exporter/blob/main/README.md",
        s + "runbooks.example.com.attacker.net/runbooks",
        s + "github.com/prometheus/prometheus/../../attacker/runbooks",
        s + "github.com/prometheus/prometheus/%2e%2e/%2E%2E/attacker/x",
        s + "attacker.net/{alert}/runbook",
        s + "{{ $labels.x }}.attacker.net/runbook",
        s + "198.51.100.7.nip.io/x",
        s + "8.8.8.8/runbooks",
        s + "[2606:4700::6810:1]/runbooks",
        s + "2130706433/x",
        "HTTPS" + "://attacker.net/runbooks",
        "w" + "ww.attacker.net/runbooks",
        "/" + "/attacker.net/runbooks",
        "ftp" + "://attacker.net/r",
        "http" + "://grafana.com/x",
        s + "git%68ub.com/attacker/x",
    ]
    for url in refused:
        assert [found for found in URL.findall(f"see [x]({url}) and <{url}>") if unvouched(found)], url
    accepted = [
        "https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md",
        "https://github.com/Prometheus/Prometheus/releases",
        "http://127.0.0.1:9477/runbooks#krakenbotstopband", "http://[::1]:9477/", "http://0.0.0.0:9477",
        "https://198.51.100.7/runbooks", "https://mimir.example.internal/prometheus", "http://bot:8080/api/status",
        "https://grafana.com/docs/grafana/latest/", "http://localhost:9090/graph?g0.expr={x}",
        "HTTPS://WWW.KRAKEN.COM/",
    ]
    assert {url: unvouched(url) for url in accepted if unvouched(url)} == {}
    assert unvouched("http://{host!s}:{port}", code=True) is None
    assert unvouched("http://{host!s}:{port}") == "a template in the host"


def test_no_tracked_file_links_to_a_host_we_cannot_vouch_for():
    found = {}
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for url in URL.findall(text):
            why = unvouched(url, code=path.suffix == ".py")
            if why:
                found.setdefault(str(path.relative_to(ROOT)), []).append((url, why))
    assert found == {}


def test_every_runbook_url_is_the_recorded_base_and_the_shipped_base_is_the_exporters_own_page():
    generator = runpy.run_path(str(ROOT / "alerts" / "generate.py"))
    assert generator["DEFAULT_RUNBOOK_BASE"] == "http://127.0.0.1:9477/runbooks"
    base = generator["committed_base"]()  # the default, or the base an operator chose with --runbook-base
    for rule in ALERTS:
        assert rule["annotations"]["runbook_url"].startswith(base + "#"), rule["alert"]


def test_files_outside_the_docs_point_at_docs_pages_and_headings_that_exist_not_at_old_readme_sections():
    for path in tracked_files():
        if path.suffix == ".md" or path.is_relative_to(ROOT / "tests"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        name = str(path.relative_to(ROOT))
        assert not re.search(r"README's (?!test command|map)\w+|README: \"", text), name  # the README lost its sections
        for file, anchor in re.findall(r"\b(docs/[a-z0-9-]+\.md)(?:#([a-z0-9_-]+))?", text):
            assert (ROOT / file).exists(), (name, file)
            if anchor:
                assert anchor in {github_slug(h) for h in headings((ROOT / file).read_text())}, (name, file, anchor)
