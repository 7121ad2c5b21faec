"""Per-instance runtime state of a model: secrets and per-event-loop resources.

Models are pydantic objects that engines may copy (replicas) or pickle (worker processes).  What a
model holds at run time (an API key read from the environment, an HTTP client bound to an event
loop, a thread pool) must not travel with such copies, must not show in ``repr``/``model_dump``,
and must be closed when the loop that owns it ends.  :class:`ModelRuntime` gives each copy a fresh,
empty state and closes per-loop resources when their loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


class ModelRuntime:
    """Runtime state of one model instance.  Copies and unpickled copies start empty."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.secret: str | None = None
        self.extra: dict[str, Any] = {}
        # loop -> [resource, guard async generator]; an entry is removed when its loop shuts down
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Any]] = (
            weakref.WeakKeyDictionary()
        )

    # copies never share (or leak) runtime state
    def __deepcopy__(self, memo: dict[int, Any]) -> ModelRuntime:
        return ModelRuntime()

    def __copy__(self) -> ModelRuntime:
        return ModelRuntime()

    def __reduce__(self) -> tuple[Any, ...]:
        return (ModelRuntime, ())

    def __repr__(self) -> str:
        return f"<ModelRuntime loaded={self.loaded}>"

    async def for_loop(
        self,
        create: Callable[[], Any],
        close: Callable[[Any], Awaitable[None]],
    ) -> Any:
        """The resource of the running event loop, created by ``create()`` on first use.

        ``close(resource)`` runs inside the same loop when it shuts down (``asyncio.run`` finalises
        async generators before closing the loop), or from :meth:`close_all`.
        """
        loop = asyncio.get_running_loop()
        with self.lock:
            entry = self._per_loop.get(loop)
            if entry is not None:
                return entry[0]
            entry = [create(), None]
            self._per_loop[loop] = entry

        async def guard() -> AsyncIterator[None]:
            try:
                yield
            finally:
                with self.lock:
                    owned = self._per_loop.get(loop) is entry
                    if owned:
                        del self._per_loop[loop]
                if owned:
                    await close(entry[0])

        agen = guard()
        await agen.__anext__()  # registered with the loop: finalised at loop shutdown
        entry[1] = agen  # keeps the guard alive as long as the entry
        return entry[0]

    def close_all(self, close: Callable[[Any], Awaitable[None]], timeout_s: float = 5.0) -> None:
        """Close every per-loop resource whose loop can still run code; forget the others."""
        with self.lock:
            items = [(loop, entry[0], entry[1]) for loop, entry in self._per_loop.items()]
            self._per_loop.clear()
        for loop, res, agen in items:
            if agen is not None:
                _finish_guard(agen)
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                loop.create_task(close(res))
            elif loop.is_running():
                fut = asyncio.run_coroutine_threadsafe(close(res), loop)
                with contextlib.suppress(Exception):
                    fut.result(timeout_s)
            else:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(close(res))


def _finish_guard(agen: Any) -> None:
    """Finalise a guard whose entry was already removed, without needing its loop.

    The guard's ``finally`` then awaits nothing, so one ``send`` runs it to the end; the loop's
    async-generator finaliser is never needed (it would fail on a closed loop).
    """
    aw = agen.aclose()
    try:
        aw.send(None)
    except StopIteration:
        pass
    except Exception:  # pragma: no cover - defensive: never let cleanup raise
        aw.close()
