"""The output folder: one pipeline per folder, one run at a time, --fresh clears the earlier
run, bad --limit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from fastdistill import OutputInUseError, Pipeline, PipelineValidationError, Step, StepContext
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.cli import main


def _pipeline(name: str, n: int = 5) -> Pipeline:
    return Pipeline(name, LoadFromDicts(data=[{"id": i} for i in range(n)]) >> KeepColumns(columns=["id"]))


def test_another_pipeline_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _pipeline("first").run(out)
    with pytest.raises(PipelineValidationError, match="holds a run of pipeline 'first'"):
        _pipeline("second").run(out)
    assert len((out / "dataset.jsonl").read_text().splitlines()) == 5  # untouched


def test_fresh_replaces_the_earlier_run_and_its_manifests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _pipeline("first", 5).run(out)
    (out / "manifests" / "stale.json").write_text("{}")
    result = _pipeline("second", 3).run(out, resume=False)
    assert result.kept == 3 and not (out / "manifests" / "stale.json").exists()


def test_negative_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(PipelineValidationError, match="limit"):
        _pipeline("x").run(tmp_path / "o", limit=-1)
    doc = tmp_path / "p.yaml"
    _pipeline("x").save(doc)
    with pytest.raises(SystemExit):
        main(["run", str(doc), "--limit", "-5"])
    assert "must be 0 or more" in capsys.readouterr().err


def test_output_that_is_a_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "p.yaml"
    _pipeline("x").save(doc)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert main(["run", str(doc), "--output", str(afile), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


class _Gate(Step):
    """Holds its first batch until ``release`` is set (so a run stays in progress)."""

    inputs = ("id",)
    entered: ClassVar[threading.Event]
    release: ClassVar[threading.Event]

    def process(self, rows: list[dict[str, Any]], ctx: StepContext) -> list[dict[str, Any]]:
        type(self).entered.set()
        assert type(self).release.wait(30)
        return rows


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _Gate.entered, _Gate.release = threading.Event(), threading.Event()
    slow = Pipeline("slow", LoadFromDicts(data=[{"id": i} for i in range(8)]) >> _Gate())
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(slow.run(out)))
    first.start()
    try:
        assert _Gate.entered.wait(30)
        for second in (_pipeline("slow", 3), _pipeline("other", 3)):
            for resume in (True, False):  # --fresh may not clear a folder in use either
                with pytest.raises(OutputInUseError, match=f"pid {os.getpid()}") as err:
                    second.run(out, resume=resume)
                assert str(out) in str(err.value) and "--output" in str(err.value)
        assert (out / ".fastdistill" / "state.json").exists()  # the first run's state is intact
    finally:
        _Gate.release.set()
        first.join(30)
    assert results and results[0].kept == 8 and not results[0].cancelled
    assert len((out / "dataset.jsonl").read_text().splitlines()) == 8
    assert _pipeline("slow", 3).run(out, resume=False).kept == 3  # free again once it is over


def test_a_folder_held_by_another_process_is_refused_until_that_process_dies(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from fastdistill import StorageBackend
            from fastdistill.engine.runlock import hold_output
            with hold_output(StorageBackend(sys.argv[1])):
                print("held", flush=True)
                time.sleep(60)
        """), str(out)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputInUseError, match=f"pid {holder.pid} "):
            _pipeline("x").run(out)
        assert not (out / "dataset.jsonl").exists()
    finally:
        holder.kill()  # like kill -9: the OS drops the lock with the process
        holder.wait(30)
        assert holder.stdout is not None
        holder.stdout.close()
    assert _pipeline("x").run(out).kept == 5
