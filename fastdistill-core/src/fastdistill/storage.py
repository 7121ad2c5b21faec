"""``StorageBackend``: outputs, reports and artifacts on any fsspec URL (a local dir by default).

A local root (a plain path or a ``file://`` URL) is served by the standard library: a run into
a local folder never imports fsspec (whose import alone costs tens of milliseconds). Every other
URL (``memory://``, ``s3://`` ...) goes through fsspec. ``json``, ``uuid``, ``shutil`` and fsspec
are imported where they are used: ``import fastdistill`` imports this module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: the prefixes fsspec's local filesystem strips (``file:///tmp/x``, ``file:x``, ``local://``)
_LOCAL_PREFIXES = ("file://", "file:", "local://", "local:")


def _token() -> str:
    """A unique temporary-file suffix."""
    import uuid

    return uuid.uuid4().hex


def local_path_of(url: str | Path) -> str | None:
    """The absolute local path ``url`` names, or ``None`` when it needs fsspec.

    Plain paths and ``file://`` / ``local://`` URLs are local; chained URLs (``a::b``),
    ``data:`` URLs and every other protocol are not. The path is the one fsspec's ``url_to_fs``
    gives for the same text: a relative path is joined to the working directory, ``~`` is
    expanded, trailing slashes are dropped (``/`` stays ``/``).
    """
    text = str(url)
    protocol, sep, _ = text.partition("://")
    if "::" in text or text.startswith("data:") or (
        sep and len(protocol) > 1 and protocol not in ("file", "local")
    ):
        return None
    for prefix in _LOCAL_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if text.startswith("~"):
        text = os.path.expanduser(text)
    elif not text.startswith("/"):
        text = "" if text == "." else text.removeprefix("./")
        text = f"{os.getcwd()}/{text}"
    return text.rstrip("/") or "/"


class _LocalFiles:
    """The filesystem calls :class:`StorageBackend` makes, on local paths, with the standard
    library. Names and meaning follow fsspec's, so the backend has one code path for any root.
    """

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    def open(self, path: str, mode: str = "rb") -> IO[Any]:
        return open(path, mode)  # the caller closes it

    def mv(self, src: str, dst: str) -> None:
        os.replace(src, dst)  # atomic on one filesystem

    def rm(self, path: str, recursive: bool = False) -> None:
        if recursive and os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path)
        else:
            os.remove(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def ls(self, path: str, detail: bool = False) -> list[str]:
        if not os.path.isdir(path):  # like fsspec: a file lists itself, a missing path raises
            os.stat(path)
            return [path]
        return [f"{path.rstrip('/')}/{name}" for name in os.listdir(path)]


class StorageBackend:
    """Files under one root URL (``/tmp/out``, ``file:///...``, ``memory://x``, ``s3://b/p``).

    Writes are atomic: data goes to a temporary name, then is moved into place, so a reader (or a
    resumed run) never sees half a file.

    :ivar root: the root as the filesystem names it (an absolute path for a local root).
    :ivar url: the root URL as given.
    """

    def __init__(self, root: str | Path, **storage_options: Any) -> None:
        text = str(root)
        local = None if storage_options else local_path_of(text)
        self._fs: Any = None
        if local is not None:
            self._files: Any = _LocalFiles()
            path = local
        else:
            import fsspec

            self._fs, path = fsspec.core.url_to_fs(text, **storage_options)
            self._files = self._fs
        self.root = path.rstrip("/") or "/"
        self.url = text
        self._files.makedirs(self.root, exist_ok=True)

    @property
    def fs(self) -> Any:
        """The fsspec filesystem of this backend (for plugins and users that want fsspec's API).

        For a local root it is fsspec's local filesystem, imported on first access; otherwise it
        is the filesystem ``fsspec.core.url_to_fs`` returned for the root URL.
        """
        if self._fs is None:
            import fsspec

            self._fs = fsspec.filesystem("file")
        return self._fs

    def path(self, rel: str) -> str:
        """Full path of ``rel`` inside the root (as the filesystem names it)."""
        rel = rel.lstrip("/")
        if ".." in Path(rel).parts:
            raise ValueError(f"storage path {rel!r} must stay inside {self.url}")
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str = "") -> Path | None:
        """A local filesystem path when the backend is local, else ``None``."""
        if isinstance(self._files, _LocalFiles):
            return Path(self.path(rel))
        protocol = self.fs.protocol
        protocols = protocol if isinstance(protocol, tuple) else (protocol,)
        return Path(self.path(rel)) if "file" in protocols or "local" in protocols else None

    def location(self, rel: str = "") -> str:
        """Where ``rel`` is, in a form that opens again anywhere in this process: a plain
        absolute path for a local root, ``protocol://path`` (what ``fsspec.open`` takes)
        otherwise."""
        path = self.path(rel)
        return path if self.local_path() is not None else str(self.fs.unstrip_protocol(path))

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Atomically write ``data`` to ``rel``; returns the full path."""
        with self.open_atomic(rel) as fh:
            fh.write(data)
        return self.path(rel)

    @contextlib.contextmanager
    def open_atomic(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file to stream into; it appears at ``rel`` only when the block succeeds.

        On failure neither half a file nor the temporary file is left, and an older file at
        ``rel`` is kept as it was.
        """
        target = self.path(rel)
        parent = target.rsplit("/", 1)[0]
        self._files.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{_token()}"
        try:
            with self._files.open(tmp, "wb") as fh:
                yield fh
            self._files.mv(tmp, target)
        except BaseException:
            if self._files.exists(tmp):
                self._files.rm(tmp)
            raise

    def write_text(self, rel: str, text: str) -> str:
        """Atomically write UTF-8 text."""
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj: Any) -> str:
        """Atomically write pretty JSON."""
        import json

        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
        return self.write_text(rel, text + "\n")

    def write_jsonl(self, rel: str, rows: Any) -> str:
        """Atomically write one JSON object per line."""
        import json

        lines = [json.dumps(r, ensure_ascii=False, default=str) for r in rows]
        return self.write_text(rel, "\n".join(lines) + ("\n" if lines else ""))

    def read_bytes(self, rel: str) -> bytes:
        """Read a whole file."""
        with self._files.open(self.path(rel), "rb") as fh:
            data: bytes = fh.read()
        return data

    def read_json(self, rel: str) -> Any:
        """Read a JSON file."""
        import json

        return json.loads(self.read_bytes(rel))

    def open(self, rel: str, mode: str = "rb") -> IO[Any]:
        """Open a file for streaming (not atomic; prefer the ``write_*`` helpers)."""
        if "w" in mode or "a" in mode:
            self._files.makedirs(self.path(rel).rsplit("/", 1)[0], exist_ok=True)
        handle: IO[Any] = self._files.open(self.path(rel), mode)
        return handle

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` (a file or a directory) exists."""
        return bool(self._files.exists(self.path(rel)))

    def listdir(self, rel: str = "") -> list[str]:
        """Names directly under ``rel``, sorted (``[]`` when ``rel`` does not exist)."""
        if not self.exists(rel):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1]
                      for p in self._files.ls(self.path(rel), detail=False))

    def rm(self, rel: str, recursive: bool = False) -> None:
        """Remove the file ``rel``, or with ``recursive=True`` also a directory and all it holds.

        :raises FileNotFoundError: ``rel`` does not exist.
        :raises IsADirectoryError: ``rel`` is a directory and ``recursive`` is false.
        :raises ValueError: ``rel`` names the root itself.
        """
        if not Path(rel.lstrip("/")).parts:
            raise ValueError(f"refusing to remove the storage root {self.url}")
        target = self.path(rel)
        if not self._files.exists(target):
            raise FileNotFoundError(target)
        if not recursive and self._files.isdir(target):
            raise IsADirectoryError(f"{target} is a directory: pass recursive=True")
        self._files.rm(target, recursive=recursive)

    def move(self, src: str, dst: str) -> str:
        """Move the file ``src`` to ``dst``, replacing a file there (an atomic rename on a local
        root); creates ``dst``'s folder; returns ``dst``'s full path."""
        source, target = self.path(src), self.path(dst)
        if not self._files.exists(source):
            raise FileNotFoundError(source)
        self._files.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self._files.mv(source, target)
        return target

    def child(self, rel: str) -> StorageBackend:
        """A backend rooted at ``rel`` inside this one (same filesystem)."""
        sub = StorageBackend.__new__(StorageBackend)
        sub._fs, sub._files = self._fs, self._files
        sub.root = self.path(rel)
        sub.url = f"{self.url.rstrip('/')}/{rel.strip('/')}"
        self._files.makedirs(sub.root, exist_ok=True)
        return sub
