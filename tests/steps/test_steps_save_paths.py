"""A pipeline saved to another folder keeps pointing at the same input files."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastdistill import Pipeline


def _resolved(pipeline: Pipeline) -> dict[str, str]:
    out = {}
    for name, step in pipeline.steps.items():
        for key in type(step).path_params:
            value = getattr(step, key)
            if value is not None:
                out[f"{name}.{key}"] = str((pipeline.base_dir / value).resolve())
    return out


def test_save_elsewhere_rewrites_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "pipelines"
    (folder / "data" / "db" / "shop").mkdir(parents=True)
    (folder / "data" / "q.jsonl").write_text('{"question": "q", "db_id": "shop"}\n')
    (folder / "p.yaml").write_text(
        "schema_version: 2\nname: p\nsteps:\n"
        "  - {name: load, component: load_jsonl, params: {path: data/q.jsonl}}\n"
        "  - {name: schema, component: sqlite_schema, params: {db_dir: data/db}}\n"
    )
    original = Pipeline.load(folder / "p.yaml")
    before = _resolved(original)
    assert set(before) == {"load.path", "schema.db_dir"}
    saved = original.save(tmp_path / "elsewhere" / "copy.yaml")
    doc = yaml.safe_load(saved.read_text())
    params = {s["name"]: s.get("params", {}) for s in doc["steps"]}
    assert params["load"]["path"] == "../project/pipelines/data/q.jsonl"  # relative, rebased
    again = Pipeline.load(saved)
    assert _resolved(again) == before
    assert all(Path(p).exists() for p in before.values())


def test_save_beside_the_original_keeps_paths_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "rows.jsonl").write_text('{"text": "hi"}\n')
    (folder / "p.yaml").write_text(
        "schema_version: 2\nname: p\nsteps:\n"
        "  - {name: load, component: load_jsonl, params: {path: rows.jsonl}}\n"
        "  - {name: keep, component: keep_columns, params: {columns: [text]}}\n"
    )
    pipeline = Pipeline.load(folder / "p.yaml")
    beside = yaml.safe_load(pipeline.save(folder / "q.yaml").read_text())
    assert beside["steps"][0]["params"]["path"] == "rows.jsonl"
    other = yaml.safe_load(pipeline.save(tmp_path / "b" / "q.yaml").read_text())
    assert other["steps"][0]["params"]["path"] == "../a/rows.jsonl"
    assert Pipeline.load(tmp_path / "b" / "q.yaml").run(tmp_path / "out", llm_cache=False).kept == 1
