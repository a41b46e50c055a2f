"""What only Kraken's REST side can tell the executions stream, asked at a measured pace.

After every reconnect the stream's snapshot shows what is open now, not what happened while it was away:

1. `ClosedOrders` from the last event seen (50 a page, `ofs` to page on) settles every order that ended in the gap,
   including orders placed *and* ended in it, which no snapshot ever lists (a partial-cancel among them is still a
   canary). Not after the first connection: what ended before the exporter started is not its to count, as for the
   hooks.
2. `OpenOrders` once, when the snapshot lists orders whose start we do not know (open before we connected): their
   `opentm` times their fills.
3. `QueryOrders`, 50 txids a call, for what is still unsettled: orders missing from the snapshot, updates for orders
   never seen, fills whose start is still unknown. An order REST does not know either is given up (its fill counts,
   untimed); Kraken fails a whole call for one txid it does not know (`EOrder:Invalid order`), so such a batch is
   halved until that txid is alone.

Calls go one at a time and within a budget (`REST_HEADROOM` calls back to back, then one per `pace` seconds: Kraken's
REST counter is per key, shared with the poller and, often, the bot), and a failed call is retried with the stream's
backoff; paging resumes where it stopped (starting over would ask the same pages again and again while Kraken's
counter is full). A key without "Query Closed Orders & Trades"
(`EGeneral:Permission denied` on `ClosedOrders`/`QueryOrders`) gets one warning naming it, and what only REST could
settle is given up (and counted in the warning), not asked for again. Everything runs on the stream's event loop;
the blocking krakenex calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..core.executions import ExecutionBook, Observation
from .kraken_api import KrakenError

log = logging.getLogger("kraken_capacity_exporter.kraken_stream")

QUERY_BATCH = 50  # txids per QueryOrders call (Kraken's limit)
CLOSED_PAGE = 50  # orders per ClosedOrders page
MAX_CLOSED_PAGES = 40  # 2,000 orders ended in one gap at most; more is said in a warning
GAP_MARGIN = 1.0  # seconds before the last event seen where the ClosedOrders window starts
# Kraken's private call counter is per key and shared with the poller and, often, the bot: a Starter key holds 15
# and decays 0.33 a second. The stream takes at most REST_HEADROOM calls back to back, then one per DEFAULT_PACE
# seconds (half a Starter key's decay), so that a settle of thousands of orders never pushes the counter over.
REST_HEADROOM = 5.0
DEFAULT_PACE = 6.0
UNKNOWN_TXID = ("EOrder:Invalid order", "EOrder:Unknown order")  # QueryOrders with a txid Kraken does not know
CLOSED_PERMISSION = "Query Closed Orders & Trades"  # what ClosedOrders and QueryOrders of ended orders need


class Settler:
    """`after_snapshot(gap_since)` after each snapshot, `poke()` when the book has lookups pending."""

    def __init__(
        self,
        book: ExecutionBook,
        call: Callable[[str, dict[str, Any] | None], Any],
        apply: Callable[[list[Observation]], None],
        backoff: Callable[[int], float],
        pace: float = DEFAULT_PACE,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.book = book
        self._call = call
        self._apply = apply
        self._backoff = backoff
        self.pace = pace
        self._stopping = stopping
        self._gap_since: float | None = None
        self._need_opentm = False
        self._task: asyncio.Task[None] | None = None
        self._credit, self._credit_at = REST_HEADROOM, time.monotonic()  # calls the budget allows now
        self._closed_offset = 0  # ClosedOrders: the page to ask next
        self._asking = ""  # the endpoint of the call under way
        self._warned_denied = False
        self.closed_denied = False  # the key lacks Query Closed Orders & Trades: settling through REST is off

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def after_snapshot(self, gap_since: float | None) -> None:
        """A snapshot was applied; `gap_since` is the last event time seen before the gap (None: no gap to fill)."""
        if gap_since is not None:
            since = gap_since if self._gap_since is None else min(self._gap_since, gap_since)
            if since != self._gap_since:
                self._closed_offset = 0  # another window: its pages from the first
            self._gap_since = since
        self._need_opentm = self.book.unplaced() > 0
        self.poke()

    def poke(self) -> None:
        """Start settling on the running loop, unless it runs already or there is nothing to settle."""
        if not self.busy and (self._gap_since is not None or self._need_opentm or self.book.pending_lookups()):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while not self._stopping():
            try:
                if self.closed_denied and (self._gap_since is not None or self.book.pending_lookups()):
                    self._give_up()
                elif self._gap_since is not None:
                    await self._closed_since(self._gap_since)
                    self._gap_since = None
                elif self._need_opentm:
                    self._need_opentm = False
                    opened = await self._ask("OpenOrders", None)
                    if isinstance(opened, Mapping) and isinstance(opened.get("open"), Mapping):
                        self.book.note_open_orders(opened["open"])
                elif self.book.pending_lookups():
                    await self._query(self.book.pending_lookups()[:QUERY_BATCH])
                else:
                    return
                failures = 0
            except KrakenError as exc:
                if exc.result == "permission_denied" and self._asking in ("ClosedOrders", "QueryOrders"):
                    self.closed_denied = True  # asking again cannot help: one warning, then what is left is given up
                    continue
                failures += 1
                delay = self._backoff(failures)
                log.info("Kraken REST call for the stream failed (%s: %s); retrying in %.0f s", exc.result, exc, delay)
                await asyncio.sleep(delay)
            except Exception as exc:  # a bug must not leave the orders unsettled without a word
                failures += 1
                log.error("settling the Kraken stream's orders: unexpected %s: %s", type(exc).__name__, exc,
                          exc_info=failures == 1)
                await asyncio.sleep(self._backoff(failures))

    def _give_up(self) -> None:
        """The key may not read ended orders: what only REST could settle is given up, and said (a warning the
        first time, naming the permission)."""
        self._gap_since = None
        lost = self.book.pending_lookups()
        for order_id in lost:
            self.book.forget(order_id)
        self._apply(self.book.take_untimed())
        if not self._warned_denied:
            self._warned_denied = True
            log.warning("Kraken refuses ClosedOrders/QueryOrders (EGeneral:Permission denied): the API key lacks "
                        "Kraken's \"%s\" permission (Kraken > Settings > API). %d order(s) that ended while the stream "
                        "was away or whose start is unknown cannot be settled: how they ended (fill, partial fill, "
                        "cancel) is not counted, and a fill seen live without its start is counted untimed; REST is "
                        "not asked again until a restart",
                        CLOSED_PERMISSION, len(lost))
        elif lost:
            log.info("%d order(s) ended while the Kraken stream was away and cannot be settled (no \"%s\" "
                     "permission)", len(lost), CLOSED_PERMISSION)

    async def _ask(self, method: str, data: dict[str, Any] | None) -> Any:
        now = time.monotonic()
        credit = min(REST_HEADROOM, self._credit + (now - self._credit_at) / self.pace) if self.pace > 0 else 1.0
        if credit < 1.0:
            await asyncio.sleep((1.0 - credit) * self.pace)
            credit = 1.0
        self._credit, self._credit_at = credit - 1.0, time.monotonic()
        self._asking = method
        return await asyncio.to_thread(self._call, method, data)

    async def _closed_since(self, since: float) -> None:
        """Every order that ended since `since` (Kraken's clock), page by page."""
        while self._closed_offset < MAX_CLOSED_PAGES * CLOSED_PAGE:
            offset = self._closed_offset
            reply = await self._ask("ClosedOrders", {"start": f"{since - GAP_MARGIN:.6f}", "closetime": "close",
                                                     "ofs": str(offset)})
            closed = reply.get("closed") if isinstance(reply, Mapping) else None
            if not isinstance(closed, Mapping):
                raise KrakenError("malformed_reply", "ClosedOrders result has no 'closed' object")
            observations: list[Observation] = []
            for order_id, info in closed.items():
                if isinstance(order_id, str) and not self.book.has_ended(order_id):
                    observations += self.book.resolve(order_id, info)
            self._apply(observations)
            self._closed_offset = offset = offset + len(closed)
            count = reply.get("count")
            if not closed or not isinstance(count, int) or offset >= count:
                self._closed_offset = 0
                return
        self._closed_offset = 0
        log.warning("more than %d orders ended while the Kraken stream was away: the rest are settled one by one "
                    "when the stream misses them, or not at all", MAX_CLOSED_PAGES * CLOSED_PAGE)

    async def _query(self, batch: list[str]) -> None:
        try:
            result = await self._ask("QueryOrders", {"txid": ",".join(batch)})
        except KrakenError as exc:
            if not str(exc).startswith(UNKNOWN_TXID):
                raise
            # one txid Kraken does not know fails the whole call: halve the batch until it is alone, and forget it
            if len(batch) == 1:
                self.book.forget(batch[0])
                self._apply(self.book.take_untimed())
                return
            await self._query(batch[:len(batch) // 2])
            await self._query(batch[len(batch) // 2:])
            return
        observations: list[Observation] = []
        for order_id in batch:
            info = result.get(order_id) if isinstance(result, Mapping) else None
            if info is None:
                self.book.forget(order_id)
            else:
                observations += self.book.resolve(order_id, info)
        self._apply(observations + self.book.take_untimed())

