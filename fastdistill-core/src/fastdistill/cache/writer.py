"""The response cache's writer: one background thread that stores entries in grouped commits.

Callers hand a group of entries and a ``notify`` callback to :meth:`CacheWriter.submit_many`
(or one entry to :meth:`CacheWriter.submit`); the thread takes every group that is waiting,
stores them in one transaction and calls each ``notify`` with the outcome (``True``, ``False``
or the exception to raise).  Under load many answers share one commit; when idle an entry is
committed at once, so "stored" always means committed.  An event loop hands its answers over in
one group per loop turn (:class:`fastdistill.cache.aio.WriteBuffer`): one wake-up of this
thread per turn instead of one per answer.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

Notify = Callable[[Any], None]
_Item = tuple[list[tuple[Any, ...]], Notify]  # (entries; none: a barrier, notify)


class CacheWriter:
    """A lazily started daemon thread that writes through
    ``write_many(rows, conn) -> (result, conn)``."""

    def __init__(self, write_many: Callable[[list[tuple[Any, ...]], Any], tuple[Any, Any]]) -> None:
        self._write_many = write_many
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def submit(self, row: tuple[Any, ...] | None, notify: Notify) -> None:
        """Queue one entry; ``notify(result)`` is called from the writer thread once written.

        ``row=None`` is a barrier: it is notified once every entry queued before it is written.
        """
        self.submit_many([] if row is None else [row], notify)

    def submit_many(self, rows: list[tuple[Any, ...]], notify: Notify) -> None:
        """Queue a group of entries, committed together; ``notify(result)`` once written.

        An empty group is a barrier: notified once every entry queued before it is written.
        """
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # first use, or a process forked from the one that started the thread
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._loop, args=(self._queue,), name="fastdistill-llm-cache",
                    daemon=True,
                )
                self._pid = os.getpid()
                self._thread.start()
            self._queue.put((rows, notify))

    def _loop(self, q: queue.SimpleQueue[_Item | None]) -> None:
        conn: Any = None
        stop = False
        while not stop:
            item = q.get()
            if item is None:
                break
            items = [item]
            while True:
                try:
                    nxt = q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                items.append(nxt)
            rows = [row for group, _ in items for row in group]  # an empty group: a barrier
            try:
                result: Any = True
                if rows:
                    result, conn = self._write_many(rows, conn)
            except BaseException as exc:  # handed to the callers, never lost in this thread
                result = exc
            for _, notify in items:
                with contextlib.suppress(Exception):  # a caller's loop closed: nothing to tell
                    notify(result)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        """Write what is queued, then stop the thread (a later ``submit`` starts a new one)."""
        with self._lock:
            thread = self._thread
            if thread is None or self._pid != os.getpid():
                self._thread = None
                return
            self._queue.put(None)
            self._thread = None
        thread.join()
