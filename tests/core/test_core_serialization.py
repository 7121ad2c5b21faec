"""Pipeline documents: round trips, schema versions and migrations, safe loading, no secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastdistill import LLM, DocumentError, Generation, Pipeline, Registry, Step, hookimpl
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.serialization.migrations import CURRENT_SCHEMA_VERSION
from pydantic import SecretStr

DATA = Path(__file__).parent / "data"
SECRET = "sk-do-not-write-me-0123456789"


class Remote(LLM):
    base_url: str = "http://localhost:8000/v1"
    api_key: SecretStr | None = None

    async def agenerate(self, messages: Any, **overrides: Any) -> Generation:
        return Generation(text="x")


class Annotate(Step):
    inputs = ("text",)
    outputs = ("note",)
    prefix: str = ">"
    api_key: str | None = None
    auth_token: str | None = None
    llm: LLM | None = None

    def process(self, rows: Any, ctx: Any) -> Any:
        return [{**r, "note": f"{self.prefix}{r['text']}"} for r in rows]


class TestPlugin:
    @hookimpl
    def register_steps(self, register: Any) -> None:
        register(Annotate, name="annotate")

    @hookimpl
    def register_models(self, register: Any) -> None:
        register(Remote, name="remote")


@pytest.fixture
def registry(core_registry: Registry) -> Registry:
    core_registry.add_plugin(TestPlugin(), name="serial", distribution="fd-serial", version="2.0")
    return core_registry


def build() -> Pipeline:
    load = LoadFromDicts(name="load", data=[{"id": 1, "text": "a"}, {"id": 2, "text": "b"}],
                         batch_size=1)
    note = Annotate(name="note", prefix="#", api_key=SECRET, auth_token=SECRET,
                    llm=Remote(base_url="http://teacher:9000/v1", api_key=SecretStr(SECRET)))
    keep = KeepColumns(name="keep", columns=["id", "text"])
    both = KeepColumns(name="both", columns=["id"])
    return Pipeline("round", load >> [note, keep] >> both, description="a round trip")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_save_gives_the_same_document(
    registry: Registry, tmp_path: Path, suffix: str
) -> None:
    first = build().save(tmp_path / f"first{suffix}", registry)
    loaded = Pipeline.load(first, registry)
    second = loaded.save(tmp_path / f"second{suffix}", registry)

    assert first.read_text() == second.read_text()
    text = first.read_text()
    doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    assert doc["schema_version"] == CURRENT_SCHEMA_VERSION
    assert doc["name"] == "round" and doc["description"] == "a round trip"
    assert doc["plugins"]["fd-serial"] == "2.0" and "fastdistill-core" in doc["plugins"]
    by_name = {s["name"]: s for s in doc["steps"]}
    assert by_name["note"]["component"] == "annotate"
    assert by_name["note"]["params"]["llm"] == {
        "component": "remote", "params": {"base_url": "http://teacher:9000/v1"}
    }
    assert by_name["both"]["after"] == ["note", "keep"]
    assert by_name["keep"]["after"] == ["load"]  # not the previous step in the list
    assert "after" not in by_name["note"]  # the default (previous step) is left out
    # what was loaded is the same pipeline
    assert list(loaded.steps) == ["load", "note", "keep", "both"]
    assert loaded.upstream("both") == ["note", "keep"]
    note = loaded.steps["note"]
    assert isinstance(note, Annotate) and note.prefix == "#"
    assert isinstance(note.llm, Remote) and note.llm.base_url == "http://teacher:9000/v1"
    assert loaded.component_names == {"load": "load_from_dicts", "note": "annotate",
                                      "keep": "keep_columns", "both": "keep_columns"}


def test_secrets_are_never_written(registry: Registry, tmp_path: Path) -> None:
    pipeline = build()
    for path in (tmp_path / "p.yaml", tmp_path / "p.json"):
        pipeline.save(path, registry)
        text = path.read_text()
        assert SECRET not in text
        assert "api_key" not in text and "auth_token" not in text
    # nor in what a run writes (the pipeline copy, manifests, reports)
    pipeline.steps["both"].input_batch_size = 1
    result = pipeline.run(tmp_path / "out", registry=registry)
    assert result.kept == 2
    for file in (tmp_path / "out").rglob("*"):
        if file.is_file():
            assert SECRET not in file.read_text(), file
    assert (tmp_path / "out" / "pipeline.yaml").read_text().startswith("schema_version")


def test_saving_an_unregistered_step_is_a_clear_error(core_registry: Registry) -> None:
    pipeline = build()
    with pytest.raises(DocumentError, match="'note'.*Annotate.*not registered"):
        pipeline.to_document(core_registry)


def test_v1_document_loads_through_the_migration(core_registry: Registry, tmp_path: Path) -> None:
    source = DATA / "pipeline_v1.yaml"
    assert yaml.safe_load(source.read_text())["schema_version"] == 1  # the fixture stays v1

    pipeline = Pipeline.load(source, core_registry)

    assert list(pipeline.steps) == ["load", "keep_text", "keep_extra"]
    assert pipeline.upstream("keep_text") == ["load"]
    assert pipeline.upstream("keep_extra") == ["load"]
    keep = pipeline.steps["keep_extra"]
    assert isinstance(keep, KeepColumns) and keep.columns == ["id", "extra"]
    load = pipeline.steps["load"]
    assert isinstance(load, LoadFromDicts) and load.batch_size == 2 and len(load.data) == 3
    doc = pipeline.to_document(core_registry)
    assert doc["schema_version"] == CURRENT_SCHEMA_VERSION
    assert all("type" not in s and "config" not in s and "depends_on" not in s
               for s in doc["steps"])
    result = pipeline.run(tmp_path / "out", registry=core_registry)
    assert result.kept == 6
    text_rows = [json.loads(x) for x in (tmp_path / "out" / "dataset.keep_text.jsonl")
                 .read_text().splitlines()]
    assert text_rows == [{"id": 1, "text": "hello"}, {"id": 2, "text": "world"},
                         {"id": 3, "text": "again"}]


def test_plugin_migrations_run_when_an_old_document_loads(
    core_registry: Registry, tmp_path: Path
) -> None:
    seen: list[int] = []

    def stamp(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append(doc["schema_version"])
        return {**doc, "description": "migrated by plugin"}

    class Migrates:
        @hookimpl
        def register_migrations(self, register: Any) -> None:
            register(stamp, name="fd_migrates.stamp", from_version=1)

    core_registry.add_plugin(Migrates(), name="migrates")
    old = Pipeline.load(DATA / "pipeline_v1.yaml", core_registry)
    assert old.description == "migrated by plugin" and len(seen) == 1

    current = tmp_path / "current.yaml"
    Pipeline("cur", LoadFromDicts(name="load", data=[{"a": 1}])).save(current, core_registry)
    assert Pipeline.load(current, core_registry).description == ""  # no migration for v2
    assert len(seen) == 1


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


MINIMAL_STEPS = [{"name": "load", "component": "load_from_dicts", "params": {"data": [{"a": 1}]}}]


def test_newer_schema_version_is_a_clear_error(core_registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path, {"schema_version": CURRENT_SCHEMA_VERSION + 1, "steps": MINIMAL_STEPS})
    with pytest.raises(DocumentError) as err:
        Pipeline.load(path, core_registry)
    message = str(err.value)
    assert str(path) in message
    assert f"schema_version {CURRENT_SCHEMA_VERSION + 1}" in message
    assert "newer" in message and "upgrade" in message


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"steps": MINIMAL_STEPS}, "no 'schema_version'"),
        ({"schema_version": "two", "steps": MINIMAL_STEPS}, "positive integer"),
        ({"schema_version": 0, "steps": MINIMAL_STEPS}, "positive integer"),
        ({"schema_version": 2, "steps": []}, "'steps' must be a non-empty list"),
        ({"schema_version": 2, "steps": [{**MINIMAL_STEPS[0], "depends": ["x"]}]},
         "unknown key"),
    ],
)
def test_malformed_documents_are_refused(
    core_registry: Registry, tmp_path: Path, doc: dict[str, Any], expected: str
) -> None:
    with pytest.raises(DocumentError, match=expected):
        Pipeline.load(_write(tmp_path, doc), core_registry)


def test_unreadable_documents_are_refused(core_registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="does not exist"):
        Pipeline.load(tmp_path / "missing.yaml", core_registry)
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [unclosed")
    with pytest.raises(DocumentError, match="not valid YAML"):
        Pipeline.load(bad, core_registry)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(DocumentError, match="mapping"):
        Pipeline.load(listing, core_registry)


def test_import_path_components_are_refused_without_importing(
    core_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported.txt"
    module = tmp_path / "fdtest_side_effect_mod.py"
    module.write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in (
        {"name": "load", "component": "fdtest_side_effect_mod:Evil"},
        {"name": "load", "component": "fdtest_side_effect_mod.Evil"},
    ):
        path = _write(tmp_path, {"schema_version": 2, "steps": [spec]})
        with pytest.raises(DocumentError) as err:
            Pipeline.load(path, core_registry)
        assert "fdtest_side_effect_mod" in str(err.value)
    assert not marker.exists()
    assert "fdtest_side_effect_mod" not in sys.modules
    with pytest.raises(DocumentError, match="import path"):
        Pipeline.load(_write(tmp_path, {"schema_version": 2, "steps": [
            {"name": "load", "component": "os:system"}]}), core_registry)
