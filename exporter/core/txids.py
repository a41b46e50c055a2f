"""`TxidTable`: which txids a telemetry remembers (seen partially filled, or already final), and since when.

Two generations of plain dicts: new txids go into the young one; when it holds half the capacity it becomes the
old one and the previous old one is handed to the reader to free (`take_dropped`), so a hook never frees (or
walks) a large table. Plain dicts of str -> float are never tracked by Python's garbage collector, so a full
collection does not walk 100,000 remembered txids (an `OrderedDict` would be walked at every one).

What counts as remembered is decided by the caller, who compares the stamp with its expiry mark; the table only
bounds memory: an entry lives at most until `capacity` newer txids have pushed it out.
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_BACKLOG = 4  # dropped generations waiting for a reader before the writer frees them itself


class TxidTable:
    __slots__ = ("capacity", "_dropped", "_new", "_newest", "_old", "_old_newest")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(2, int(capacity))
        self._new: dict[str, float] = {}
        self._old: dict[str, float] = {}
        self._newest = -float("inf")  # the newest stamp in `_new` (stamps are put in non-decreasing order)
        self._old_newest = -float("inf")
        self._dropped: list[tuple[dict[str, float], dict[str, float]]] = []  # (generation, its successor)

    def get(self, txid: str) -> float | None:
        stamp = self._new.get(txid)
        return self._old.get(txid) if stamp is None else stamp

    def put(self, txid: str, stamp: float) -> bool:
        """Remember `txid` at `stamp` (not before the previous put); O(1), never frees a generation itself.

        True when generations handed to the reader pile up (nobody has read for a long flood): then the caller
        takes them (`take_dropped`) rather than let memory grow.
        """
        new = self._new
        new[txid] = stamp
        self._newest = stamp
        if len(new) * 2 >= self.capacity:
            self._rotate()
            return len(self._dropped) > MAX_BACKLOG
        return False

    def _rotate(self) -> None:
        if self._old:
            self._dropped.append((self._old, self._new))
        self._old, self._old_newest = self._new, self._newest
        self._new = {}

    def pop(self, txid: str) -> None:
        self._new.pop(txid, None)
        self._old.pop(txid, None)

    def expire(self, mark: float) -> None:
        """Hand whole generations stamped entirely before `mark` to the reader (O(1))."""
        if self._newest < mark and self._new:
            self._rotate()
        if self._old_newest < mark and self._old:
            self._dropped.append((self._old, {}))
            self._old = {}

    def take_dropped(self) -> list[tuple[dict[str, float], dict[str, float]]]:
        """The generations handed over since the last call: the reader frees them outside any lock."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def __contains__(self, txid: object) -> bool:
        return txid in self._new or txid in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def __iter__(self) -> Iterator[str]:
        yield from self._old
        yield from (t for t in self._new if t not in self._old)
