"""`TxidTable`: what a telemetry remembers of each order it has seen, and since when.

One table for both things remembered: an order seen partially filled while open (so it counts as a partial-open
once), and an order that ended (so a late or repeated row changes nothing). One table, not two, because on a busy
day every lookup in a large dict is a cache miss: a new partial-open or a fill now costs one lookup and one insert
instead of two lookups in each of two tables and an insert. Each value is the stamp, signed: positive while the order
is open and seen partially filled, negative once it ended (stamps are clock readings, always > 0). The sign holds
two states: remembering every order seen open (a rate counter adds 1 per new order) is a third, and needs another
encoding or a table of its own (at the cost of one more lookup on the common poll).

Two generations of plain dicts: new txids go into the young one; when it holds half the capacity it becomes the
old one and the previous old one is handed to the reader to free (`take_dropped`), so a hook never frees (or
walks) a large table. Plain dicts of str -> float are never tracked by Python's garbage collector, so a full
collection does not walk 200,000 remembered txids (an `OrderedDict` would be walked at every one).

What counts as remembered is decided by the caller's expiry mark (an entry stamped before it is forgotten); the
table only bounds memory: an entry lives at most until `capacity` newer txids have pushed it out, and a txid pushed
out while still within the mark is counted in `forgotten` (`txid_table_full`).
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_BACKLOG = 4  # dropped generations waiting for a reader before the writer frees them itself

Generation = dict[str, float]


class TxidTable:
    __slots__ = ("capacity", "forgotten", "_dropped", "_new", "_newest", "_old", "_old_newest")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(2, int(capacity))
        self.forgotten = 0  # txids the writer let go early while freeing a backlog (the reader collects the count)
        self._new: Generation = {}
        self._old: Generation = {}
        self._newest = -float("inf")  # the newest stamp in `_new` (stamps are put in non-decreasing order)
        self._old_newest = -float("inf")
        self._dropped: list[tuple[Generation, Generation]] = []  # (generation, its successor)

    # ---- the hooks' side: each is one lookup (two on a miss: young, then old generation) and at most one insert

    def see_open(self, txid: str, stamp: float, mark: float, partial: bool) -> bool:
        """An open row of `txid` at `stamp`; True when it is a new partial-open (`partial`, and not remembered).

        An order remembered as seen partially filled stays remembered from `stamp` on; one that ended is left alone.
        """
        new = self._new
        known = new.get(txid)
        if known is None:
            known = self._old.get(txid)
        if known is not None and abs(known) >= mark:  # remembered
            if known < 0.0:
                return False  # ended: a late open row changes nothing
            first = False  # seen partially filled before
        elif partial:
            first = True
        else:
            return False  # neither partially filled nor remembered: nothing to keep
        new[txid] = stamp
        self._newest = stamp
        if len(new) * 2 >= self.capacity:
            self._rotate_at(mark)
        return first

    def end(self, txid: str, stamp: float, mark: float) -> bool:
        """`txid` ended at `stamp`; True unless it had already ended (and is still remembered)."""
        new = self._new
        known = new.get(txid)
        if known is None:
            known = self._old.get(txid)
        if known is not None and -known >= mark:
            return False
        new[txid] = -stamp
        self._newest = stamp
        if len(new) * 2 >= self.capacity:
            self._rotate_at(mark)
        return True

    def _rotate_at(self, mark: float) -> None:
        """The young generation is full: it becomes the old one, and the old one is handed to the reader."""
        self._rotate()
        if len(self._dropped) > MAX_BACKLOG:  # nobody has read for a long flood: free them here, once in a while
            self.forgotten += forgotten_early(self.take_dropped(), mark)

    def _rotate(self) -> None:
        if self._old:
            self._dropped.append((self._old, self._new))
        self._old, self._old_newest = self._new, self._newest
        self._new = {}

    # ---- the reader's side

    def expire(self, mark: float) -> None:
        """Hand whole generations stamped entirely before `mark` to the reader (O(1))."""
        if self._newest < mark and self._new:
            self._rotate()
        if self._old_newest < mark and self._old:
            self._dropped.append((self._old, {}))
            self._old = {}

    def take_dropped(self) -> list[tuple[Generation, Generation]]:
        """The generations handed over since the last call: the reader frees them outside any lock."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def take_forgotten(self) -> int:
        forgotten, self.forgotten = self.forgotten, 0
        return forgotten

    # ---- inspection (tests, debugging)

    def state(self, txid: str) -> tuple[str, float] | None:
        """("seen", stamp) for an order seen partially filled, ("ended", stamp) for one that ended, else None."""
        known = self._new.get(txid)
        if known is None:
            known = self._old.get(txid)
        if known is None:
            return None
        return ("seen", known) if known > 0.0 else ("ended", -known)

    def __contains__(self, txid: object) -> bool:
        return txid in self._new or txid in self._old

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def __iter__(self) -> Iterator[str]:
        yield from self._old
        yield from (t for t in self._new if t not in self._old)


def forgotten_early(dropped: list[tuple[Generation, Generation]], mark: float) -> int:
    """Txids a full table let go while still remembered (stamped at or after `mark`) and not put again since."""
    return sum(1 for generation, successor in dropped for txid, value in generation.items()
               if abs(value) >= mark and txid not in successor)
