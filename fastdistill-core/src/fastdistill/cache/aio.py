"""Event-loop side of the response cache: batched lookups, grouped writes and commit notices.

With hundreds of requests in flight, one ``SELECT`` per request (and one wake-up of the loop per
committed answer) costs more than the requests themselves: every SQLite call releases the GIL,
and the writer thread takes it.  :class:`LookupBatcher` answers every lookup made on one loop
during one turn of that loop with one query; :class:`WriteBuffer` hands the answers queued on
one loop during one turn to the writer thread as one group; :class:`LoopMailbox` delivers the
writer thread's "committed" notices to a loop in one callback per group.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class LookupBatcher:
    """Collects the keys looked up on each event loop during one turn; answers them at once.

    :param fetch: ``fetch(keys) -> {key: value}`` for the keys that were found (called on the
        loop's thread, once per turn with lookups).  An exception from it answers ``None`` (a
        miss) to every waiting lookup.
    """

    def __init__(self, fetch: Callable[[list[str]], dict[str, Any]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        # loops with lookups waiting for this turn's query (an entry lives one turn)
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[str, asyncio.Future[Any]]]] = {}

    async def get(self, key: str) -> Any:
        """The value stored for ``key``, or ``None``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            waiting = self._pending.get(loop)
            if waiting is None:
                for old in [lp for lp in self._pending if lp.is_closed()]:
                    del self._pending[old]  # a loop stopped before its turn's query ran
                waiting = self._pending[loop] = []
                loop.call_soon(self._answer, loop)
            waiting.append((key, future))
        return await future

    def _answer(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            waiting = self._pending.pop(loop, [])
        try:
            found = self._fetch(list(dict.fromkeys(k for k, _ in waiting)))
        except Exception:  # the cache never fails a request: everything is a miss
            found = {}
        for key, future in waiting:
            if not future.done():
                future.set_result(found.get(key))


class WriteBuffer:
    """Entries queued on each event loop during one turn, handed to ``submit(entries)`` at once
    (at the end of the turn, or earlier by :meth:`flush`).

    :param submit: called on the loop's thread with a non-empty list of entries.
    """

    def __init__(self, submit: Callable[[list[Any]], None]) -> None:
        self._submit = submit
        self._lock = threading.Lock()
        # loops with entries queued during this turn (an entry lives at most one turn)
        self._pending: dict[asyncio.AbstractEventLoop, list[Any]] = {}

    def add(self, entry: Any) -> None:
        """Queue ``entry`` (call from a coroutine: it is handed over at the end of this turn)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entries = self._pending.get(loop)
            if entries is None:
                for old in [lp for lp in self._pending if lp.is_closed()]:
                    self._submit(self._pending.pop(old))  # its turn never ended: hand over now
                entries = self._pending[loop] = []
                loop.call_soon(self.flush, loop)
            entries.append(entry)

    def flush(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Hand over what ``loop`` (default: every loop) queued so far."""
        with self._lock:
            if loop is None:
                groups = list(self._pending.values())
                self._pending.clear()
            else:
                entries = self._pending.pop(loop, None)
                groups = [entries] if entries else []
        for entries in groups:
            self._submit(entries)


class LoopMailbox:
    """Results posted from any thread to futures of one loop, delivered in one callback per
    group (one wake-up of the loop instead of one per result)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[asyncio.Future[Any], Any]] = []

    def post(self, future: asyncio.Future[Any], result: Any) -> None:
        """Set ``result`` on ``future`` soon, on its loop (a closed loop: dropped)."""
        with self._lock:
            self._items.append((future, result))
            if len(self._items) > 1:
                return  # a delivery is already scheduled
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody waits any more
            with self._lock:
                self._items.clear()

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for future, result in items:
            if not future.done():
                future.set_result(result)


class Mailboxes:
    """One :class:`LoopMailbox` per event loop (the boxes of closed loops are dropped whenever
    a new loop asks for one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: dict[asyncio.AbstractEventLoop, LoopMailbox] = {}

    def for_loop(self, loop: asyncio.AbstractEventLoop) -> LoopMailbox:
        """The mailbox of ``loop``."""
        box = self._boxes.get(loop)  # the usual case: no lock needed to read
        if box is not None:
            return box
        with self._lock:
            for old in [lp for lp in self._boxes if lp.is_closed()]:
                del self._boxes[old]
            box = self._boxes.get(loop)
            if box is None:
                box = self._boxes[loop] = LoopMailbox(loop)
            return box

    def __len__(self) -> int:
        return len(self._boxes)
