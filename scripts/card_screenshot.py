"""Render the native card for three pairs (normal, caution, stop) in Debian's headless Chromium.

    python scripts/card_screenshot.py docs/card.png

Makes the README's screenshot; needs `chromium` (Debian) and `playwright` (PyPI, no browser download).
"""

import sys
import time

from playwright.sync_api import sync_playwright

from exporter import CapacityExporter
from exporter.web.app import create_app, start_server

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def main(path: str) -> None:
    exporter = CapacityExporter()
    now = time.time()
    for pair, kraken, internal, cancel in (("XDGUSD", 118, 117, False), ("XBTUSD", 154, 154, False), ("ETHUSD", 61, 58, True)):
        t = exporter.add_pair(pair)
        t.set_internal_counts(active_orders=internal - 4, recovery_orders=4, slot_count=internal // 2)
        t.observe_kraken_count(kraken)
        for i, age in enumerate((45, 70, 95, 160, 900, 5400)):
            t.observe_order_status(f"O{pair}{i}", "closed", "13", "13", placed_at=now - age)
        t.observe_order_status(f"P{pair}", "open", "13", "5")
        if cancel:
            t.observe_order_status(f"P{pair}", "canceled", "13", "5")
    server = start_server(create_app(exporter))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1150, "height": 240})
            page.goto(server.url + "/")
            page.locator("section.card").nth(2).wait_for(timeout=10_000)
            page.screenshot(path=path, full_page=True)
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/card.png")
