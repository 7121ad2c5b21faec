"""``StorageBackend``: outputs, reports and artifacts on any fsspec URL (a local dir by default).

``json``, ``uuid`` and fsspec are imported where they are used: ``import fastdistill`` imports
this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _token() -> str:
    """A unique temporary-file suffix."""
    import uuid

    return uuid.uuid4().hex


class StorageBackend:
    """Files under one root URL (``/tmp/out``, ``file:///...``, ``memory://x``, ``s3://b/p``).

    Writes are atomic: data goes to a temporary name, then is moved into place, so a reader (or a
    resumed run) never sees half a file.
    """

    def __init__(self, root: str | Path, **storage_options: Any) -> None:
        import fsspec

        text = str(root)
        self.fs, path = fsspec.core.url_to_fs(text, **storage_options)
        self.root = path.rstrip("/") or "/"
        self.url = text
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, rel: str) -> str:
        """Full path of ``rel`` inside the root (as the filesystem names it)."""
        rel = rel.lstrip("/")
        if ".." in Path(rel).parts:
            raise ValueError(f"storage path {rel!r} must stay inside {self.url}")
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str = "") -> Path | None:
        """A local filesystem path when the backend is local, else ``None``."""
        protocol = self.fs.protocol
        protocols = protocol if isinstance(protocol, tuple) else (protocol,)
        return Path(self.path(rel)) if "file" in protocols or "local" in protocols else None

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Atomically write ``data`` to ``rel``; returns the full path."""
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{_token()}"
        try:
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            self.fs.mv(tmp, target)
        except BaseException:
            if self.fs.exists(tmp):  # a failed write leaves neither half a file nor a temp file
                self.fs.rm(tmp)
            raise
        return target

    @contextlib.contextmanager
    def open_atomic(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file to stream into; it appears at ``rel`` only when the block succeeds."""
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{_token()}"
        try:
            with self.fs.open(tmp, "wb") as fh:
                yield fh
            self.fs.mv(tmp, target)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def write_text(self, rel: str, text: str) -> str:
        """Atomically write UTF-8 text."""
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj: Any) -> str:
        """Atomically write pretty JSON."""
        import json

        return self.write_text(rel, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

    def write_jsonl(self, rel: str, rows: Any) -> str:
        """Atomically write one JSON object per line."""
        import json

        lines = [json.dumps(r, ensure_ascii=False, default=str) for r in rows]
        return self.write_text(rel, "\n".join(lines) + ("\n" if lines else ""))

    def read_bytes(self, rel: str) -> bytes:
        """Read a whole file."""
        with self.fs.open(self.path(rel), "rb") as fh:
            data: bytes = fh.read()
        return data

    def read_json(self, rel: str) -> Any:
        """Read a JSON file."""
        import json

        return json.loads(self.read_bytes(rel))

    def open(self, rel: str, mode: str = "rb") -> IO[Any]:
        """Open a file for streaming (not atomic; prefer the ``write_*`` helpers)."""
        if "w" in mode or "a" in mode:
            self.fs.makedirs(self.path(rel).rsplit("/", 1)[0], exist_ok=True)
        handle: IO[Any] = self.fs.open(self.path(rel), mode)
        return handle

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists."""
        return bool(self.fs.exists(self.path(rel)))

    def listdir(self, rel: str = "") -> list[str]:
        """Names directly under ``rel``."""
        if not self.exists(rel):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.path(rel), detail=False))

    def child(self, rel: str) -> StorageBackend:
        """A backend rooted at ``rel`` inside this one (same filesystem)."""
        sub = StorageBackend.__new__(StorageBackend)
        sub.fs = self.fs
        sub.root = self.path(rel)
        sub.url = f"{self.url.rstrip('/')}/{rel.strip('/')}"
        self.fs.makedirs(sub.root, exist_ok=True)
        return sub
