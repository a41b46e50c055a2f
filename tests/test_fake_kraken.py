"""The fake Kraken checks what krakenex really sends; these tests use krakenex itself, unpatched."""

import base64

import krakenex
import pytest
import requests

from exporter.demo.fake_kraken import kraken_signature

pytestmark = pytest.mark.integration


def api(fake, key="test-key-0001", secret=None):
    client = krakenex.API(key=key, secret=secret or fake._secret)
    client.uri = fake.url
    return client


def test_signature_matches_krakens_published_example():
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    body = b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert kraken_signature(secret, "/0/private/AddOrder", "1616492376594", body) == (
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_krakenex_signed_request_gets_open_orders_in_krakens_shape(fake_kraken):
    reply = api(fake_kraken).query_private("OpenOrders")
    assert reply["error"] == []
    row = reply["result"]["open"]["OAAAAA-AAAAA-AAAAA2"]
    assert row["descr"]["pair"] == "XDGUSD" and row["vol_exec"] == "4.00000000"


def test_a_wrong_secret_is_an_invalid_key(fake_kraken):
    other = base64.b64encode(b"x" * 64).decode()
    assert api(fake_kraken, secret=other).query_private("OpenOrders")["error"] == ["EAPI:Invalid key"]


def test_a_wrong_key_is_an_invalid_key(fake_kraken):
    assert api(fake_kraken, key="someone-else").query_private("OpenOrders")["error"] == ["EAPI:Invalid key"]


def test_a_replayed_nonce_is_refused(fake_kraken):
    client = api(fake_kraken)
    client._nonce = lambda: 1000  # two requests with one nonce, as two calls in one millisecond would send
    assert client.query_private("OpenOrders")["error"] == []
    assert client.query_private("OpenOrders")["error"] == ["EAPI:Invalid nonce"]


def test_trading_endpoints_are_recorded_and_refused(fake_kraken):
    reply = api(fake_kraken).query_private("AddOrder", {"pair": "XDGUSD", "type": "buy"})
    assert reply["error"] == ["EGeneral:Permission denied"]
    assert fake_kraken.calls == ["private/AddOrder"]


def test_asset_pairs_knows_altnames_and_refuses_unknown_pairs(fake_kraken):
    client = api(fake_kraken)
    assert client.query_public("AssetPairs", {"pair": "XDGUSD"})["result"]["XDGUSD"]["wsname"] == "XDG/USD"
    assert client.query_public("AssetPairs", {"pair": "NOPEUSD"})["error"] == ["EQuery:Unknown asset pair"]


def test_scripted_failures_fail_then_heal(fake_kraken):
    fake_kraken.fail("http_500", times=1)
    with pytest.raises(requests.HTTPError):
        api(fake_kraken).query_private("OpenOrders")
    assert api(fake_kraken).query_private("OpenOrders")["error"] == []
    fake_kraken.fail("EService:Busy")
    assert api(fake_kraken).query_private("OpenOrders")["error"] == ["EService:Busy"]
    fake_kraken.heal()
    assert api(fake_kraken).query_private("OpenOrders")["error"] == []
