"""load_jsonl and load_parquet."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest
from fastdistill import MissingDependencyError, Reason
from fastdistill.testing import make_context, run_step

from fastdistill_steps.loaders import LoadJsonl, LoadParquet


def _write_jsonl(path: Path) -> Path:
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": 1, "question": "a"}),
                "",
                json.dumps({"id": 2, "question": "b"}),
                '{"id": 3, "question": ',  # malformed
                json.dumps({"id": 4, "question": "d"}),
                "[1, 2]",  # valid JSON, not an object
                json.dumps({"id": 5, "question": "e"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def test_load_jsonl_rejects_malformed_lines_and_keeps_going(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "in.jsonl")
    kept, rejected = run_step(LoadJsonl(path=str(path), batch_size=2))
    assert [r["id"] for r in kept] == [1, 2, 4, 5]
    assert [rej.reason for _, rej in rejected] == [Reason.INVALID_INPUT.value] * 2
    (row4, rej4), (row6, rej6) = rejected
    assert row4["_line"] == 4 and row4["_raw"].startswith('{"id": 3')
    assert rej4.detail.startswith(f"{path}:4: invalid JSON")
    assert row6["_line"] == 6 and "expected a JSON object" in rej6.detail


def test_load_jsonl_batches_and_limit(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "in.jsonl")
    step = LoadJsonl(path=str(path), batch_size=2)
    ctx = make_context("load", limit=3)
    batches = list(step.generate(ctx))
    assert [[r["id"] for r in b] for b in batches] == [[1, 2], [4]]
    assert step.total_rows(ctx) == 3
    assert step.total_rows(make_context("load")) == 7 - 1  # non-blank lines
    assert list(LoadJsonl(path=str(path)).generate(make_context(limit=0))) == []


def test_load_jsonl_limit_stops_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"x": 0}) + "\n" + "not json\n" * 5, encoding="utf-8")
    kept, rejected = run_step(LoadJsonl(path=str(path)), ctx=make_context(limit=1))
    assert kept == [{"x": 0}]
    assert rejected == []  # stopped before the malformed lines


def test_load_jsonl_relative_path_and_gzip(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "in.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"q": "é"}) + "\n")
    kept, _ = run_step(LoadJsonl(path="in.jsonl.gz"), ctx=make_context(base_dir=tmp_path))
    assert kept == [{"q": "é"}]


def test_load_jsonl_output_columns_peeks_the_first_valid_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    # one odd first row must not decide the columns: the keys of the first lines are united
    path.write_text('oops\n{"a": 1, "b": 2}\n{"c": 3}\n', encoding="utf-8")
    assert LoadJsonl(path=str(path)).output_columns() == ["a", "b", "c"]
    assert LoadJsonl().output_columns() is None  # path not set yet
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    assert LoadJsonl(path=str(empty)).output_columns() is None  # nothing to learn from


def test_relative_paths_resolve_against_the_pipeline_folder_before_the_run(tmp_path: Path) -> None:
    from fastdistill import Pipeline, PipelineValidationError

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "q.jsonl").write_text('{"q": 1}\n', encoding="utf-8")
    ok = Pipeline("rel", LoadJsonl(path="data/q.jsonl"), base_dir=tmp_path)
    assert ok.steps["load_jsonl"].output_columns() == ["q"]
    missing = Pipeline("rel", LoadJsonl(path="data/nope.jsonl"), base_dir=tmp_path)
    with pytest.raises(PipelineValidationError, match="nope.jsonl") as info:
        missing.validate()
    assert str(info.value).count("step 'load_jsonl'") == 1  # named once, not twice


def test_load_jsonl_missing_file_names_step_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    step = LoadJsonl(name="questions", path=str(missing))
    with pytest.raises(FileNotFoundError, match="questions") as info:
        run_step(step, ctx=make_context("questions"))
    assert str(missing) in str(info.value)
    with pytest.raises(FileNotFoundError, match=str(missing)):
        step.output_columns()


def test_load_jsonl_requires_path() -> None:
    assert LoadJsonl.runtime_parameters_info["path"].required
    with pytest.raises(ValueError, match="path"):
        run_step(LoadJsonl())


def test_load_jsonl_path_from_context_params(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"k": 1}\n', encoding="utf-8")
    ctx = make_context()
    ctx.params = {"path": str(path)}
    assert run_step(LoadJsonl(), ctx=ctx)[0] == [{"k": 1}]


def test_load_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(MissingDependencyError, match=r"pip install 'fastdistill-steps\[parquet\]'"):
        run_step(LoadParquet(path=str(path)))


def test_load_parquet_streams_batches_with_limit(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(10)), "q": [f"q{i}" for i in range(10)]}), path)
    step = LoadParquet(path=str(path), batch_size=4)
    assert step.output_columns() == ["id", "q"]
    ctx = make_context(limit=6)
    assert step.total_rows(ctx) == 6
    batches = list(step.generate(ctx))
    assert [len(b) for b in batches] == [4, 2]
    assert batches[0][0] == {"id": 0, "q": "q0"}
    kept, _ = run_step(LoadParquet(path=str(path), columns=["q"]))
    assert len(kept) == 10 and kept[-1] == {"q": "q9"}
