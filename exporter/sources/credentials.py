"""Kraken API credentials: read from the environment or a krakenex key file, and never shown.

`repr`/`str` mask both values; the file must not be readable by group or others (like an SSH key).
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_KEY_FILE_BYTES = 64 * 1024  # a key file is two short lines


class CredentialsError(ValueError):
    """Credentials that cannot be used; the message never contains the secret."""


@dataclass(frozen=True)
class KrakenCredentials:
    key: str = field(repr=False)
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.key or not self.secret:
            raise CredentialsError("both an API key and an API secret are needed")
        try:
            base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise CredentialsError("the API secret is not base64 (copy it exactly as Kraken shows it)") from None

    def __repr__(self) -> str:
        return f"KrakenCredentials(key='{mask(self.key)}', secret='***')"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KrakenCredentials | None:
        """From KRAKEN_API_KEY / KRAKEN_API_SECRET; None when neither is set."""
        key, secret = env.get("KRAKEN_API_KEY", "").strip(), env.get("KRAKEN_API_SECRET", "").strip()
        if not key and not secret:
            return None
        return cls(key, secret)

    @classmethod
    def from_file(cls, path: str) -> KrakenCredentials:
        """krakenex's format: key on line 1, secret on line 2. Refuses a file others can read.

        Every problem with the file (missing, a directory, unreadable, not UTF-8, too short) is a
        CredentialsError naming the file; the message never quotes its content."""
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise CredentialsError(f"cannot read key file {path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise CredentialsError(f"key file {path} is {kind}; give the file holding the key and the secret")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); run chmod 600 {path}")
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise CredentialsError(f"cannot read key file {path}: {exc.strerror or type(exc).__name__}") from None
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise CredentialsError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes; is it the right file?")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CredentialsError(f"key file {path} is not UTF-8 text (byte {exc.start}); save it as plain text") from None
        lines = [line.strip() for line in text.splitlines()]
        if len(lines) < 2:
            raise CredentialsError(f"key file {path} must hold the key on line 1 and the secret on line 2")
        try:
            return cls(lines[0], lines[1])
        except CredentialsError as exc:
            raise CredentialsError(f"key file {path}: {exc}") from None


def mask(value: str) -> str:
    """Enough of a key to tell two apart in a log, not enough to use it."""
    return value[:4] + "…" if len(value) > 8 else "***"
