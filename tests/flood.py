"""A wrong-password flood, run as its own process (`python -m tests.flood PORT`) so its work does not share the
test process's interpreter lock: `--connections` keep-alive connections, each sending a request with a new wrong
password (with `--repeat`, one of two) every `--interval` seconds for `--seconds`, alternating a known and an
unknown user. The connections' sends are spread evenly over the interval (a steady rate, not one burst of all of
them each interval; `--burst` sends them together), from `--source` (a loopback address, 127.0.0.1 by default).
Prints one JSON line: the answers by status code and how long it ran.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Flood:
    port: int
    users: tuple[str, ...]
    interval: float
    until: float
    repeat: bool = False
    path: str = "/metrics"
    source: str | None = None  # the address the connections come from


async def one_connection(flood: Flood, n: int, first_at: float, codes: Counter) -> None:
    local = (flood.source, 0) if flood.source else None
    reader, writer = await asyncio.open_connection("127.0.0.1", flood.port, local_addr=local)
    i = 0
    next_at = first_at
    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    try:
        while time.monotonic() < flood.until:
            password = f"wrong-{n}-{i % 2 if flood.repeat else i}"
            token = base64.b64encode(f"{flood.users[i % len(flood.users)]}:{password}".encode()).decode()
            writer.write(f"GET {flood.path} HTTP/1.1\r\nHost: flood\r\nAuthorization: Basic {token}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is None:
                raise ValueError("a reply without Content-Length")
            await reader.readexactly(length)
            codes[str(status)] += 1
            i += 1
            next_at += flood.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        codes[type(exc).__name__] += 1
    finally:
        writer.close()


async def run(flood: Flood, connections: int, burst: bool) -> Counter:
    codes: Counter = Counter()
    start = time.monotonic()
    await asyncio.gather(*(one_connection(flood, n, start if burst else start + flood.interval * n / connections, codes)
                           for n in range(connections)))
    return codes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--users", default="prometheus,nobody")
    parser.add_argument("--path", default="/metrics")
    parser.add_argument("--repeat", action="store_true", help="each connection repeats one of two wrong passwords")
    parser.add_argument("--burst", action="store_true", help="all connections send at the same instant")
    parser.add_argument("--source", help="the loopback address the connections come from (e.g. 127.0.0.2)")
    args = parser.parse_args()
    started = time.monotonic()
    flood = Flood(args.port, tuple(args.users.split(",")), args.interval, started + args.seconds, args.repeat, args.path,
                  args.source)
    codes = asyncio.run(run(flood, args.connections, args.burst))
    print(json.dumps({"codes": dict(codes), "elapsed": time.monotonic() - started}), flush=True)


if __name__ == "__main__":
    main()
