"""How to reach a Prometheus-compatible query API (Prometheus, VictoriaMetrics, Mimir, Thanos, Grafana Cloud):
credentials, TLS and extra headers, named as Prometheus' own `http_config` and Grafana's data source name them.

- basic auth: a username and a password read from a file (`basic_auth.password_file`);
- a bearer token read from a file (`authorization.credentials_file`), never together with basic auth;
- `tls_config`: a CA file to verify the server by, a client certificate and key for mutual TLS;
- extra headers, e.g. `X-Scope-OrgID` for a Mimir tenant.

Everything is checked when `StoreAccess.open()` reads it, before any request: a missing or unreadable file, an
empty secret, a CA or a certificate that does not load is an `AccessError` naming the setting (never the secret).
Secrets live only in the returned `OpenedAccess`; its `scrub()` takes them out of any text that is shown.

The environment is read explicitly, never by `requests` itself (its `trust_env` is off): `~/.netrc` is never read
(Prometheus' and promtool's clients do not read it either, and `requests` would silently add or replace credentials
from it); `REQUESTS_CA_BUNDLE` (else `CURL_CA_BUNDLE`) is the CA when no CA file is given, as `requests` would have
it, and is checked like one; `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` choose a proxy as `requests` would. The CA and
the proxy are passed with every request, so the CA given here wins over the environment (psf/requests#3829).

Credentials go out as UTF-8 bytes, as Go's clients (Prometheus, Grafana) send them; a redirect to another host
drops every credential header (`requests` drops only `Authorization`).
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth
from requests.utils import get_environ_proxies

MAX_SECRET_FILE_BYTES = 64 * 1024
# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
AUTH_HEADERS = frozenset({"authorization"})
# Headers whose value is a credential (Authorization, X-Api-Key, X-Auth-Token...): scrubbed from shown text too.
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password")
# Shorter secrets are not scrubbed from text (it would mangle every message); they are never printed either.
MIN_SCRUBBED = 4
# An HTTP credential as a server may echo it: the scheme stays, the credential goes.
_CREDENTIAL = re.compile(r"\b(Basic|Bearer)\s+[^\s\"',;)]+", re.IGNORECASE)
# The variables `requests` would take a CA bundle from, in its order.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


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

    def open(self, tls: bool = True, env: Mapping[str, str] | None = None) -> OpenedAccess:
        """Read and check everything; an `AccessError` names the first setting that cannot be used. With `tls`
        (an https URL) and no CA file, the CA bundle the environment names is checked too."""
        self._check_combinations()
        secrets: list[str] = []
        auth: AuthBase | None = None
        if self.username is not None and self.password_file is not None:
            password = _read_secret(self.password_file, self._name("password_file"))
            secrets += [password, _basic_credential(self.username, password)]
            auth = HTTPBasicAuth(self.username.encode("utf-8"), password.encode("utf-8"))
        elif self.bearer_token_file is not None:
            token = _read_secret(self.bearer_token_file, self._name("bearer_token_file"))
            secrets.append(token)
            auth = BearerAuth(token)
        headers: dict[str, str | bytes] = {}
        secret_headers = []
        for name, value in self.headers:
            headers[name] = value.encode("utf-8")
            if any(word in name.lower() for word in SECRET_HEADER_WORDS):
                secrets.append(value)  # an API gateway's key header: scrubbed like a password
                secret_headers.append(name)
        verify: str | None = None
        if self.ca_file is not None:
            verify = _checked_ca(self.ca_file, self._name("ca_file"))
        else:
            verify = _environment_ca(os.environ if env is None else env, self._name("ca_file"), checked=tls)
        cert: tuple[str, str] | None = None
        if self.cert_file is not None and self.key_file is not None:
            cert = _checked_pair(self.cert_file, self.key_file, self._name("cert_file"), self._name("key_file"))
        return OpenedAccess(auth=auth, headers=headers, verify=verify, cert=cert, secrets=tuple(secrets),
                            names=dict(self.names), credentials=auth is not None,
                            secret_headers=tuple(secret_headers))

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
        for i, (name, value) in enumerate(self.headers, start=1):
            if not HEADER_NAME.match(name):  # not shown: a mangled NAME=VALUE may hold the value
                raise AccessError(self._name("headers"), f"the name of header {i} is not a header name")
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
    headers: dict[str, str | bytes] = field(default_factory=dict, repr=False)
    verify: str | None = None
    cert: tuple[str, str] | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    credentials: bool = False
    secret_headers: tuple[str, ...] = field(default=(), repr=False)

    def name(self, key: str) -> str:
        """How the setting `key` is called where it was given (a flag), for messages."""
        return self.names.get(key, key.replace("_", " "))

    def session(self) -> requests.Session:
        """A session that reads nothing from the environment itself (see the module docstring)."""
        session = StoreSession(self.secret_headers)
        session.trust_env = False
        session.auth = self.auth
        session.headers.update(self.headers)  # type: ignore[arg-type]  # requests sends bytes values as they are
        return session

    def request_options(self, url: str = "") -> dict[str, Any]:
        """`verify`, `cert` and `proxies` for each request to `url`: named per request, so the environment cannot
        replace the CA, and taken from the environment here, where `requests` would have taken them."""
        options: dict[str, Any] = {"verify": self.verify or environment_ca(os.environ) or True,
                                   "proxies": get_environ_proxies(url) if url else {}}
        if self.cert is not None:
            options["cert"] = self.cert
        return options

    def scrub(self, text: str) -> str:
        """`text` with every secret (password, token, credential header, `user:password` as basic auth encodes it)
        and every `Basic …`/`Bearer …` credential replaced by `***`: a server may echo what it was sent in an
        error, which is shown. Nothing here prints a secret itself."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= MIN_SCRUBBED:
                text = text.replace(secret, "***")
        return _CREDENTIAL.sub(lambda m: f"{m.group(1)} ***", text)


