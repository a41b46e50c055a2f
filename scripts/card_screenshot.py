"""Render the native card for three pairs (normal, caution, stop) in Debian's headless Chromium.

    python scripts/card_screenshot.py docs/card.png

Makes the card's screenshot (docs/card.png); needs `chromium` (Debian) and `playwright` (PyPI, no browser download).
"""

import sys
import time

from playwright.sync_api import sync_playwright

from exporter import CapacityExporter, ManualClock
from exporter.web.app import create_app, start_server

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def main(path: str) -> None:
    clock = ManualClock(start=time.time() - 25 * 3600)  # running for a day: the 24h windows are complete
    exporter = CapacityExporter(clock=clock)
    pairs = (("XDGUSD", 118, 117, False), ("XBTUSD", 154, 154, False), ("ETHUSD", 61, 58, True))
    telemetries = {pair: exporter.add_pair(pair) for pair, *_ in pairs}
    clock.advance(24 * 3600)
    for minute in range(61):  # the last hour, read once a minute: XBTUSD gains an order every 4 minutes
        for pair, kraken, internal, _ in pairs:
            fewer = (60 - minute) // 4 if pair == "XBTUSD" else 0
            telemetries[pair].set_internal_counts(active_orders=internal - 4 - fewer, recovery_orders=4,
                                                  slot_count=internal // 2)
            telemetries[pair].observe_kraken_count(kraken - fewer)
        exporter.readings()
        if minute < 60:
            clock.advance(60)
    now = clock.now()
    for pair, _, _, cancel in pairs:
        t = telemetries[pair]
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
