"""The LLM response cache: one teacher answer per distinct request, shared by every run.

A request is identified by the sha256 of the canonical JSON of

* the model's identity (:meth:`fastdistill.LLM.identity`, with any secret-looking key removed),
* the request messages,
* the generation parameters (the model's ``generation_kwargs`` merged with per-call overrides),
* the structured-output schema / response format, when the model declares one.

Only successful generations (:attr:`Generation.ok`) are stored, so a failed request is asked
again next time.  Entries live in one SQLite database (WAL mode, one row per key: ``key``,
``created``, ``model``, ``generation`` JSON) at ``$FASTDISTILL_CACHE_DIR/llm_responses.sqlite``
(default ``~/.cache/fastdistill/``), shared across runs and pipelines.  Writes go through one
background writer thread per instance (:mod:`fastdistill.cache.writer`) that stores every
waiting entry in one transaction, so a run killed at any moment leaves either the whole entry
or none; a caller is told "stored" only once its entry is committed (``get_or_generate`` awaits
that without blocking its event loop), so a finished request is always in the cache.

Concurrency: one connection per instance and process, guarded by a lock, so any number of threads
may share an instance; other processes use their own connections and SQLite's locking (with a
busy timeout).  Identical requests in flight at the same time on one event loop are coalesced:
the model is asked once.

Lookups: an instance that finds the database empty at its first lookup keeps a Bloom filter of
the keys it stores from then on (:mod:`fastdistill.cache.filter`, 1 MiB), and a request whose
key it never stored skips the query: a first run pays nothing for the lookups that cannot hit.
The price: an answer another process (or another instance) stores meanwhile is not seen by
this instance, which asks the model again, as if it had looked up a moment earlier.

Failure policy (decided): the cache is an optimisation, never a reason for a run to fail.  A
corrupted or unopenable database disables the cache for this instance with one ``WARNING`` on
the ``fastdistill.cache`` logger naming the file and what to do (``strict=True`` raises
:class:`LLMCacheError` instead).  A database that stays locked longer than ``timeout_s`` turns
that one lookup into a miss (or skips that one write) with a warning; the cache keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastdistill.cache import entries, sql
from fastdistill.cache.aio import LookupBatcher, Mailboxes, WriteBuffer
from fastdistill.cache.filter import StoredKeys
from fastdistill.cache.keys import (  # noqa: F401 (re-exported: the public names live here too)
    KEY_VERSION,
    SCHEMA_ATTRS,
    KeyMemo,
    request_key,
    request_material,
)
from fastdistill.cache.paths import (  # noqa: F401 (re-exported)
    CACHE_DIR_ENV,
    DB_FILENAME,
    LLMCacheError,
    default_cache_dir,
    default_cache_path,
)
from fastdistill.cache.writer import CacheWriter
from fastdistill.models import Generation

if TYPE_CHECKING:
    import sqlite3

    from fastdistill.models import LLM, Message

logger = logging.getLogger("fastdistill.cache")


# ----------------------------------------------------------------------------- cache


class LLMResponseCache:
    """A persistent, process- and thread-safe cache of successful LLM generations.

    :param path: the SQLite file (default :func:`default_cache_path`); its folder is created.
    :param timeout_s: how long to wait for a lock held by another connection.
    :param strict: raise :class:`LLMCacheError` instead of disabling an unusable cache.

    A hit returns a new :class:`Generation` with ``cached=True`` and ``latency_s`` set to the
    lookup time (the stored entry keeps the original latency).
    """

    def __init__(
        self, path: str | Path | None = None, *, timeout_s: float = 10.0, strict: bool = False
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.timeout_s = float(timeout_s)
        self.strict = strict
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._disabled: str | None = None
        self._warned_transient = False
        self._counts = {"hits": 0, "misses": 0, "stores": 0, "bypassed": 0, "errors": 0}
        # requests in flight per (loop, key): [future for followers (made by the first one), n]
        self._inflight: dict[tuple[asyncio.AbstractEventLoop, str], list[Any]] = {}
        self._writer = CacheWriter(self._write_many)
        self._writes = WriteBuffer(self._submit_deferred)
        self._lookups = LookupBatcher(self._fetch_many)
        self._mailboxes = Mailboxes()
        self._deferred_error: BaseException | None = None
        # lookups: None until the first one; then False (always query the database), or the
        # keys stored since the database was found empty (a key not in them is a certain miss)
        self._fresh: StoredKeys | bool | None = None

    # ------------------------------------------------------------------ pickling / repr
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout_s": self.timeout_s, "strict": self.strict}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], timeout_s=state["timeout_s"], strict=state["strict"])  # type: ignore[misc]

    def __repr__(self) -> str:
        state = f"disabled: {self._disabled}" if self._disabled else "enabled"
        return f"LLMResponseCache({str(self.path)!r}, {state})"

    # ------------------------------------------------------------------ connection
    def _connection(self) -> sqlite3.Connection | None:
        """The open connection of this process (opened on first use); ``None`` if disabled.

        Call with ``self._lock`` held.
        """
        if self._disabled:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited through fork is never used
        conn = self._new_connection()
        if conn is not None:
            self._conn, self._pid = conn, os.getpid()
        return conn

    def _new_connection(self) -> sqlite3.Connection | None:
        """A new connection (schema checked); ``None`` if the cache is (now) disabled.

        Call with ``self._lock`` held.
        """
        if self._disabled:
            return None
        import sqlite3

        try:
            conn = sql.connect(self.path, self.timeout_s)
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and sql.is_transient(exc):
                raise  # locked right now: the caller treats this one operation as a miss
            self._disable(exc)
            return None
        return conn

    def _write_many(
        self, rows: list[tuple[Any, ...]], conn: sqlite3.Connection | None
    ) -> tuple[Any, sqlite3.Connection | None]:
        """Store ``rows`` in one transaction on the writer thread's own connection."""
        import sqlite3

        try:
            if conn is None:
                with self._lock:
                    conn = self._new_connection()
                if conn is None:
                    return False, None
            sql.store(conn, rows)
        except sqlite3.Error as exc:
            with self._lock:
                if isinstance(exc, sqlite3.OperationalError) and sql.is_transient(exc):
                    self._transient("this answer was not stored", exc)
                    return False, conn
                self._disable(exc)  # raises LLMCacheError when strict
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            return False, None
        except LLMCacheError as exc:
            return exc, conn
        with self._lock:
            self._counts["stores"] += len(rows)
        return True, conn

    def _disable(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        message = (
            f"the LLM response cache {str(self.path)!r} is unusable ({reason}); continuing "
            f"WITHOUT the cache, so every request goes to the model. Delete or move the file, or "
            f"point {CACHE_DIR_ENV} at another folder, to cache again"
        )
        if self.strict:
            raise LLMCacheError(message) from exc
        self._disabled = reason
        self._counts["errors"] += 1
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: best effort
                self._conn.close()
            self._conn = None
        logger.warning("%s", message)

    def _transient(self, what: str, exc: BaseException) -> None:
        self._counts["errors"] += 1
        level = logging.DEBUG if self._warned_transient else logging.WARNING
        self._warned_transient = True
        logger.log(
            level, "LLM response cache %r is locked (%s); %s. It stays enabled.",
            str(self.path), exc, what,
        )

    def _run(self, what: str, statement: str, args: tuple[Any, ...]) -> list[Any] | None:
        """Execute one statement under the lock; ``None`` when the cache could not answer."""
        import sqlite3

        with self._lock:
            try:
                conn = self._connection()
                if conn is None:
                    return None
                return conn.execute(statement, args).fetchall()
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.OperationalError) and sql.is_transient(exc):
                    self._transient(what, exc)
                else:
                    self._disable(exc)
                return None

    # ------------------------------------------------------------------ primitives
    @property
    def enabled(self) -> bool:
        """False once the cache was found unusable (see the module's failure policy)."""
        return self._disabled is None

    def get(self, key: str) -> Generation | None:
        """The stored generation for ``key`` (marked ``cached=True``), or ``None``."""
        rows = self._run("this lookup counts as a miss",
                         "SELECT generation FROM responses WHERE key = ?", (key,))
        return self._decode(key, rows[0][0]) if rows else None

    def _fetch_many(self, keys: list[str]) -> dict[str, str]:
        """The stored JSON of those ``keys`` that are in the cache (one query per 500 keys)."""
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self._run(
                "these lookups count as misses",
                f"SELECT key, generation FROM responses WHERE key IN ({','.join('?' * len(part))})",
                tuple(part),
            )
            found.update(rows or ())
        return found

    def _decode(self, key: str, text: str) -> Generation | None:
        try:
            gen = entries.decode(text)
        except (ValueError, TypeError) as exc:
            logger.warning("LLM response cache %r: unreadable entry %s ignored (%s)",
                           str(self.path), key[:12], exc)
            return None
        gen.cached = True
        return gen

    def _entry(self, key: str, gen: Generation) -> tuple[Any, ...] | None:
        """The database row for a successful ``gen`` (``None``: not stored)."""
        if not gen.ok or self._disabled:
            return None
        try:
            if not math.isfinite(gen.latency_s):
                raise ValueError(f"latency_s={gen.latency_s!r}")
            text = entries.encode(gen)
        except (TypeError, ValueError) as exc:
            logger.debug("generation not stored: it has no JSON form (%s)", exc)
            self._tally("bypassed")
            return None
        fresh = self._fresh
        if fresh:
            fresh.add(key)  # type: ignore[union-attr]
        elif fresh is None:
            self._stored_before_first_lookup(key)
        return (key, time.time(), gen.model or None, text)

    def _stored_before_first_lookup(self, key: str) -> None:
        with self._lock:  # the first lookup must then query the database
            if self._fresh is None:
                self._fresh = False
            fresh = self._fresh
        if fresh:  # the first lookup won the race and found the database empty
            fresh.add(key)  # type: ignore[union-attr]

    def _probe(self) -> StoredKeys | bool:
        """At the first lookup: is the database empty?  Then the keys stored from now on are
        the only ones this instance can find, and the others skip the query."""
        rows = self._run("lookups query the database", "SELECT 1 FROM responses LIMIT 1", ())
        with self._lock:
            if self._fresh is None:
                self._fresh = StoredKeys() if rows == [] else False
            return self._fresh

    def put(self, key: str, gen: Generation) -> bool:
        """Store a successful ``gen`` under ``key`` (atomically; returns once committed);
        failures are never stored."""
        row = self._entry(key, gen)
        if row is None:
            return False
        done = threading.Event()
        box: list[Any] = []

        def notify(result: Any) -> None:
            box.append(result)
            done.set()

        self._writer.submit(row, notify)
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return bool(box[0])

    async def aput(self, key: str, gen: Generation, *, wait: bool = True) -> bool:
        """:meth:`put` for a coroutine: waits for the commit without blocking the loop.

        ``wait=False`` queues the entry and returns at once; :meth:`barrier` waits for it.
        """
        row = self._entry(key, gen)
        if row is None:
            return False
        if not wait:
            self._writes.add(row)  # handed to the writer at the end of this loop turn
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        box = self._mailboxes.for_loop(loop)
        self._writer.submit(row, lambda result: box.post(future, result))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return bool(result)

    def _submit_deferred(self, rows: list[tuple[Any, ...]]) -> None:
        self._writer.submit_many(rows, self._deferred_outcome)

    def _deferred_outcome(self, result: Any) -> None:
        if isinstance(result, BaseException) and self._deferred_error is None:
            self._deferred_error = result  # raised by the next barrier (strict mode)

    async def barrier(self) -> None:
        """Wait until every entry queued so far on this event loop (also with ``wait=False``),
        and every entry other threads handed to the writer, is committed, or given up under
        the cache's failure policy."""
        loop = asyncio.get_running_loop()
        self._writes.flush(loop)
        future: asyncio.Future[Any] = loop.create_future()
        box = self._mailboxes.for_loop(loop)
        self._writer.submit(None, lambda result: box.post(future, result))
        await future
        error, self._deferred_error = self._deferred_error, None
        if error is not None:
            raise error

    def count(self) -> int:
        """Number of stored entries (0 when the cache is disabled)."""
        rows = self._run("count unavailable", "SELECT COUNT(*) FROM responses", ())
        return int(rows[0][0]) if rows else 0

    def _tally(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def stats(self) -> dict[str, Any]:
        """Counters of this instance: hits, misses, stores, bypassed, errors; path and state."""
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
        out["path"] = str(self.path)
        out["enabled"] = self.enabled
        out["disabled_reason"] = self._disabled
        return out

    def close(self) -> None:
        """Write what is queued and close this process's connections (a later use reopens)."""
        self._writes.flush()
        self._writer.close()
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> LLMResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the main entry
    async def get_or_generate(
        self, llm: LLM, messages: Sequence[Message], **overrides: Any
    ) -> Generation:
        """The cached answer to this request, or ``llm.agenerate(messages, **overrides)``.

        A successful new answer is stored before it is returned.  Identical requests in flight
        on this event loop wait for the first one instead of asking the model again.
        """
        return await self.request(llm, messages, overrides)

    async def request(
        self,
        llm: LLM,
        messages: Sequence[Message],
        overrides: Mapping[str, Any],
        keys: KeyMemo | None = None,
        durable: bool = True,
    ) -> Generation:
        """:meth:`get_or_generate` with the overrides as a mapping, and request keys computed
        through ``keys`` (a :class:`KeyMemo`: each model's part of the key encoded once).

        Lookups made on one event loop in the same turn share one query.  ``durable=False``
        returns a new answer as soon as it is queued for storage: the caller awaits
        :meth:`barrier` before it counts the answer as done (the engine does, per group).
        """
        try:
            key = (keys.key if keys is not None else request_key)(llm, messages, overrides)
        except (TypeError, ValueError) as exc:
            logger.debug("request not cacheable (%s); asking the model", exc)
            self._tally("bypassed")
            return await llm.agenerate(messages, **overrides)
        start = time.perf_counter()
        fresh = self._fresh if self._fresh is not None else self._probe()
        if self._disabled is not None or (fresh is not False and key not in fresh):  # type: ignore[operator]
            text = None  # disabled, or never stored since the database was found empty
        else:
            text = await self._lookups.get(key)
        hit = self._decode(key, text) if text is not None else None
        if hit is not None:
            hit.latency_s = time.perf_counter() - start
            self._tally("hits")
            return hit
        loop = asyncio.get_running_loop()
        slot = (loop, key)
        # a slot is only touched on its own loop's thread (single dict operations: no lock)
        mine = [None, 0]
        leader = self._inflight.setdefault(slot, mine)
        if leader is not mine:
            leader[1] += 1
            if leader[0] is None:
                leader[0] = loop.create_future()
            shared = await asyncio.shield(leader[0])
            if isinstance(shared, Generation) and shared.ok:
                self._tally("hits")
                return dataclasses.replace(
                    shared, usage=dict(shared.usage), cached=True,
                    latency_s=time.perf_counter() - start,
                )
            # the first request failed: this one asks on its own (failures are not shared)
            return await self._generate(llm, messages, overrides, key, None, durable)
        return await self._generate(llm, messages, overrides, key, slot, durable)

    async def _generate(
        self,
        llm: LLM,
        messages: Sequence[Message],
        overrides: Mapping[str, Any],
        key: str,
        slot: tuple[asyncio.AbstractEventLoop, str] | None,
        durable: bool = True,
    ) -> Generation:
        gen: Generation | None = None
        try:
            self._tally("misses")
            gen = await llm.agenerate(messages, **overrides)
            if isinstance(gen, Generation):
                await self.aput(key, gen, wait=durable)
            return gen
        finally:
            if slot is not None:
                entry = self._inflight.pop(slot, None)
                if entry is not None and entry[0] is not None and not entry[0].done():
                    # copied: the caller may change its own generation before the waiters run
                    shared = dataclasses.replace(gen, usage=dict(gen.usage)) if gen else None
                    entry[0].set_result(shared)
