"""The output folder: one pipeline per folder, --fresh clears the earlier run, bad --limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastdistill import Pipeline, PipelineValidationError
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
