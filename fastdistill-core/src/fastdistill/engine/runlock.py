"""One run at a time per output folder.

A run holds an exclusive OS lock (``flock``; ``msvcrt.locking`` on Windows) on
``<output>/.fastdistill.lock`` from before it looks at the folder until it has written its
reports, so a second run into the same folder, from this process or another, is refused with
:class:`OutputInUseError` instead of mixing its rows and reports with the first one's.  The OS
drops the lock when the holding process dies, even by ``kill -9``: a killed run never blocks the
rerun that resumes it.  The lock file is left in place (removing it would race with the next
run opening it); it holds the holder's pid, host and start time, for the error message.

For an output folder that is not on a local file system (``s3://`` ...) there is no lock to
take: the run is refused only when the folder's run state says a live process on this host is
running it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

from fastdistill.errors import OutputInUseError
from fastdistill.storage import StorageBackend

LOCK_NAME = ".fastdistill.lock"


def _try_lock(fd: int) -> bool | None:
    """``True``: locked; ``False``: another holder has it; ``None``: no locking here."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks (some network mounts)
        return None


def _holder(info: Any) -> str:
    if not isinstance(info, dict) or "pid" not in info:
        return ""
    return f" (pid {info.get('pid')} on {info.get('host')}, started {info.get('started')})"


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _in_use(storage: StorageBackend, holder: str) -> OutputInUseError:
    return OutputInUseError(
        f"the output folder {storage.url} is in use by another run{holder}; wait for it to "
        "finish (or stop it: what it finished is kept and a rerun resumes it), or choose "
        "another --output"
    )


@contextlib.contextmanager
def hold_output(storage: StorageBackend) -> Iterator[None]:
    """Hold ``storage``'s folder for one run; :class:`OutputInUseError` if another run has it."""
    local = storage.local_path()
    if local is None:
        _check_remote(storage)
        yield
        return
    path = local / LOCK_NAME
    try:
        local.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # not a folder, not writable ...: the run itself says what is wrong
        yield
        return
    try:
        locked = _try_lock(fd)
        if locked is False:
            try:
                info = json.loads(path.read_bytes() or b"{}")
            except (OSError, ValueError):
                info = None
            raise _in_use(storage, _holder(info))
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())  # at offset 0: the file was just opened
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_remote(storage: StorageBackend) -> None:
    from fastdistill.engine.checkpoint import read_state

    state = read_state(storage)
    if not isinstance(state, dict) or state.get("status") != "running":
        return
    pid = state.get("pid")
    if state.get("host") == socket.gethostname() and pid != os.getpid() and _alive(pid):
        raise _in_use(storage, _holder(state))