class StoreSession(requests.Session):
    """`requests.Session` that, on a redirect to another host, drops the credential headers given as headers too
    (`requests` drops `Authorization` itself)."""

    def __init__(self, secret_headers: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._secret_headers = secret_headers

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if response.request.url and prepared_request.url and \
                self.should_strip_auth(response.request.url, prepared_request.url):
            for name in self._secret_headers:
                prepared_request.headers.pop(name, None)


def environment_ca(env: Mapping[str, str]) -> str | None:
    """The CA bundle `requests` would take from the environment (`REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`)."""
    return next((env[variable] for variable in CA_BUNDLE_VARIABLES if env.get(variable)), None)


def _environment_ca(env: Mapping[str, str], ca_setting: str, checked: bool) -> str | None:
    """`environment_ca`, checked like a CA file when it is going to be used (`checked`: an https URL)."""
    path = environment_ca(env)
    if path is None or not checked or Path(path).is_dir():  # a directory of hashed certificates, as requests allows
        return path
    variable = next(v for v in CA_BUNDLE_VARIABLES if env.get(v))
    if not Path(path).is_file():
        raise AccessError(variable, f"{path} is not a file: point it at a CA bundle, unset it, or give {ca_setting}")
    return _checked_ca(path, variable)


def _basic_credential(username: str, password: str) -> str:
    """`user:password` as an `Authorization: Basic` header carries it (UTF-8, base64)."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>`; like basic auth, requests drops it on a redirect to another host."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = b"Bearer " + self._token.encode("utf-8")  # type: ignore[assignment]
        return request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def _read_secret(path: str, setting: str) -> str:
    """The file's content without surrounding whitespace (a trailing newline is not part of it), as Prometheus
    reads `password_file` and `credentials_file`."""
    if not os.path.lexists(path):  # not shown: what was given may be the secret itself, not its file
        raise AccessError(setting, "no such file (the path given is not shown, in case it is the secret itself)")
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
