"""Storage over local folders and fsspec URLs (atomic writes, memory://) and the bounded batch
transports."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Pipeline, Registry, StorageBackend
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.storage import local_path_of
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


# ------------------------------------------------- the same behaviour on every kind of root
@pytest.fixture(params=["local", "file-url", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    """A backend on a plain local folder, on a ``file://`` URL, and on ``memory://``."""
    if request.param == "local":
        return StorageBackend(str(tmp_path / "root"))
    if request.param == "file-url":
        return StorageBackend(f"file://{tmp_path}/root")
    return StorageBackend(f"memory://fdtest-{uuid.uuid4().hex}/root")


def test_rm_removes_a_file_and_a_directory_only_when_recursive(storage: StorageBackend) -> None:
    storage.write_text("a.txt", "a")
    storage.write_text("d/e/f.txt", "f")
    storage.write_text("d/g.txt", "g")
    storage.rm("a.txt")
    assert not storage.exists("a.txt")
    with pytest.raises(IsADirectoryError):
        storage.rm("d")
    assert storage.read_bytes("d/e/f.txt") == b"f"  # nothing went
    storage.rm("d/e", recursive=True)
    assert storage.listdir("d") == ["g.txt"]
    storage.rm("d", recursive=True)
    assert storage.listdir() == []
    with pytest.raises(FileNotFoundError):
        storage.rm("a.txt")
    with pytest.raises(ValueError):
        storage.rm("")  # never the root itself
    with pytest.raises(ValueError):
        storage.rm("./", recursive=True)
    with pytest.raises(ValueError, match="inside"):
        storage.rm("../root", recursive=True)
    assert storage.exists("")


def test_move_replaces_the_target_and_creates_its_folder(storage: StorageBackend) -> None:
    storage.write_text("spool/run0", "new")
    storage.write_text("dataset.jsonl", "old")
    target = storage.move("spool/run0", "dataset.jsonl")
    assert target == storage.path("dataset.jsonl")
    assert storage.read_bytes("dataset.jsonl") == b"new"
    assert storage.listdir("spool") == []
    storage.move("dataset.jsonl", "deep/er/moved.jsonl")
    assert storage.read_bytes("deep/er/moved.jsonl") == b"new"
    assert not storage.exists("dataset.jsonl")
    with pytest.raises(FileNotFoundError):
        storage.move("missing", "elsewhere")
    with pytest.raises(ValueError, match="inside"):
        storage.move("deep/er/moved.jsonl", "../outside")


def test_exists_and_listdir(storage: StorageBackend) -> None:
    assert storage.listdir() == [] and storage.listdir("missing") == []
    storage.write_text("b.txt", "b")
    storage.write_json("sub/c.json", {})
    with storage.open("a/stream.txt", "w") as fh:
        fh.write("streamed")
    assert storage.listdir() == ["a", "b.txt", "sub"]
    assert storage.listdir("sub") == ["c.json"]
    assert storage.exists("sub") and storage.exists("sub/c.json") and storage.exists("b.txt")
    assert not storage.exists("sub/nope.json") and not storage.exists("nope")
    assert storage.read_bytes("a/stream.txt") == b"streamed"
    child = storage.child("sub")
    assert child.listdir() == ["c.json"] and child.read_json("c.json") == {}
    child.rm("c.json")
    assert storage.listdir("sub") == []


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(
    storage: StorageBackend,
) -> None:
    storage.write_text("out/a.txt", "old")
    with pytest.raises(RuntimeError), storage.open_atomic("out/a.txt") as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    with pytest.raises(TypeError):
        storage.write_bytes("out/a.txt", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError), storage.open_atomic("out/b.txt") as fh:
        raise RuntimeError("interrupted before the first byte")
    assert storage.listdir("out") == ["a.txt"]
    assert storage.read_bytes("out/a.txt") == b"old"
    with storage.open_atomic("out/a.txt") as fh:
        fh.write(b"new")
    assert storage.listdir("out") == ["a.txt"] and storage.read_bytes("out/a.txt") == b"new"


def test_location_opens_again(storage: StorageBackend) -> None:
    storage.write_text("d/x.txt", "x")
    where = storage.location("d/x.txt")
    if storage.local_path() is not None:
        assert where == storage.path("d/x.txt") and where.startswith("/")
        assert Path(where).read_text() == "x"
    else:
        assert where.startswith("memory://")
        assert StorageBackend(where.rsplit("/", 1)[0]).read_bytes("x.txt") == b"x"


