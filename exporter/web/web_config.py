"""`--web-config-file`: TLS, basic auth and response headers in the exporter-toolkit format that node_exporter
and the other official exporters read.

    tls_server_config:
      cert_file: server.crt           # relative paths are relative to this file
      key_file: server.key
      client_ca_file: ca.crt          # with client_auth_type RequireAndVerifyClientCert: mutual TLS
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2b$10$...          # bcrypt hash
    http_server_config:
      headers:
        X-Frame-Options: deny

Any problem (an unknown key, an unreadable file, a certificate or key that does not load, a hash that is not
bcrypt) is a `WebConfigError` whose message names it, in one line. `WebConfigFile` re-reads the file, and the
certificate files it names, from a watcher thread when they change: a new password applies to the next request, the
whole TLS section (certificate, CA, client_auth_type, versions) to the next connection, without a restart. A change
that does not load, or turns TLS on or off, is refused whole: logged, and the previous configuration stays.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import ssl
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

log = logging.getLogger("kraken_capacity_exporter.http")

TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version")
HTTP_KEYS = ("headers",)
# The response headers exporter-toolkit lets a web config set.
ALLOWED_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "X-XSS-Protection",
                   "Content-Security-Policy")
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
BCRYPT_HASH = re.compile(r"^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


class WebConfigError(ValueError):
    """The web config file cannot be used; the message names the problem in one line."""


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str | None = None

    def files(self) -> tuple[Path, ...]:
        """The certificate files this section names, in a fixed order."""
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True)
class WebConfig:
    """One loaded version of the file. `users` maps a user name to its bcrypt hash."""

    tls: TLSServerConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    # cost -> a hash of a random password, for every cost from the lowest to the highest of `users` (see `against`)
    dummy_hashes: Mapping[int, bytes] = field(default_factory=dict, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    # The state of the file and of `files()` just before this version read them (see `_signature`): a change landing
    # while it loads then differs from it, so the next look loads again.
    read_from: tuple = field(default=(), repr=False, compare=False)

    def files(self) -> tuple[Path, ...]:
        """The certificate files this version read (re-read when they change)."""
        return () if self.tls is None else self.tls.files()

    @property
    def dummy_hash(self) -> bytes:
        """What an unknown user's password is checked against: a hash at the highest cost in use."""
        return self.dummy_hashes[max(self.dummy_hashes)] if self.dummy_hashes else b""

    def against(self, user: str) -> tuple[bytes, ...]:
        """The hashes a password for `user` is checked against, the first deciding: the user's own (or, for an unknown
        user, the dummy at the highest cost), then dummies at its cost and each cost above up to the highest. bcrypt's
        work doubles with each cost (2**cost rounds), and 2**c + 2**c + ... + 2**(highest - 1) = 2**highest: every
        check, of any user, known or not, does the same work, so its time tells no user name."""
        hashed = self.users.get(user)
        if hashed is None:
            return (self.dummy_hash,)
        top = max(self.dummy_hashes, default=0)
        return (hashed, *(self.dummy_hashes[cost] for cost in range(bcrypt_cost(hashed), top)))


def _mapping(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in allowed:
            raise WebConfigError(f"{where}: unknown or unsupported key {key!r} (known: {', '.join(allowed)})")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WebConfigError(f"{where}: expected a non-empty string")
    return value.strip()


def _tls(raw: Any, base: Path) -> TLSServerConfig | None:
    section = _mapping(raw, "tls_server_config", TLS_KEYS)
    if not section:
        return None
    for key in ("cert_file", "key_file"):
        if key not in section:
            raise WebConfigError(f"tls_server_config: missing {key}")
    auth = _string(section.get("client_auth_type", "NoClientCert"), "tls_server_config.client_auth_type")
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: {auth} (a client certificate nobody verifies) is "
                             "not supported; use RequireAndVerifyClientCert or VerifyClientCertIfGiven")
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: {auth!r} is not one of {', '.join(CLIENT_AUTH)}")
    ca = base / _string(section["client_ca_file"], "tls_server_config.client_ca_file") if "client_ca_file" in section else None
    if ca is not None and auth == "NoClientCert":
        raise WebConfigError("tls_server_config: client_ca_file is set but client_auth_type is NoClientCert")
    if ca is None and auth != "NoClientCert":
        raise WebConfigError(f"tls_server_config: client_auth_type {auth} needs client_ca_file")
    for key in ("min_version", "max_version"):
        if key in section and (not isinstance(section[key], str) or section[key] not in TLS_VERSIONS):
            raise WebConfigError(f"tls_server_config.{key}: {section[key]!r} is not one of {', '.join(TLS_VERSIONS)}")
    lowest, highest = section.get("min_version", "TLS12"), section.get("max_version")
    if highest is not None and TLS_VERSIONS[lowest] > TLS_VERSIONS[highest]:
        raise WebConfigError(f"tls_server_config: min_version {lowest} is above max_version {highest} "
                             "(no handshake could succeed)")
    return TLSServerConfig(
        cert_file=base / _string(section["cert_file"], "tls_server_config.cert_file"),
        key_file=base / _string(section["key_file"], "tls_server_config.key_file"),
        client_ca_file=ca, client_auth_type=auth, min_version=lowest, max_version=highest,
    )


