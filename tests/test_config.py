"""Every default has one home: the settings table, which `Config` and the constructors that run without it share."""

from __future__ import annotations

import inspect
import re
from dataclasses import fields
from pathlib import Path

from exporter.config import SETTINGS, Config, _show, load_config

BY_NAME = {s.name: s for s in SETTINGS}
CONFIGURATION = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()


def default_of(function, parameter: str):
    return inspect.signature(function).parameters[parameter].default


def test_config_has_a_field_for_every_setting_and_no_other():
    assert {f.name for f in fields(Config)} - {"command"} == set(BY_NAME)


def test_every_config_default_is_the_settings_table_default():
    config = Config()
    for name, setting in BY_NAME.items():
        if name == "pairs":  # empty: the command decides (the table's pair, or the scraped payload's)
            assert config.pairs == () and config.pair_list == setting.default
            continue
        assert getattr(config, name) == setting.default, name


def test_a_command_with_nothing_set_resolves_to_the_table_defaults():
    for command in ("demo", "serve"):
        config = load_config(command, None, {})
        for setting in SETTINGS:
            if command in setting.commands and setting.name != "pairs":
                assert getattr(config, setting.name) == setting.default, (command, setting.name)


def test_the_sources_and_the_http_edge_default_to_the_table():
    from exporter.demo.run import DemoSettings
    from exporter.service import CapacityExporter
    from exporter.sources.kraken_api import ReadOnlyKraken
    from exporter.sources.kraken_poller import KrakenOpenOrdersPoller
    from exporter.sources.status_scraper import BotStatusScraper
    from exporter.web.server import HttpSettings

    assert default_of(KrakenOpenOrdersPoller, "interval") == BY_NAME["kraken_poll_interval"].default
    assert default_of(ReadOnlyKraken, "timeout") == BY_NAME["kraken_timeout"].default
    assert default_of(ReadOnlyKraken, "url") == BY_NAME["kraken_url"].default
    assert default_of(BotStatusScraper, "interval") == BY_NAME["scrape_interval"].default
    assert default_of(BotStatusScraper, "timeout") == BY_NAME["scrape_timeout"].default
    assert default_of(CapacityExporter.serve, "host") == BY_NAME["host"].default
    assert default_of(CapacityExporter.serve, "port") == BY_NAME["port"].default
    http = HttpSettings()
    assert (http.idle_timeout, http.max_connections, http.threads) == (
        BY_NAME["web_idle_timeout"].default, BY_NAME["web_max_connections"].default, BY_NAME["web_threads"].default)
    demo_stale = DemoSettings(pairs=("XDGUSD",), limit=225, safety_ratio=0.75, speedup=600.0, seed=7).kraken_stale_after
    assert f"(default {demo_stale:g})" in BY_NAME["kraken_stale_after"].help["demo"]


def test_the_docs_configuration_table_shows_each_fixed_default_as_the_table_has_it():
    table = CONFIGURATION
    rows = dict(re.findall(r"^\| `(--[a-z-]+)` \| `[A-Z_]+` \| ([^|]+) \|", table, flags=re.M))
    for setting in SETTINGS:
        shown = rows[setting.flag].strip()
        if setting.default is None and not shown.startswith("`"):
            continue  # no fixed default: the row says in words what applies
        assert shown == f"`{_show(setting.default)}`", setting.flag
