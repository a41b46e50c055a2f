"""A fake Kraken (REST and WebSocket v2) in a process of its own, sending `executions` messages at the rate its stdin
asks for: `rate 1000` (messages a second), `rate 0`, `quit`. Prints one JSON line with its URLs and throwaway key.

    python3 -m bench.stream_feed

The bench runs it beside the exporter so that the exporter's process does only the exporter's work. The messages are
the lifecycles of orders (placed: pending_new, new; filled: trade + filled), made beforehand by a fake account so
that sending them costs this process little, and sent at the rate asked; the subscription's snapshot is empty.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import sys
import threading
import time

from exporter.demo.fake_account import FakeAccount
from exporter.demo.fake_kraken import FakeKraken
from exporter.demo.fake_kraken_stream import FakeKrakenStream

MESSAGES = 200_000  # made beforehand: enough for the bench's rounds at 1,000 a second


def main() -> int:
    empty = FakeAccount()
    key, secret = "bench-key", base64.b64encode(os.urandom(64)).decode()
    rest = FakeKraken(key, secret, account=empty)
    stream = FakeKrakenStream(empty, rest.tokens)
    urls = {"rest": rest.start(), "ws": stream.start(), "key": key, "secret": secret}
    messages: list[list[dict]] = []
    maker = FakeAccount()
    maker.snapshot_and_listen(messages.append)
    while len(messages) < MESSAGES:
        maker.fill(maker.place("XDGUSD", 13))  # three messages
    rate = [0.0]
    stop = threading.Event()

    def feed() -> None:
        sent, started = 0, time.monotonic()
        for rows in itertools.cycle(messages):
            if stop.is_set():
                return
            while rate[0] <= 0 and not stop.is_set():
                stop.wait(0.05)
                sent, started = 0, time.monotonic()
            stream.publish(rows)
            sent += 1
            pace = rate[0]
            ahead = started + sent / pace - time.monotonic() if pace > 0 else 0.0
            if ahead > 0:
                time.sleep(min(ahead, 1.0))

    threading.Thread(target=feed, daemon=True).start()
    print(json.dumps(urls), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["rate"]:
            rate[0] = float(words[1])
        elif words[:1] == ["quit"]:
            break
    stop.set()
    stream.stop()
    rest.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