def _users(raw: Any) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WebConfigError("basic_auth_users: expected a mapping of user name to bcrypt hash")
    users = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(f"basic_auth_users: {user!r} is not a valid user name")
        if not isinstance(hashed, str) or not BCRYPT_HASH.match(hashed):
            raise WebConfigError(f"basic_auth_users.{user}: not a bcrypt hash ($2b$..., 60 characters; "
                                 "docs/security.md, 'TLS and basic auth', shows how to make one)")
        users[user] = hashed.encode()
    return users


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    section = _mapping(raw, "http_server_config", HTTP_KEYS)
    headers = section.get("headers") or {}
    if not isinstance(headers, dict):
        raise WebConfigError("http_server_config.headers: expected a mapping of header name to value")
    allowed = {h.lower(): h for h in ALLOWED_HEADERS}
    out = []
    for name, value in headers.items():
        if not isinstance(name, str) or name.lower() not in allowed:
            raise WebConfigError(f"http_server_config.headers: {name!r} cannot be set (allowed: {', '.join(ALLOWED_HEADERS)})")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise WebConfigError(f"http_server_config.headers.{name}: expected a one-line string")
        out.append((allowed[name.lower()], value))
    return tuple(out)


def _context(tls: TLSServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version is not None:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    context.set_alpn_protocols(["http/1.1"])
    for key, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file), ("client_ca_file", tls.client_ca_file)):
        if path is not None and not os.access(path, os.R_OK):
            reason = "no such file" if not path.exists() else "not readable"
            raise WebConfigError(f"tls_server_config.{key}: cannot read {path}: {reason}")
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(f"tls_server_config: certificate {tls.cert_file} with key {tls.key_file} does not load: "
                             f"{_ssl_reason(exc)}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"tls_server_config.client_ca_file: {tls.client_ca_file} does not load: "
                                 f"{_ssl_reason(exc)}") from None
    return context


def _ssl_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or str(exc)


def bcrypt_cost(hashed: bytes) -> int:
    """The cost of a hash that `BCRYPT_HASH` matched ($2b$<cost>$...)."""
    return int(hashed.split(b"$")[2])


def _dummy_hashes(users: Mapping[str, bytes], previous: WebConfig | None = None) -> dict[int, bytes]:
    """A hash of a random password at every cost from the lowest to the highest in use (see `WebConfig.against`).
    The previous version's are kept for the costs still in use (a hash at cost 12 takes a quarter of a second)."""
    costs = [bcrypt_cost(h) for h in users.values()]
    if not costs:
        return {}
    kept = previous.dummy_hashes if previous is not None else {}
    return {cost: kept.get(cost) or bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
            for cost in range(min(costs), max(costs) + 1)}


def load_web_config(path: str | os.PathLike[str], previous: WebConfig | None = None) -> WebConfig:
    """Read and check the file; raise `WebConfigError` naming the first problem. `previous`: the version in force,
    whose dummy hashes are reused for the costs still in use."""
    file = Path(path)
    read_from = _signature((file,))  # taken before reading: an edit landing meanwhile is seen by the next look
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{file}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WebConfigError(f"{file}: not valid YAML{where}") from None
    try:
        top = _mapping(raw, "web config", TOP_KEYS)
        tls = _tls(top.get("tls_server_config"), file.parent)
        users = _users(top.get("basic_auth_users"))
        headers = _headers(top.get("http_server_config"))
        dummy_hashes = _dummy_hashes(users, previous)
        if tls is not None:
            read_from += _signature(tls.files())
        config = WebConfig(tls=tls, users=users, headers=headers, dummy_hashes=dummy_hashes,
                           ssl_context=_context(tls) if tls else None, read_from=read_from)
    except WebConfigError as exc:
        raise WebConfigError(f"{file}: {exc}") from None
    return config


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


