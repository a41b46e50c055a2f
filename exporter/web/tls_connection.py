"""A TLS connection's standing when the TLS config changes under it.

Each new connection handshakes with the SSLContext in force (the web config's whole TLS section), so a reload applies
to the next connection. A connection made before stays open only while its handshake would also pass the current
config: a tightened `client_auth_type`, a removed client CA or a raised `min_version` ends the connections it would
have refused, while a client with the right certificate keeps its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from collections.abc import Callable
from typing import Any

TLSContexts = Callable[[], ssl.SSLContext]  # the SSLContext in force, asked once per new connection
_TLS_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
                 "TLSv1.3": ssl.TLSVersion.TLSv1_3}
MISDIRECTED = b'{"error": "the TLS settings changed since this connection was made: reconnect"}'


_CA_INDEX: weakref.WeakKeyDictionary[ssl.SSLContext, tuple[list[tuple[bytes, Any]], frozenset[bytes]]] = \
    weakref.WeakKeyDictionary()


def _client_cas(context: ssl.SSLContext) -> tuple[list[tuple[bytes, Any]], frozenset[bytes]]:
    """The context's trusted client CAs as (DER, subject) pairs and the set of DERs, parsed once per context."""
    if context not in _CA_INDEX:
        pairs = [(der, info.get("subject")) for der, info in
                 zip(context.get_ca_certs(binary_form=True), context.get_ca_certs(), strict=True)]
        _CA_INDEX[context] = (pairs, frozenset(der for der, _ in pairs))
    return _CA_INDEX[context]


def still_admitted(connection: ssl.SSLObject, made_with: ssl.SSLContext, current: ssl.SSLContext) -> bool:
    """Would the handshake this connection made under `made_with` also pass `current`? Its TLS version within the
    current bounds, a client certificate if one is now required, and the CA that verified it still trusted (matched
    by name: every old CA of its issuer's name must still be there)."""
    version = _TLS_VERSIONS.get(connection.version() or "")
    if version is None or version < current.minimum_version:
        return False
    if current.maximum_version != ssl.TLSVersion.MAXIMUM_SUPPORTED and version > current.maximum_version:
        return False
    peer = connection.getpeercert()  # None or {} without a verified client certificate
    if not peer:
        return current.verify_mode != ssl.CERT_REQUIRED
    if current.verify_mode == ssl.CERT_NONE:
        return True
    old, _ = _client_cas(made_with)
    issuers = {der for der, subject in old if subject == peer.get("issuer")} or {der for der, _ in old}
    return issuers <= _client_cas(current)[1]


class TLSConnection:
    """One TLS connection's app, and its standing under the TLS config in force. When the config changes, `revisit`
    closes the connection while it is idle if the new config would refuse its handshake (e.g. it has no client
    certificate and one is now required); a request that arrives on it first gets 421 and the connection closes.
    Either way the client's next connection handshakes under the current config."""

    def __init__(self, app: Any, writer: asyncio.StreamWriter, made_with: ssl.SSLContext, contexts: TLSContexts) -> None:
        self._app = app
        self._writer = writer
        self._connection: ssl.SSLObject = writer.get_extra_info("ssl_object")
        self._made_with = made_with
        self._contexts = contexts
        self._in_flight = 0

    def admitted(self, current: ssl.SSLContext) -> bool:
        if current is not self._made_with:
            if not still_admitted(self._connection, self._made_with, current):
                return False
            self._made_with = current  # admitted under the new version too: checked again on the next change
        return True

    def revisit(self, current: ssl.SSLContext) -> None:
        if self._in_flight == 0 and not self.admitted(current):
            self._writer.transport.abort()  # no TLS goodbye: an idle client may never answer one

    async def __call__(self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any) -> None:
        if scope["type"] == "http" and not self.admitted(self._contexts()):
            # the connection may be closing already (revisited as the request arrived): then the client sees it close
            with contextlib.suppress(ssl.SSLError, OSError):
                await send({"type": "http.response.start", "status": 421, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(MISDIRECTED)).encode()),
                    (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": MISDIRECTED, "more_body": False})
            return
        self._in_flight += 1
        try:
            await self._app(scope, receive, send, sync_spawn, call_soon)
        finally:
            self._in_flight -= 1
