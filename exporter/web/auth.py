"""Basic auth and the web config's response headers, as WSGI middleware in front of every route.

With `basic_auth_users` configured, every request needs a user and password whose bcrypt hash matches; anything
else gets 401 with `WWW-Authenticate`. bcrypt is slow on purpose (a quarter of a second at cost 12), so:

- every verdict is cached, keyed by an HMAC (a per-process random key) of user, password and hash, never the
  password itself: a success until it is evicted (the hash is part of the key, so a changed password or user
  misses), a failure for `FAILURE_TTL` seconds, so repeating a wrong password costs nothing. Successes and failures
  are kept apart: a flood of wrong passwords cannot evict the scrapers' entries;
- at most `max_checks` bcrypt checks run at once (one by default, as in exporter-toolkit), in their own thread at a
  lower CPU priority, so an uncached password never queues the worker pool behind bcrypt and a cached scrape never
  waits for one;
- with the exporter's server, the verdict is reached on its event loop (`Protected.answer_on_loop`): a refusal
  (no or cached wrong credentials, 429) takes no worker thread from the scrapes, a check runs in the bcrypt thread,
  requests with the same credentials as a check under way await that check, and a check that cannot start at once
  waits its turn in a small queue fair between client addresses (one check per address, at most `MAX_WAITING`
  addresses): a flood from one address cannot keep a scraper at another from its check. Any other request that
  needs a check is answered 429 with `Retry-After: 1` at once (as a plain WSGI app, every one that cannot start);
- every check does the same bcrypt work (`WebConfig.against`): an unknown user is checked against a dummy hash at
  the highest configured cost, a user at a lower cost against padding dummies too, so the time tells no user name.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

import bcrypt

from .web_config import WebConfig, WebConfigFile

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict, StartResponse], Iterable[bytes]]
REALM = 'Basic realm="kraken-capacity-exporter", charset="UTF-8"'
SUCCESS_CACHE_SIZE = 256  # distinct right (user, password, hash): a handful of scrapers
FAILURE_CACHE_SIZE = 4096  # distinct wrong ones remembered; at most one bcrypt check at a time fills it slowly
FAILURE_TTL = 60.0  # seconds a wrong password is answered from the cache
MAX_CHECKS = 1  # bcrypt checks running at once
# Client addresses whose check may wait for the bcrypt thread (one each): at cost 12 (a quarter to half a second a
# check) the last of them starts within about 16 checks, under Prometheus' default 10 s scrape timeout.
MAX_WAITING = 16
RETRY_AFTER_SECONDS = 1
BCRYPT_NICE = 10  # how much nicer the bcrypt threads are than the process
# bcrypt reads at most 72 bytes of a password. exporter-toolkit (Go's bcrypt), htpasswd and bcrypt 4 use the first 72
# of a longer one; bcrypt 5's checkpw raises ValueError instead, so it is cut here: a web config and password that
# work with node_exporter or Prometheus work here too.
BCRYPT_MAX_PASSWORD_BYTES = 72


def parse_basic(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None when there is none or it is malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class Verdict(Enum):
    OK = "ok"
    WRONG = "wrong"
    BUSY = "busy"  # not cached, and the bcrypt checks are all taken: ask again later


def _lower_priority() -> None:
    """A bcrypt thread runs at a lower CPU priority (Linux: nice is per thread), so under a flood of passwords to
    check the scrapes, the event loop and the rest of the machine go first."""
    if sys.platform == "linux":
        thread = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + BCRYPT_NICE))


@dataclass(frozen=True)
class _Attempt:
    key: bytes  # HMAC of user, password and the hash checked against
    password: bytes
    against: tuple[bytes, ...]  # the deciding hash (the user's, or the dummy), then the padding (`WebConfig.against`)
    known: bool


class BasicAuthChecker:
    """Checks credentials against the current users: cached verdicts, at most `max_checks` bcrypt checks at once.

    On the event loop (`verdict_on_loop`), a check that cannot start at once waits its turn in a small queue that is
    fair between client addresses: each address has at most one check waiting or running, and the waiting ones start
    in the order their addresses arrived, so a flood from one address delays another address's check by at most the
    check running and the flood's one waiting, whatever its rate. More requests from a busy address, or from a new
    one when `max_waiting` addresses already wait, are BUSY at once. Memory and threads stay bounded either way."""

    def __init__(self, max_checks: int = MAX_CHECKS, clock: Callable[[], float] = time.monotonic,
                 max_waiting: int = MAX_WAITING) -> None:
        if max_checks < 1 or max_waiting < 0:
            raise ValueError(f"max_checks must be >= 1 and max_waiting >= 0, got {max_checks!r}, {max_waiting!r}")
        self._secret = secrets.token_bytes(32)
        self._clock = clock
        self._max_checks = max_checks
        self._max_waiting = max_waiting
        self._running = 0  # bcrypt checks claimed and not yet finished
        self._waiting: OrderedDict[str, tuple[_Attempt, Future[Verdict]]] = OrderedDict()  # by address, in turn
        self._busy: set[str] = set()  # addresses with a check waiting or running
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._failed: OrderedDict[bytes, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()
        self._on_loop: dict[bytes, asyncio.Future[Verdict]] = {}  # checks started from the event loop, by key
        self._bcrypt = ThreadPoolExecutor(max_checks, thread_name_prefix="exporter-bcrypt", initializer=_lower_priority)

    def verdict(self, config: WebConfig, credentials: tuple[str, bytes] | None) -> Verdict:
        """The cached verdict, else one bcrypt check if one can start now, else BUSY. Blocks for the check."""
        attempt = self._attempt(config, credentials)
        if attempt is None:
            return Verdict.WRONG
        if (cached := self._cached(attempt.key)) is not None:
            return cached
        job = self._start_or_wait(attempt, None)
        return Verdict.BUSY if job is None else job.result()

    async def verdict_on_loop(self, config: WebConfig, credentials: tuple[str, bytes] | None,
                              address: str | None = None) -> Verdict:
        """The same verdict, for the event loop: the check runs in the bcrypt thread, now or in the client address's
        turn (see the class), and a request with the same credentials as a check under way or waiting awaits that
        one instead of being BUSY."""
        attempt = self._attempt(config, credentials)
        if attempt is None:
            return Verdict.WRONG
        if (cached := self._cached(attempt.key)) is not None:
            return cached
        if (same := self._on_loop.get(attempt.key)) is not None:
            return await asyncio.shield(same)
        job = self._start_or_wait(attempt, address)
        if job is None:
            return Verdict.BUSY
        future = asyncio.wrap_future(job)
        self._on_loop[attempt.key] = future
        future.add_done_callback(lambda _: self._on_loop.pop(attempt.key, None))
        return await asyncio.shield(future)  # a client that leaves does not cancel it: its verdict is cached

    def check(self, config: WebConfig, credentials: tuple[str, bytes] | None) -> bool:
        """True for a right user and password (a BUSY check counts as not right)."""
        return self.verdict(config, credentials) is Verdict.OK

    def _attempt(self, config: WebConfig, credentials: tuple[str, bytes] | None) -> _Attempt | None:
        if credentials is None:
            return None
        user, password = credentials
        against = config.against(user)
        return _Attempt(self._key(user, password, against[0]), password, against, user in config.users)

    def _start_or_wait(self, attempt: _Attempt, address: str | None) -> Future[Verdict] | None:
        """The future verdict of a check started now, or queued in `address`'s turn; None when neither can be.
        Without an address (a plain WSGI call) it is never queued."""
        with self._lock:
            if address is not None and address in self._busy:
                return None
            start = self._running < self._max_checks and not self._waiting
            job: Future[Verdict] = Future()
            if start:
                self._running += 1
            elif address is not None and len(self._waiting) < self._max_waiting:
                self._waiting[address] = (attempt, job)
            else:
                return None
            if address is not None:
                self._busy.add(address)
        if start:
            self._bcrypt.submit(self._run, attempt, address, job)
        return job

    def _run(self, attempt: _Attempt, address: str | None, job: Future[Verdict]) -> None:
        """One check in the bcrypt thread. Its claim is handed to the next waiting check (or released) and its
        address freed before the verdict is told, so a client that has its answer may ask again at once."""
        verdict: Verdict | None = None
        error: BaseException | None = None
        try:
            verdict = self._check(attempt)
        except BaseException as exc:  # told to the waiter below, never lost in the executor
            error = exc
        with self._lock:
            if address is not None:
                self._busy.discard(address)
            following = self._waiting.popitem(last=False) if self._waiting else None
            if following is None:
                self._running -= 1
        if following is not None:
            next_address, (next_attempt, next_job) = following
            self._bcrypt.submit(self._run, next_attempt, next_address, next_job)
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile: the verdict is cached all the same
            if verdict is not None:
                job.set_result(verdict)
            else:
                job.set_exception(error or RuntimeError("no verdict"))

    def _check(self, attempt: _Attempt) -> Verdict:
        """The bcrypt work of one check: the deciding hash, then the padding that makes every check cost the same."""
        password = attempt.password[:BCRYPT_MAX_PASSWORD_BYTES]
        try:
            matches = bcrypt.checkpw(password, attempt.against[0])
            for padding in attempt.against[1:]:
                bcrypt.checkpw(password, padding)
        except ValueError:  # a password or hash bcrypt refuses: wrong
            matches = False
        ok = matches and attempt.known
        self._remember(attempt.key, ok)
        return Verdict.OK if ok else Verdict.WRONG

    def _key(self, user: str, password: bytes, hashed: bytes) -> bytes:
        name = user.encode()
        message = len(name).to_bytes(4, "big") + name + len(hashed).to_bytes(4, "big") + hashed + password
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def _cached(self, key: bytes) -> Verdict | None:
        with self._lock:
            if key in self._ok:
                self._ok.move_to_end(key)
                return Verdict.OK
            expiry = self._failed.get(key)
            if expiry is not None and expiry > self._clock():
                return Verdict.WRONG
            return None

    def _remember(self, key: bytes, ok: bool) -> None:
        with self._lock:
            if ok:
                self._ok[key] = None
                self._ok.move_to_end(key)
                while len(self._ok) > SUCCESS_CACHE_SIZE:
                    self._ok.popitem(last=False)
                return
            now = self._clock()
            self._failed.pop(key, None)
            self._failed[key] = now + FAILURE_TTL
            while self._failed and (len(self._failed) > FAILURE_CACHE_SIZE or next(iter(self._failed.values())) <= now):
                self._failed.popitem(last=False)


Reply = tuple[str, list[tuple[str, str]], bytes]  # status, headers, body


def _with_config_headers(headers: list[tuple[str, str]], config: WebConfig) -> list[tuple[str, str]]:
    names = {name.lower() for name, _ in config.headers}
    return [(n, v) for n, v in headers if n.lower() not in names] + list(config.headers)


def _refusal(verdict: Verdict, config: WebConfig) -> Reply:
    if verdict is Verdict.BUSY:
        body = json.dumps({"error": "too many password checks at once: retry"}).encode()
        status, extra = "429 Too Many Requests", ("Retry-After", str(RETRY_AFTER_SECONDS))
    else:
        body = json.dumps({"error": "unauthorized: basic auth required"}).encode()
        status, extra = "401 Unauthorized", ("WWW-Authenticate", REALM)
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), extra, ("Cache-Control", "no-store")]
    return status, _with_config_headers(headers, config), body


class Protected:
    """A WSGI app behind the web config's basic auth and headers, both from the version in force for each request.

    The exporter's server first awaits `answer_on_loop` on its event loop, so a refusal (401, 429) never takes a
    worker thread; as a plain WSGI app (any other server) it checks in the calling thread."""

    def __init__(self, app: WSGIApp, web: WebConfigFile, max_checks: int = MAX_CHECKS) -> None:
        self._app = app
        self._web = web
        self.checker = BasicAuthChecker(max_checks)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        config = self._web.current()

        def with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            merged = _with_config_headers(headers, config)
            return start_response(status, merged, exc_info) if exc_info else start_response(status, merged)

        if config.users:
            verdict = self.checker.verdict(config, parse_basic(environ.get("HTTP_AUTHORIZATION")))
            if verdict is not Verdict.OK:
                status, headers, body = _refusal(verdict, config)
                start_response(status, headers)
                return [body]
        return self._app(environ, with_headers)

    async def answer_on_loop(self, environ: dict) -> Reply | None:
        """The refusal of a request, decided on the event loop (cached, or after a check in the bcrypt thread, or
        429 when no check can start), or None to let the app answer it in a worker thread. Never blocks."""
        config = self._web.current()
        if not config.users:
            return None
        verdict = await self.checker.verdict_on_loop(config, parse_basic(environ.get("HTTP_AUTHORIZATION")),
                                                     environ.get("REMOTE_ADDR"))
        return None if verdict is Verdict.OK else _refusal(verdict, config)


def protect(app: WSGIApp, web: WebConfigFile, max_checks: int = MAX_CHECKS) -> Protected:
    """`app` behind the web config's basic auth and headers (see `Protected`)."""
    return Protected(app, web, max_checks)