class WebConfigFile:
    """The web config file, re-read by a watcher thread when it (or a certificate file it names) changes.

    Construction loads it and raises `WebConfigError` when it is unusable. A daemon thread then checks the files'
    modification times every `poll_interval` seconds (a few `stat` calls) and loads a changed version, once it has
    stayed the same for one interval, off the request path and the event loop; `current()` only returns the version
    in force. A version that does not load, or that turns TLS on or off (the listener cannot change its protocol),
    is refused whole: the previous one stays in force (never fail open), the error is logged, and `reload_error`
    names it until a version loads.
    """

    def __init__(self, path: str | os.PathLike[str], poll_interval: float = 0.5) -> None:
        self.path = Path(path)
        self.reloads = 0  # versions loaded after the first
        self.reload_error: str | None = None  # why the file on disk is not the version in force, if it is not
        self._lock = threading.Lock()
        self._config = load_web_config(self.path)
        self._signature = self._config.read_from  # the files as this version read them
        self._last_seen = self._signature  # the files' state at the watcher's last poll
        self._stop = threading.Event()
        weakref.finalize(self, self._stop.set)  # the watcher ends with this object, or on close()
        threading.Thread(target=_watch, args=(weakref.ref(self), self._stop, poll_interval),
                         name="exporter-web-config-watcher", daemon=True).start()

    def current(self) -> WebConfig:
        """The version in force: no file access, safe on the event loop."""
        return self._config

    def current_ssl_context(self) -> ssl.SSLContext:
        """The SSLContext of the version in force, for a new connection's handshake (only with TLS)."""
        context = self._config.ssl_context
        assert context is not None, "current_ssl_context() without tls_server_config"
        return context

    def ssl_context(self) -> Callable[[], ssl.SSLContext] | None:
        """What `start_server(tls=...)` takes: the function giving each new connection the SSLContext of the version
        in force (certificate, CA, client_auth_type, versions: the whole TLS config), or None without TLS."""
        return self.current_ssl_context if self._config.tls is not None else None

    def close(self) -> None:
        """Stop watching the files (the version in force stays)."""
        self._stop.set()

    def refresh(self) -> bool:
        """Re-read the files if they changed since the last look; True when a new version is now in force.
        The watcher calls it; it may block (file reads, SSL context, bcrypt), so never call it on the event loop."""
        with self._lock:
            signature = self._current_signature(self._config)
            if signature == self._signature:
                return False
            return self._reload(signature)

    def poll(self) -> bool:
        """What the watcher calls every interval: `refresh()`, once the files have stayed the same since the last
        poll (a file caught halfway through being written, e.g. still empty, is never loaded)."""
        signature = self._current_signature(self._config)
        settled, self._last_seen = signature == self._last_seen, signature
        return settled and signature != self._signature and self.refresh()

    def _current_signature(self, config: WebConfig) -> tuple:
        return _signature((self.path, *config.files()))

    def _reload(self, signature: tuple) -> bool:
        old = self._config
        self._signature = signature  # a version that does not load is not retried until the files change again
        try:
            new = load_web_config(self.path, previous=old)
        except WebConfigError as exc:
            return self._refuse(f"cannot be used: {exc}")
        if (old.tls is None) != (new.tls is None):
            return self._refuse("tls_server_config: turning TLS on or off takes a restart")
        self._config = new
        self._signature = new.read_from  # not the files now: an edit landing during the load is loaded next time
        self.reloads += 1
        self.reload_error = None
        log.info("web config %s reloaded (%d basic-auth user(s), TLS %s)", self.path, len(new.users),
                 "on" if new.tls else "off")
        return True

    def _refuse(self, reason: str) -> bool:
        self.reload_error = reason
        log.error("web config %s changed but %s; keeping the previous one", self.path, reason)
        return False


def _watch(ref: weakref.ref[WebConfigFile], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        web = ref()
        if web is None:
            return
        try:
            web.poll()
        except Exception:  # never let the watcher die: the previous version stays in force
            log.exception("web config %s: reloading failed", web.path)
        del web
