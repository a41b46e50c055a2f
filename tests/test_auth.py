"""Basic auth's verdict cache and its cap on bcrypt checks (issue 16, item 1): what is cached, for how long, what a
check that cannot start gets. bcrypt is counted by a spy around the real `bcrypt.checkpw`."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import pytest
import requests

from exporter.web import auth
from exporter.web.app import create_app, start_server
from exporter.web.auth import FAILURE_CACHE_SIZE, FAILURE_TTL, BasicAuthChecker, Verdict
from exporter.web.web_config import WebConfigFile, load_web_config
from tests.certs import bcrypt_hash
from tests.conftest import wait_for

PASSWORD = b"right"


@pytest.fixture
def checks(monkeypatch) -> list[bytes]:
    """The hashes bcrypt.checkpw was called with, in order."""
    calls: list[bytes] = []
    real = auth.bcrypt.checkpw

    def spy(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(auth.bcrypt, "checkpw", spy)
    return calls


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('right', cost=5)}\n  bob: {bcrypt_hash('other', cost=4)}\n")
    return load_web_config(path)


def test_a_repeated_wrong_password_costs_one_bcrypt_check_for_a_known_and_an_unknown_user(config, checks):
    checker = BasicAuthChecker()
    for _ in range(5):
        assert checker.verdict(config, ("alice", b"wrong")) is Verdict.WRONG
        assert checker.verdict(config, ("nobody", b"wrong")) is Verdict.WRONG
    assert checks == [config.users["alice"], config.dummy_hash]  # one check each, at the same cost
    assert config.users["alice"][:7] == config.dummy_hash[:7] == b"$2b$05$"  # the highest cost configured


def test_a_right_password_is_checked_once_and_a_changed_hash_is_checked_again(config, checks, tmp_path):
    checker = BasicAuthChecker()
    assert [checker.verdict(config, ("alice", PASSWORD)) for _ in range(3)] == [Verdict.OK] * 3
    assert len(checks) == 1
    path = tmp_path / "rotated.yml"
    path.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('right', cost=5)}\n")  # same password, new salt
    rotated = load_web_config(path)
    assert checker.verdict(rotated, ("alice", PASSWORD)) is Verdict.OK and len(checks) == 2
    assert checker.verdict(config, ("alice", PASSWORD)) is Verdict.OK and len(checks) == 2  # the old hash: cached


def test_a_cached_failure_expires_after_its_ttl(config, checks):
    now = [1000.0]
    checker = BasicAuthChecker(clock=lambda: now[0])
    assert checker.verdict(config, ("alice", b"wrong")) is Verdict.WRONG
    now[0] += FAILURE_TTL - 1
    assert checker.verdict(config, ("alice", b"wrong")) is Verdict.WRONG and len(checks) == 1
    now[0] += 2
    assert checker.verdict(config, ("alice", b"wrong")) is Verdict.WRONG and len(checks) == 2


def test_a_flood_of_distinct_wrong_passwords_neither_evicts_the_right_one_nor_grows_without_bound(config, monkeypatch):
    checker = BasicAuthChecker()
    assert checker.verdict(config, ("alice", PASSWORD)) is Verdict.OK
    monkeypatch.setattr(auth.bcrypt, "checkpw", lambda password, hashed: False)  # fast: only the cache is under test
    for i in range(FAILURE_CACHE_SIZE + 500):
        assert checker.verdict(config, ("alice", f"wrong {i}".encode())) is Verdict.WRONG
    assert len(checker._failed) == FAILURE_CACHE_SIZE
    monkeypatch.setattr(auth.bcrypt, "checkpw", lambda password, hashed: pytest.fail("the right password was evicted"))
    assert checker.verdict(config, ("alice", PASSWORD)) is Verdict.OK


def test_no_password_is_kept_in_plain_form(config):
    checker = BasicAuthChecker()
    checker.verdict(config, ("alice", PASSWORD))
    checker.verdict(config, ("alice", b"a wrong one"))
    kept = b"".join(list(checker._ok) + list(checker._failed))
    assert PASSWORD not in kept and b"a wrong one" not in kept and len(kept) == 2 * 32  # two HMAC-SHA256 digests


@pytest.fixture
def alice_server(exporter, tmp_path):
    """A server whose one user, alice, has the password `right`: its /livez URL."""
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('right')}\n")
    server = start_server(create_app(exporter, WebConfigFile(path)))
    yield server.url + "/livez"
    server.stop()


def hold_checks(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """From now on every bcrypt check waits for `release` (set) once it has said it started: (release, started)."""
    release, started = threading.Event(), threading.Event()
    real = auth.bcrypt.checkpw

    def held(password: bytes, hashed: bytes) -> bool:
        started.set()
        release.wait(60)
        return real(password, hashed)

    monkeypatch.setattr(auth.bcrypt, "checkpw", held)
    return release, started


@pytest.mark.integration
def test_a_check_that_cannot_start_at_once_is_answered_429_at_once_while_cached_scrapes_pass(alice_server,
                                                                                               monkeypatch):
    url = alice_server
    assert requests.get(url, auth=("alice", "right"), timeout=10).status_code == 200  # cached from here on
    release, started = hold_checks(monkeypatch)
    held = threading.Thread(target=requests.get, args=(url,), kwargs={"auth": ("alice", "guess"), "timeout": 60})
    try:
        held.start()
        assert started.wait(10)  # the one check allowed is running
        begin = time.monotonic()
        busy = requests.get(url, auth=("nobody", "another guess"), timeout=10)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1" and time.monotonic() - begin < 1.0
        assert "WWW-Authenticate" not in busy.headers  # not a verdict on the password
        assert requests.get(url, auth=("alice", "right"), timeout=10).status_code == 200  # cached: no check needed
        release.set()
        held.join(timeout=30)
        assert wait_for(lambda: requests.get(url, auth=("nobody", "another guess"), timeout=10).status_code == 401)
    finally:
        release.set()


@pytest.mark.integration
def test_cached_scrapes_are_answered_while_64_wrong_passwords_wait_on_checks_that_never_end(alice_server,
                                                                                          monkeypatch):
    """Every check is held until the end: a cached scrape that queued behind checks (as on the shared worker pool
    before issue 16) would wait until they are released and time out here; it must not need them at all."""
    url = alice_server

    def guess(n: int) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(url, auth=(f"user{n % 4}", f"guess {n}"), timeout=60)

    assert requests.get(url, auth=("alice", "right"), timeout=10).status_code == 200  # cached from here on
    release, started = hold_checks(monkeypatch)
    guessers = [threading.Thread(target=guess, args=(n,)) for n in range(64)]
    try:
        for thread in guessers:
            thread.start()
        assert started.wait(10)  # a check is running and will not end until released
        answers = [requests.get(url, auth=("alice", "right"), timeout=5).status_code for _ in range(20)]
        assert not release.is_set() and any(thread.is_alive() for thread in guessers)  # still held meanwhile
        assert answers == [200] * 20
    finally:
        release.set()
        for thread in guessers:
            thread.join(timeout=60)


@pytest.mark.integration
def test_simultaneous_first_requests_with_the_same_right_password_share_one_check_and_all_succeed(exporter, tmp_path,
                                                                                                   checks):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('right', cost=10)}\n")
    server = start_server(create_app(exporter, WebConfigFile(path)))
    barrier = threading.Barrier(10)
    codes: list[int] = []

    def first_request() -> None:
        barrier.wait(10)
        codes.append(requests.get(server.url + "/livez", auth=("alice", "right"), timeout=30).status_code)

    try:
        threads = [threading.Thread(target=first_request) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        server.stop()
    assert codes == [200] * 10  # none told 429: they waited for the one check of the same credentials
    assert len(checks) == 1


@pytest.mark.skipif(sys.platform != "linux", reason="a per-thread nice value is Linux's")
def test_bcrypt_runs_in_a_thread_of_lower_cpu_priority_than_the_server(config, monkeypatch):
    seen: list[tuple[str, int]] = []

    def spy(password: bytes, hashed: bytes) -> bool:
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return False

    monkeypatch.setattr(auth.bcrypt, "checkpw", spy)
    BasicAuthChecker().verdict(config, ("alice", b"wrong"))
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert len(seen) == 1 and seen[0][0].startswith("exporter-bcrypt") and seen[0][1] == min(19, mine + auth.BCRYPT_NICE)


def test_a_right_password_longer_than_72_bytes_is_checked_on_its_first_72_as_exporter_toolkit_does(tmp_path):
    import base64
    import secrets

    import bcrypt

    password = base64.b64encode(secrets.token_bytes(64))  # 88 bytes, as `openssl rand -base64 64` gives
    hashed = bcrypt.hashpw(password[:72], bcrypt.gensalt(4)).decode()  # what htpasswd -B and bcrypt 4 store for it
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    config = load_web_config(path)
    checker = BasicAuthChecker()
    assert checker.verdict(config, ("prometheus", password)) is Verdict.OK
    assert checker.verdict(config, ("prometheus", password[:72] + b"anything after")) is Verdict.OK  # Go's bcrypt too
    assert checker.verdict(config, ("prometheus", password[:71])) is Verdict.WRONG
    assert checker.verdict(config, ("prometheus", b"x" + password[1:])) is Verdict.WRONG
    assert checker.verdict(config, ("nobody", password)) is Verdict.WRONG


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])  # $2b$<cost>$...: 2**cost rounds of bcrypt's key setup


def test_every_user_known_or_not_costs_the_same_bcrypt_work_whatever_the_cost_of_its_hash(tmp_path, checks):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {bcrypt_hash('a', cost=4)}\n  bob: {bcrypt_hash('b', cost=7)}\n"
                    f"  carol: {bcrypt_hash('c', cost=5)}\n")
    config = load_web_config(path)
    checker = BasicAuthChecker()
    work = {}
    for user, password in (("alice", b"wrong"), ("bob", b"wrong"), ("carol", b"wrong"), ("nobody", b"wrong"),
                           ("alice", b"a"), ("carol", b"c")):
        checks.clear()
        verdict = checker.verdict(config, (user, password))
        work[user, password, verdict] = sum(2 ** bcrypt_cost(hashed) for hashed in checks)
    assert work == {("alice", b"wrong", Verdict.WRONG): 2**7, ("bob", b"wrong", Verdict.WRONG): 2**7,
                    ("carol", b"wrong", Verdict.WRONG): 2**7, ("nobody", b"wrong", Verdict.WRONG): 2**7,
                    ("alice", b"a", Verdict.OK): 2**7, ("carol", b"c", Verdict.OK): 2**7}


class GatedBcrypt:
    """The real bcrypt.checkpw, once the test lets each check through; records whose password it checked."""

    def __init__(self) -> None:
        self.real = auth.bcrypt.checkpw
        self.order: list[bytes] = []
        self.started = threading.Semaphore(0)
        self.gate = threading.Semaphore(0)

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.order.append(password)
        self.started.release()
        assert self.gate.acquire(timeout=30)
        return self.real(password, hashed)


def test_a_flooding_address_gets_one_check_at_a_time_and_another_address_gets_the_next_one(config, monkeypatch):
    import asyncio

    gated = GatedBcrypt()
    monkeypatch.setattr(auth.bcrypt, "checkpw", gated)
    checker = BasicAuthChecker()
    flood, scraper = "127.0.0.1", "127.0.0.2"

    async def scenario() -> dict:
        loop = asyncio.get_running_loop()

        def attempt(address: str, user: str, password: bytes) -> asyncio.Task:
            return loop.create_task(checker.verdict_on_loop(config, (user, password), address))

        first = attempt(flood, "nobody", b"guess 0")
        assert await loop.run_in_executor(None, gated.started.acquire, True, 10)  # the flood's first check runs
        second = attempt(flood, "alice", b"guess 1")  # the same address, a check already under way
        right = attempt(scraper, "alice", PASSWORD)  # another address: it waits its turn
        await asyncio.sleep(0.05)
        assert second.done() and second.result() is Verdict.BUSY
        assert not right.done()
        third = attempt(flood, "alice", b"guess 2")  # still the flood's check running: busy at once
        await asyncio.sleep(0.05)
        assert third.done() and third.result() is Verdict.BUSY
        gated.gate.release()  # the flood's check ends; the scraper's starts next
        assert await loop.run_in_executor(None, gated.started.acquire, True, 10)
        fourth = attempt(flood, "alice", b"guess 3")  # the flood's address is free again: it waits behind the scraper
        await asyncio.sleep(0.05)
        assert not fourth.done()
        gated.gate.release()
        verdict = await asyncio.wait_for(right, 10)
        assert await loop.run_in_executor(None, gated.started.acquire, True, 10)
        gated.gate.release()
        return {"first": await first, "right": verdict, "fourth": await asyncio.wait_for(fourth, 10)}

    results = asyncio.run(scenario())
    assert results == {"first": Verdict.WRONG, "right": Verdict.OK, "fourth": Verdict.WRONG}
    assert gated.order == [b"guess 0", PASSWORD, b"guess 3"]


def test_at_most_max_waiting_addresses_wait_and_the_rest_are_busy_at_once(config, monkeypatch):
    import asyncio

    gated = GatedBcrypt()
    monkeypatch.setattr(auth.bcrypt, "checkpw", gated)
    checker = BasicAuthChecker()

    async def scenario() -> list[Verdict]:
        loop = asyncio.get_running_loop()
        running = loop.create_task(checker.verdict_on_loop(config, ("alice", b"guess"), "127.0.0.1"))
        assert await loop.run_in_executor(None, gated.started.acquire, True, 10)
        waiting = [loop.create_task(checker.verdict_on_loop(config, ("alice", f"guess {n}".encode()), f"127.0.1.{n}"))
                   for n in range(auth.MAX_WAITING + 5)]
        await asyncio.sleep(0.05)
        busy = [t.result() for t in waiting if t.done()]
        assert len(checker._waiting) == auth.MAX_WAITING and len(checker._busy) == auth.MAX_WAITING + 1
        for _ in range(auth.MAX_WAITING + 1):
            gated.gate.release()
        await asyncio.wait_for(asyncio.gather(running, *(t for t in waiting if not t.done())), 30)
        return busy

    busy = asyncio.run(scenario())
    assert busy == [Verdict.BUSY] * 5  # the ones that found the queue full, answered at once
    assert len(gated.order) == auth.MAX_WAITING + 1
    assert not checker._waiting and not checker._busy and checker._running == 0  # nothing left behind
