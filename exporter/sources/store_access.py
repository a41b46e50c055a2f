"""How to reach a Prometheus-compatible query API (Prometheus, VictoriaMetrics, Mimir, Thanos, Grafana Cloud):
credentials, TLS and extra headers, named as Prometheus' own `http_config` and Grafana's data source name them.

- basic auth: a username and a password read from a file (`basic_auth.password_file`);
- a bearer token read from a file (`authorization.credentials_file`), never together with basic auth;
- `tls_config`: a CA file to verify the server by, a client certificate and key for mutual TLS;
- extra headers, e.g. `X-Scope-OrgID` for a Mimir tenant.

Everything is checked when `StoreAccess.open()` reads it, before any request: a missing or unreadable file, an
empty secret, a CA or a certificate that does not load is an `AccessError` naming the setting (never the secret).
Secrets live only in the returned `OpenedAccess`; its `scrub()` takes them out of any text that is shown.

`requests` lets `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` replace a *session's* CA whenever a request does not name
one (psf/requests#3829); the CA given here is passed with every request instead, so it wins over the environment.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

MAX_SECRET_FILE_BYTES = 64 * 1024
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
AUTH_HEADERS = frozenset({"authorization"})
# Headers whose value is a credential (Authorization, X-Api-Key, X-Auth-Token...): scrubbed from shown text too.
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password")
# Shorter secrets are not scrubbed from text (it would mangle every message); they are never printed either.
MIN_SCRUBBED = 4


class AccessError(ValueError):
    """A setting that cannot be used; the message names it and never contains a secret."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


@dataclass(frozen=True)
class StoreAccess:
    """The settings as given: paths and names, no secret read yet. `names` maps each field to its flag."""

    username: str | None = None
    password_file: str | None = None
    bearer_token_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # values may be secret: not in repr
    names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def _name(self, key: str) -> str:
        return self.names.get(key, key)

    def open(self) -> OpenedAccess:
        """Read and check everything; an `AccessError` names the first setting that cannot be used."""
        self._check_combinations()
        secrets: list[str] = []
        auth: AuthBase | None = None
        if self.username is not None and self.password_file is not None:
            password = _read_secret(self.password_file, self._name("password_file"))
            secrets.append(password)
            auth = HTTPBasicAuth(self.username, password)
        elif self.bearer_token_file is not None:
            token = _read_secret(self.bearer_token_file, self._name("bearer_token_file"))
            secrets.append(token)
            auth = BearerAuth(token)
        headers = {}
        for name, value in self.headers:
            headers[name] = value
            if any(word in name.lower() for word in SECRET_HEADER_WORDS):
                secrets.append(value)  # an API gateway's key header: scrubbed like a password
        verify: str | None = None
        if self.ca_file is not None:
            verify = _checked_ca(self.ca_file, self._name("ca_file"))
        cert: tuple[str, str] | None = None
        if self.cert_file is not None and self.key_file is not None:
            cert = _checked_pair(self.cert_file, self.key_file, self._name("cert_file"), self._name("key_file"))
        return OpenedAccess(auth=auth, headers=headers, verify=verify, cert=cert, secrets=tuple(secrets),
                            names=dict(self.names), credentials=auth is not None)

    def _check_combinations(self) -> None:
        if (self.username is None) != (self.password_file is None):
            given, missing = (("username", "password_file") if self.password_file is None
                              else ("password_file", "username"))
            raise AccessError(self._name(given), f"needs {self._name(missing)} too")
        if self.username is not None and not self.username.strip():
            raise AccessError(self._name("username"), "is empty")
        if self.username is not None and self.bearer_token_file is not None:
            raise AccessError(self._name("bearer_token_file"),
                              f"give either a bearer token or {self._name('username')}, not both")
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            raise AccessError(self._name(given), f"needs {self._name(missing)} too")
        for name, value in self.headers:
            if not _HEADER_NAME.match(name):
                raise AccessError(self._name("headers"), f"{name!r} is not a header name")
            if any(c in value for c in "\r\n\0"):
                raise AccessError(self._name("headers"), f"the value of {name} has a line break")
            if name.lower() in AUTH_HEADERS and (self.username is not None or self.bearer_token_file is not None):
                raise AccessError(self._name("headers"), f"{name} would replace the credentials given; give one")
        lowered = [name.lower() for name, _ in self.headers]
        if len(set(lowered)) != len(lowered):
            raise AccessError(self._name("headers"), "one header given twice")


@dataclass(frozen=True)
class OpenedAccess:
    """The settings read: what each request carries. Its repr shows no secret."""

    auth: AuthBase | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify: str | None = None
    cert: tuple[str, str] | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    credentials: bool = False

    def name(self, key: str) -> str:
        """How the setting `key` is called where it was given (a flag), for messages."""
        return self.names.get(key, key.replace("_", " "))

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.auth
        session.headers.update(self.headers)
        return session

    def request_options(self) -> dict[str, Any]:
        """`verify` and `cert` for each request: named per request, so the environment cannot replace the CA."""
        options: dict[str, Any] = {}
        if self.verify is not None:
            options["verify"] = self.verify
        if self.cert is not None:
            options["cert"] = self.cert
        return options

    def scrub(self, text: str) -> str:
        """`text` with every secret (password, token, credential header) replaced by `***`: a server may echo
        what it was sent in an error, which is shown. Nothing here prints a secret itself."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= MIN_SCRUBBED:
                text = text.replace(secret, "***")
        return text


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>`; like basic auth, requests drops it on a redirect to another host."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def _read_secret(path: str, setting: str) -> str:
    """The file's content without surrounding whitespace (a trailing newline is not part of it), as Prometheus
    reads `password_file` and `credentials_file`."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise AccessError(setting, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise AccessError(setting, f"{path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB: not a secret file")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AccessError(setting, f"{path} is not UTF-8 text") from None
    if not text:
        raise AccessError(setting, f"{path} is empty")
    if any(c in text for c in "\r\n\0"):
        raise AccessError(setting, f"{path} holds more than one line")
    return text


def _readable(path: str, setting: str) -> str:
    if not Path(path).is_file():
        raise AccessError(setting, f"{path} is not a file")
    try:
        Path(path).open("rb").close()
    except OSError as exc:
        raise AccessError(setting, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    return path


def _checked_ca(path: str, setting: str) -> str:
    _readable(path, setting)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError):
        raise AccessError(setting, f"{path} holds no PEM CA certificate") from None
    return path


def _checked_pair(cert: str, key: str, cert_setting: str, key_setting: str) -> tuple[str, str]:
    _readable(cert, cert_setting)
    _readable(key, key_setting)
    try:
        ssl.create_default_context().load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError):
        raise AccessError(cert_setting, f"{cert} and {key} are not a PEM certificate and its unencrypted key") from None
    return cert, key
