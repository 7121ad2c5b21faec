"""A concurrency limit spread over several small ``httpx.AsyncClient`` connection pools.

httpcore's connection pool examines every connection of the pool for every request it assigns
(``has_expired()``/``is_idle()``, each a socket query), so one client with ``n`` connections
costs O(n) per request: with 50 connections to a server answering in 50 ms the client alone
burns ~10 ms of CPU per request and tops out near 100 requests/s (fastdistill's benchmark
P2-HTTP; encode/httpcore#928).  Splitting the same connections over several clients of at most
:data:`CONNECTIONS_PER_CLIENT` connections each keeps that cost small and constant.

:class:`ClientShards` owns the clients and the model's concurrency limit together: a request
first takes one of ``max_concurrency`` slots (an :class:`asyncio.Semaphore`), then the client
that slot belongs to.  Each client has exactly as many connections as slots, so a request never
queues inside httpx's pool, and the most recently released slot is reused first (its connection
is warm).  Created inside the event loop that uses it; not thread-safe (one per loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

#: most connections one ``httpx.AsyncClient`` gets; more clients are created beyond that
CONNECTIONS_PER_CLIENT = 8


def shard_sizes(total: int, per_client: int = CONNECTIONS_PER_CLIENT) -> list[int]:
    """``total`` connections split as evenly as possible over clients of ≤ ``per_client``."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total!r}")
    count = -(-total // max(1, per_client))
    base, extra = divmod(total, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


class ClientShards:
    """``total`` request slots over clients made by ``make_client(connections)``.

    Use::

        client = await shards.acquire()
        try:
            ...  # one request with ``client``
        finally:
            shards.release(client)
    """

    def __init__(
        self,
        make_client: Callable[[int], Any],
        total: int,
        per_client: int = CONNECTIONS_PER_CLIENT,
    ) -> None:
        sizes = shard_sizes(total, per_client)
        self.clients = [make_client(size) for size in sizes]
        # one entry per slot; LIFO: the last released (warm) connection's client goes out first
        self._free: list[Any] = [
            c for c, size in zip(self.clients, sizes, strict=True) for _ in range(size)
        ]
        self._sem = asyncio.Semaphore(total)

    async def acquire(self) -> Any:
        """Wait for a free slot; the client to send one request with."""
        await self._sem.acquire()
        return self._free.pop()  # never empty: one entry per semaphore unit

    def release(self, client: Any) -> None:
        """Give back the slot taken by :meth:`acquire`."""
        self._free.append(client)
        self._sem.release()

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.aclose()
