"""The README and docs/ are a contract: their examples run, their references are what the code exports and reads,
the site builds with no broken link or anchor, every alert has its runbook, and no link leads to an address nobody
we can vouch for owns."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

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


def test_the_runbooks_page_escapes_what_it_shows():
    from exporter.web.runbooks import render

    html = render("## A <b>\n\nx <script>alert(1)</script> `a<b` [t](https://example.org/) [s](#a-b)\n")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<h2 id="a-b">A &lt;b&gt;</h2>' in html and '<a href="#a-b">s</a>' in html
    assert "<code>a&lt;b</code>" in html and "example.org" not in html


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
PLACEHOLDER = re.compile(r"(^|\.)(example(\.(com|org|net|internal))?|invalid|test|localhost|internal)$")
URL = re.compile(r"\b(?:https?|wss?)://[^\s<>\"'`)\]}|\\]+")


def tracked_files() -> list[Path]:
    done = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=ROOT, timeout=60, check=True)
    names = [n for n in done.stdout.decode().split("\0") if n]
    return [ROOT / n for n in names if (ROOT / n).is_file() and not n.endswith((".png", ".whl"))]


def unvouched(url: str) -> bool:
    try:
        parts = urlsplit(url.rstrip(".,;:"))
    except ValueError:  # not a URL a reader could follow (e.g. a pattern in a regular expression)
        return False
    host = (parts.hostname or "").lower()
    if host in VOUCHED_HOSTS or PLACEHOLDER.search(host) or "." not in host or not re.search(r"[a-z]", host):
        return False  # a vouched host, a placeholder, a local name (`bot`, `vmselect`: no one can register it on
        # the internet), or an address written as numbers
    if host == "github.com":
        project = "/".join(parts.path.strip("/").split("/")[:2])
        return project not in GITHUB_PROJECTS
    return True


def test_the_url_check_refuses_a_made_up_organisation_and_accepts_what_we_vouch_for():
    scheme = "https" + "://"  # split, so this file does not hold the very links it refuses
    assert unvouched(scheme + "github.com/kraken-capacity-exporter/kraken-capacity-exporter/blob/main/README.md")
    assert unvouched(scheme + "runbooks.example.com.attacker.net/runbooks")
    assert not unvouched("https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md")
    assert not unvouched("http://127.0.0.1:9477/runbooks#krakenbotstopband")
    assert not unvouched("https://mimir.example.internal/prometheus")


def test_no_tracked_file_links_to_a_host_we_cannot_vouch_for():
    found = {}
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for url in URL.findall(text):
            if "{" not in url and unvouched(url):
                found.setdefault(str(path.relative_to(ROOT)), []).append(url)
    assert found == {}


def test_every_runbook_url_points_at_the_exporters_own_runbooks_page_by_default():
    for rule in ALERTS:
        assert rule["annotations"]["runbook_url"].startswith("http://127.0.0.1:9477/runbooks#"), rule["alert"]