def test_local_roots_are_named_as_fsspec_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fsspec

    monkeypatch.chdir(tmp_path)
    for url in ["out", "./out/", "out//", ".", "a/../b", "~", "~/x", "/", "/tmp//z/",
                "file:///tmp/x/", "file://rel/x", "file:rel", "local:///tmp/y", str(tmp_path)]:
        assert local_path_of(url) == (fsspec.core.url_to_fs(url)[1].rstrip("/") or "/"), url
    for url in ["memory://x", "s3://bucket/key", "gcs://b/k", "simplecache::file:///tmp/x",
                "data:text/plain,hi"]:
        assert local_path_of(url) is None, url


def test_local_root_is_absolute_and_keeps_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    rel = StorageBackend("runs/out/")
    assert rel.root == f"{tmp_path}/runs/out" and rel.url == "runs/out/"
    assert (tmp_path / "runs" / "out").is_dir()
    url = StorageBackend(f"file://{tmp_path}/u")
    assert url.root == f"{tmp_path}/u" and url.url == f"file://{tmp_path}/u"
    assert url.local_path("a") == tmp_path / "u" / "a"


def test_fs_of_a_local_backend_is_a_working_fsspec_filesystem(tmp_path: Path) -> None:
    import fsspec

    storage = StorageBackend(tmp_path / "root")
    storage.write_text("a/b.txt", "hello")
    fs = storage.fs
    assert isinstance(fs, fsspec.AbstractFileSystem)
    assert fs.exists(storage.path("a/b.txt"))
    assert fs.cat_file(storage.path("a/b.txt")) == b"hello"
    assert storage.fs is fs  # built once per backend
    assert storage.child("a").fs.exists(storage.path("a/b.txt"))


RUN_SCRIPT = """
import json, sys
from fastdistill import Pipeline
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
rows = [{"a": i, "b": "x"} for i in range(5)]
p = Pipeline("local-run", LoadFromDicts(data=rows) >> KeepColumns(columns=["a"]))
r = p.run(sys.argv[1])
print(json.dumps({"kept": r.kept, "dataset": r.read_dataset(), "rejected": r.read_rejected(),
                  "dataset_path": r.dataset_path, "fsspec": "fsspec" in sys.modules}))
"""


def _run_script(output: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", RUN_SCRIPT, output],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.parametrize("kind", ["path", "file-url"])
def test_a_run_into_a_local_folder_never_imports_fsspec(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    report = _run_script(str(out) if kind == "path" else f"file://{out}")
    assert report["fsspec"] is False
    assert report["kept"] == 5 and report["dataset"] == [{"a": i} for i in range(5)]
    assert report["rejected"] == []
    assert report["dataset_path"] == str(out / "dataset.jsonl")  # a plain absolute path
    assert (out / "quality_report.json").is_file() and not (out / ".spool").exists()


def test_a_run_into_a_memory_url_goes_through_fsspec() -> None:
    url = f"memory://fdtest-{uuid.uuid4().hex}/out"
    report = _run_script(url)
    assert report["fsspec"] is True
    assert report["kept"] == 5 and report["dataset"] == [{"a": i} for i in range(5)]
    assert report["dataset_path"] == f"memory:///{url.removeprefix('memory://')}/dataset.jsonl"


def test_a_relative_output_folder_reports_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, core_registry: Registry,
) -> None:
    monkeypatch.chdir(tmp_path)
    p = Pipeline("rel", LoadFromDicts(data=[{"a": 1}]) >> KeepColumns(columns=["a"]))
    result = p.run("runs/rel", registry=core_registry)
    assert result.output == "runs/rel"
    assert result.dataset_path == f"{tmp_path}/runs/rel/dataset.jsonl"
    assert result.rejected_path == f"{tmp_path}/runs/rel/rejected.jsonl"
    assert result.read_dataset() == [{"a": 1}]


def test_a_copied_output_folder_reports_its_own_files(
    tmp_path: Path, core_registry: Registry,
) -> None:
    p = Pipeline("copied", LoadFromDicts(data=[{"a": 1}, {"a": 2}]) >> KeepColumns(columns=["a"]))
    first = p.run(tmp_path / "first", registry=core_registry)
    again = p.run(tmp_path / "first", registry=core_registry)
    assert again.reused and again.dataset_path == first.dataset_path
    shutil.copytree(tmp_path / "first", tmp_path / "copy")
    copy = p.run(tmp_path / "copy", registry=core_registry)  # not the original's result
    assert copy.dataset_path == str(tmp_path / "copy" / "dataset.jsonl")
    assert copy.rejected_path == str(tmp_path / "copy" / "rejected.jsonl")
    os.remove(first.dataset_path)
    assert copy.read_dataset() == [{"a": 1}, {"a": 2}]


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
