"""Findings of the review of issue 17 (the Kraken WebSocket v2 `executions` stream), each reproduced against the
fake Kraken (REST through krakenex's real signatures, WebSocket v2 through `websockets`)."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import wait_for
from tests.stream_rig import StreamRig

pytestmark = pytest.mark.integration


def test_the_websocket_token_never_reaches_the_logs_even_with_websockets_debug_logging(kraken_secret, caplog):
    caplog.set_level(logging.DEBUG)  # the root and `websockets.*` at DEBUG: websockets logs every frame it sends
    rig = StreamRig(kraken_secret)
    try:
        rig.account.place("XDGUSD", 13)
        rig.start()
        rig.server.disconnect()  # a second connection, a second token
        assert wait_for(lambda: rig.fake.tokens.issued >= 2 and rig.stream.live, timeout=20)
        tokens = list(rig.fake.tokens._issued)
        assert tokens
        text = caplog.text + "".join(str(r.args) for r in caplog.records)
        assert "subscribe" in text  # the frames were logged (with the token taken out)
        for token in tokens:
            for piece in (token[:12], token[-12:], token[16:28]):
                assert piece not in text, "a piece of the WebSocket token is in the logs"
    finally:
        rig.stop()
