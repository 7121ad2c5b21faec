"""Storage over fsspec URLs (atomic writes, memory://) and the bounded batch transports."""

from __future__ import annotations

import queue
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Pipeline, Registry, StorageBackend
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.transport import CLOSED, BatchTransport, FilesystemTransport, MemoryTransport


# ------------------------------------------------------------------ storage
def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    storage = StorageBackend(tmp_path / "root")
    storage.write_json("reports/q.json", {"kept": 1})
    storage.write_jsonl("data/rows.jsonl", [{"a": 1}, {"a": 2}])
    storage.write_text("data/rows.jsonl", "replaced\n")
    storage.write_jsonl("data/empty.jsonl", [])

    files = sorted(p.relative_to(tmp_path / "root").as_posix()
                   for p in (tmp_path / "root").rglob("*") if p.is_file())
    assert files == ["data/empty.jsonl", "data/rows.jsonl", "reports/q.json"]
    assert storage.read_json("reports/q.json") == {"kept": 1}
    assert storage.read_bytes("data/rows.jsonl") == b"replaced\n"
    assert storage.read_bytes("data/empty.jsonl") == b""


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    storage = StorageBackend(tmp_path)
    storage.write_text("a.txt", "old")
    with pytest.raises(TypeError):
        storage.write_bytes("a.txt", "not bytes")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


def test_paths_stay_inside_the_root(tmp_path: Path) -> None:
    storage = StorageBackend(tmp_path / "root")
    with pytest.raises(ValueError, match="inside"):
        storage.write_text("../escape.txt", "x")
    assert not (tmp_path / "escape.txt").exists()
    assert storage.local_path("a/b") == tmp_path / "root" / "a" / "b"


def test_memory_url_storage() -> None:
    url = f"memory://fdtest-{uuid.uuid4().hex}/run"
    storage = StorageBackend(url)
    assert storage.local_path() is None
    storage.write_json("manifests/a.json", {"count": 3})
    storage.write_text("notes.txt", "hi")
    assert storage.exists("manifests/a.json") and not storage.exists("nope.json")
    assert storage.listdir() == ["manifests", "notes.txt"]
    assert storage.listdir("missing") == []
    assert storage.read_json("manifests/a.json") == {"count": 3}
    child = storage.child("manifests")
    assert child.read_json("a.json") == {"count": 3}
    with storage.open("stream/x.txt", "w") as fh:
        fh.write("streamed")
    assert storage.read_bytes("stream/x.txt") == b"streamed"
    # another backend on the same URL sees the same files (one in-memory filesystem)
    assert StorageBackend(url).read_bytes("notes.txt") == b"hi"


def test_a_run_can_write_to_a_memory_url(core_registry: Registry) -> None:
    url = f"memory://fdtest-{uuid.uuid4().hex}/out"
    p = Pipeline("mem", LoadFromDicts(data=[{"a": 1, "b": 2}, {"a": 3, "b": 4}])
                 >> KeepColumns(columns=["a"]))
    result = p.run(url, registry=core_registry)
    assert result.output == url
    assert result.read_dataset() == [{"a": 1}, {"a": 3}]
    assert result.read_rejected() == []
    storage = StorageBackend(url)
    assert {"dataset.jsonl", "rejected.jsonl", "quality_report.json", "timing_report.json",
            "manifests"} <= set(storage.listdir())
    assert ".spool" not in storage.listdir()


# ------------------------------------------------------------------ transports
@pytest.fixture(params=["memory", "filesystem"])
def make_transport(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    def make(maxsize: int) -> Any:
        if request.param == "memory":
            return MemoryTransport(maxsize=maxsize)
        return FilesystemTransport(maxsize=maxsize, spool_dir=tmp_path / "spool")

    return make


def test_transport_is_bounded_and_ordered(make_transport: Any) -> None:
    t = make_transport(2)
    assert isinstance(t, BatchTransport)
    t.put([{"a": 1}], timeout=1)
    t.put([{"a": 2}], timeout=1)
    with pytest.raises(queue.Full):
        t.put([{"a": 3}], timeout=0.05)  # back-pressure
    assert t.get(timeout=1) == [{"a": 1}]
    t.put([{"a": 3}], timeout=1)  # room again
    assert t.get(timeout=1) == [{"a": 2}]
    assert t.get(timeout=1) == [{"a": 3}]
    with pytest.raises(queue.Empty):
        t.get(timeout=0.05)


def test_transport_close_ends_the_stream_for_every_consumer(make_transport: Any) -> None:
    t = make_transport(4)
    t.put("last", timeout=1)
    t.close()
    t.close()  # idempotent
    assert t.get(timeout=1) == "last"
    assert t.get(timeout=1) is CLOSED
    assert t.get(timeout=1) is CLOSED  # a second consumer sees the end as well


def test_a_blocked_producer_resumes_when_a_consumer_reads(make_transport: Any) -> None:
    t = make_transport(1)
    t.put(0, timeout=1)
    done = threading.Event()

    def produce() -> None:
        for i in range(1, 5):
            t.put(i, timeout=5)
        t.close()
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    got = []
    while (item := t.get(timeout=5)) is not CLOSED:
        got.append(item)
    assert done.wait(5)
    assert got == [0, 1, 2, 3, 4]


def test_filesystem_transport_spools_batches_to_files(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    t = FilesystemTransport(maxsize=4, spool_dir=spool)
    t.put({"rows": [{"big": "x" * 1000}]}, timeout=1)
    t.put({"rows": []}, timeout=1)
    assert len(list(spool.glob("*.pkl"))) == 2 and not list(spool.glob("*.tmp"))
    assert t.get(timeout=1) == {"rows": [{"big": "x" * 1000}]}
    assert len(list(spool.glob("*.pkl"))) == 1  # read batches are deleted
    assert t.get(timeout=1) == {"rows": []}
    assert list(spool.iterdir()) == []
