"""Pair names: users write `DOGE/USD`, `DOGEUSD`, `XDG/USD` or `XDGUSD`; Kraken's OpenOrders says `XDGUSD`.

A `PairNames` holds every spelling of one pair, upper-cased and without `/`, and the label we export
(Kraken's REST altname, so two bots configured with different spellings aggregate in PromQL).
Offline, aliases come from the DOGE↔XDG and BTC↔XBT renames; the Kraken source replaces them with what
the public `AssetPairs` endpoint says (key, altname, wsname).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Websocket/common names -> Kraken REST names.
_ASSET_ALIASES = {"DOGE": "XDG", "BTC": "XBT"}
_PAIR_RE = re.compile(r"^[A-Za-z0-9]{2,12}(/[A-Za-z0-9]{2,12})?$")


class PairError(ValueError):
    """A pair that cannot be a Kraken pair name."""


def _squash(name: str) -> str:
    return name.replace("/", "").upper()


def _rest_spelling(name: str) -> str:
    """`DOGE/USD` -> `XDGUSD`; without `/`, a leading and a trailing alias are replaced (`DOGEBTC` -> `XDGXBT`)."""
    upper = name.upper()
    if "/" in upper:
        base, quote = upper.split("/", 1)
        return _ASSET_ALIASES.get(base, base) + _ASSET_ALIASES.get(quote, quote)
    for common, rest in _ASSET_ALIASES.items():
        if upper.startswith(common) and len(upper) > len(common):
            upper = rest + upper[len(common):]
            break
    for common, rest in _ASSET_ALIASES.items():
        if upper.endswith(common) and len(upper) > len(common):
            return upper[: -len(common)] + rest
    return upper


@dataclass(frozen=True)
class PairNames:
    label: str
    spellings: frozenset[str]

    @classmethod
    def offline(cls, pair: str) -> PairNames:
        """Names known without asking Kraken: the given spelling and its alias form."""
        if not isinstance(pair, str) or not _PAIR_RE.match(pair.strip()):
            raise PairError(f"malformed pair {pair!r}: expected e.g. XDGUSD or DOGE/USD")
        pair = pair.strip()
        label = _rest_spelling(pair)
        return cls(label=label, spellings=frozenset({_squash(pair), label}))

    @classmethod
    def from_asset_pair(cls, configured: str, key: str, info: dict[str, Any]) -> PairNames:
        """All spellings from one `AssetPairs` entry; the label is its altname."""
        altname = str(info.get("altname") or key)
        names = {_squash(configured), _squash(key), _squash(altname), _rest_spelling(configured)}
        wsname = info.get("wsname")
        if isinstance(wsname, str) and wsname:
            names.add(_squash(wsname))
            names.add(_rest_spelling(wsname))
        return cls(label=altname.upper(), spellings=frozenset(names))

    def matches(self, kraken_pair: object) -> bool:
        """True when an OpenOrders `descr.pair` names this pair in any spelling, either way round: a pair
        configured as `XDGUSD` matches `DOGE/USD` and `DOGEUSD` rows, as one configured `DOGE/USD` matches `XDGUSD`
        (case-insensitive, `/` ignored, DOGE/XDG and BTC/XBT aliases resolved on both sides)."""
        if not isinstance(kraken_pair, str):
            return False
        name = str.__str__(kraken_pair)
        return _squash(name) in self.spellings or _rest_spelling(name) in self.spellings


def canonical_label(pair: object) -> str | None:
    """The exported label of a user's spelling (`DOGE/USD` -> `XDGUSD`), or None when it cannot be a pair."""
    if not isinstance(pair, str):
        return None
    try:
        return PairNames.offline(pair).label
    except PairError:
        return None


def names_from_asset_pairs(asset_pairs: dict[str, Any], configured: Iterable[str]) -> dict[str, PairNames]:
    """Every spelling of each configured pair, from an `AssetPairs` result (key, altname, wsname, aliases).

    Raises PairError naming a pair the result does not contain.
    """
    index: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, info in asset_pairs.items():
        if not isinstance(info, dict):
            continue
        for name in (key, info.get("altname"), info.get("wsname")):
            if isinstance(name, str) and name:
                index.setdefault(_squash(name), (key, info))
                index.setdefault(_rest_spelling(name), (key, info))
    resolved = {}
    for pair in configured:
        match = index.get(_squash(pair)) or index.get(_rest_spelling(pair))
        if match is None:
            raise PairError(f"Kraken does not know the pair {pair!r} (see its AssetPairs endpoint)")
        resolved[pair] = PairNames.from_asset_pair(pair, *match)
    return resolved
