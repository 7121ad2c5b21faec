"""``BatchTransport``: how batches move from one step to the next.

Engines obtain a transport class from the registry by name (``memory`` or ``filesystem``) and
never branch on its type.  Every transport is bounded: ``put`` blocks while ``maxsize`` batches
wait (back-pressure).  ``pickle``, ``tempfile`` and ``uuid`` are imported by the filesystem
transport when it is used (core's plugin imports this module during discovery).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: the value ``get`` returns once the producer has closed the transport and it is drained
CLOSED = object()


@runtime_checkable
class BatchTransport(Protocol):
    """A bounded channel of batches between steps."""

    def put(self, item: Any, timeout: float | None = None) -> None:
        """Send one item; blocks while the channel is full."""
        ...

    def get(self, timeout: float | None = None) -> Any:
        """Receive one item, or :data:`CLOSED`; raises ``queue.Empty`` on timeout."""
        ...

    def close(self) -> None:
        """The producer is done; consumers get :data:`CLOSED` after the last item."""
        ...

    def cleanup(self) -> None:
        """Release resources (spool files) once the run no longer needs the channel."""
        ...


class MemoryTransport:
    """A bounded in-process queue (threads)."""

    component_name = "memory"

    def __init__(self, maxsize: int = 8, **_: Any) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._closed = threading.Event()

    def put(self, item: Any, timeout: float | None = None) -> None:
        """Send one item."""
        self._q.put(item, timeout=timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Receive one item or CLOSED."""
        item = self._q.get(timeout=timeout)
        if item is CLOSED:
            self._q.put(CLOSED)  # let any other consumer see it too
        return item

    def close(self) -> None:
        """Mark the end of the stream."""
        if not self._closed.is_set():
            self._closed.set()
            self._q.put(CLOSED)

    def cleanup(self) -> None:
        """Nothing to release."""


class FilesystemTransport:
    """Batches are pickled to files in a spool directory; only their paths travel in memory.

    Useful when batches are large (embeddings) or when memory must stay flat: the queue of paths
    is bounded like the in-memory one.
    """

    component_name = "filesystem"

    def __init__(self, maxsize: int = 8, spool_dir: str | Path | None = None, **_: Any) -> None:
        import tempfile

        self._owned = spool_dir is None
        self._dir = Path(spool_dir or tempfile.mkdtemp(prefix="fastdistill-spool-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._q = MemoryTransport(maxsize=maxsize)

    def put(self, item: Any, timeout: float | None = None) -> None:
        """Spool ``item`` to a file and send its path."""
        import pickle
        import uuid

        path = self._dir / f"{uuid.uuid4().hex}.pkl"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.rename(path)
        self._q.put(path, timeout=timeout)

    def get(self, timeout: float | None = None) -> Any:
        """Read the next spooled item (and delete its file)."""
        item = self._q.get(timeout=timeout)
        if item is CLOSED:
            return CLOSED
        import pickle

        data = item.read_bytes()
        item.unlink()
        return pickle.loads(data)

    def close(self) -> None:
        """Mark the end of the stream."""
        self._q.close()

    def cleanup(self) -> None:
        """Remove the spool directory when this transport created it."""
        if self._owned:
            import shutil

            shutil.rmtree(self._dir, ignore_errors=True)
