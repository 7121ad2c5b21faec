"""Pipeline documents: provider hints, migration order, plugin versions, no run state."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastdistill import DocumentError, Pipeline, Registry, Step, hookimpl
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.serialization import hints
from fastdistill.serialization.migrations import CURRENT_SCHEMA_VERSION
from pydantic import PrivateAttr

DATA = Path(__file__).parent / "data"
LOAD = {"name": "load", "component": "load_from_dicts", "params": {"data": [{"text": "a"}]}}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load_error(tmp_path: Path, registry: Registry, *steps: dict[str, Any], **top: Any) -> str:
    doc = {"schema_version": CURRENT_SCHEMA_VERSION, **top, "steps": [LOAD, *steps]}
    with pytest.raises(DocumentError) as err:
        Pipeline.load(write(tmp_path, doc), registry)
    return str(err.value)


# ----------------------------------------------------------------------------- provider hints
TEACHER = {"name": "teacher", "component": "text_generation",
           "params": {"template": "{text}", "llm": {"component": "openai_compat"}}}


def test_unknown_first_party_component_names_its_package(
    core_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hints, "_installed_version", lambda dist: None)
    message = load_error(tmp_path, core_registry, TEACHER)
    assert "step 'teacher'" in message and "unknown step 'text_generation'" in message
    assert "provided by the package fastdistill-llms" in message
    assert "pip install fastdistill-llms" in message


def test_installed_but_not_loaded_package_is_said_so(
    core_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hints, "_installed_version", lambda dist: "0.1.0")
    message = load_error(tmp_path, core_registry,
                         {"name": "clean", "component": "canonicalize"})
    assert "fastdistill-steps is installed but its plugin was not loaded" in message
    assert "FASTDISTILL_LOAD_PLUGINS" in message


class BrokenLlms:
    @hookimpl
    def register_steps(self, register: Any) -> None:
        raise ImportError("No module named 'httpx'")


def test_a_provider_that_failed_to_load_is_named_with_its_error(
    core_registry: Registry, tmp_path: Path
) -> None:
    core_registry.add_plugin(BrokenLlms(), name="llms", distribution="fastdistill-llms",
                             version="0.1.0")
    message = load_error(tmp_path, core_registry, TEACHER)
    assert "fastdistill-llms is installed but its plugin failed to load" in message
    assert "No module named 'httpx'" in message


class Annotate(Step):
    inputs = ("text",)
    outputs = ("note",)
    prefix: str = ">"
    llm: Any = None
    _seen: int = PrivateAttr(default=0)  # run state: never in a document

    def process(self, rows: Any, ctx: Any) -> Any:
        self._seen += len(rows)
        return [{**r, "note": f"{self.prefix}{r['text']}"} for r in rows]


class AnnotatePlugin:
    @hookimpl
    def register_steps(self, register: Any) -> None:
        register(Annotate, name="annotate")


def test_unknown_nested_model_names_its_package(
    core_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hints, "_installed_version", lambda dist: None)
    core_registry.add_plugin(AnnotatePlugin(), name="annotate", distribution="fd-annotate")
    message = load_error(tmp_path, core_registry, {
        "name": "note", "component": "annotate", "params": {"llm": {"component": "embedded"}}})
    assert "step 'note'.llm" in message and "unknown model 'embedded'" in message
    assert "pip install fastdistill-llms" in message


def test_misspelt_names_suggest_registered_and_first_party_names(
    core_registry: Registry, tmp_path: Path
) -> None:
    message = load_error(tmp_path, core_registry, {"name": "k", "component": "keep_colums"})
    assert "Did you mean 'keep_columns'" in message
    message = load_error(tmp_path, core_registry, {"name": "t", "component": "text_generaton"})
    assert "Did you mean 'text_generation' (from fastdistill-llms" in message


def test_third_party_component_is_traced_to_the_documents_plugins(
    core_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hints, "_installed_version", lambda dist: None)
    message = load_error(
        tmp_path, core_registry, {"name": "r", "component": "reverse_thing"},
        plugins={"fastdistill-core": "0.1.0", "fd-reverse": "1.2.0"},
    )
    assert "written with fd-reverse 1.2.0" in message and "pip install fd-reverse" in message
    assert "fastdistill-core 0.1.0" not in message


# ----------------------------------------------------------------------------- migrations
def recorder(seen: list[tuple[str, dict[str, Any]]], label: str) -> Any:
    def migration(doc: dict[str, Any]) -> dict[str, Any]:
        seen.append((label, json.loads(json.dumps(doc))))
        doc["steps"][0].setdefault("params", {})["batch_size"] = 1
        doc.setdefault("description", "")
        doc["description"] += label
        return doc
    return migration


def plugin_with(register_fn: Any) -> Any:
    class P:
        @hookimpl
        def register_migrations(self, register: Any) -> None:
            register_fn(register)
    return P()


def test_core_migration_runs_first_then_plugins_by_name(core_registry: Registry) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    # registered in the "wrong" order on purpose; migration names sort the other way too
    core_registry.add_plugin(plugin_with(lambda r: r(recorder(seen, "Z"), name="a.mig",
                                                     from_version=1)), name="zeta")
    core_registry.add_plugin(plugin_with(lambda r: r(recorder(seen, "A"), name="z.mig",
                                                     from_version=1)), name="alpha")
    pipeline = Pipeline.load(DATA / "pipeline_v1.yaml", core_registry)

    assert [label for label, _ in seen] == ["A", "Z"]
    first = seen[0][1]
    # each plugin migration gets the whole document, already in core's v2 layout
    assert first["schema_version"] == 2 and first["name"] == "legacy"
    assert all("component" in s and "type" not in s for s in first["steps"])
    assert seen[1][1]["description"] == "A"  # the second sees the first one's result
    assert pipeline.description == "AZ"
    load = pipeline.steps["load"]
    assert isinstance(load, LoadFromDicts) and load.batch_size == 1


def test_a_plugin_migration_can_rename_its_own_parameters(
    core_registry: Registry, tmp_path: Path
) -> None:
    def rename(doc: dict[str, Any]) -> dict[str, Any]:
        for step in doc["steps"]:
            if step["component"] == "annotate" and "marker" in step.get("params", {}):
                step["params"]["prefix"] = step["params"].pop("marker")
        return doc

    class Plugin(AnnotatePlugin):
        @hookimpl
        def register_migrations(self, register: Any) -> None:
            register(rename, name="annotate.marker_to_prefix", from_version=1)

    core_registry.add_plugin(Plugin(), name="annotate", distribution="fd-annotate")
    v1 = {"schema_version": 1, "name": "old", "steps": [
        {"name": "load", "type": "load_from_dicts", "config": {"data": [{"text": "x"}]}},
        {"name": "note", "type": "annotate", "config": {"marker": "#"}},
    ]}
    pipeline = Pipeline.load(write(tmp_path, v1), core_registry)
    note = pipeline.steps["note"]
    assert isinstance(note, Annotate) and note.prefix == "#"


@pytest.mark.parametrize(
    ("migration", "expected"),
    [
        (lambda doc: None, "returned NoneType, not the upgraded document"),
        (lambda doc: doc["nope"], "failed while upgrading the document from schema_version 1"),
    ],
)
def test_a_broken_plugin_migration_is_named(
    core_registry: Registry, migration: Any, expected: str
) -> None:
    core_registry.add_plugin(
        plugin_with(lambda r: r(migration, name="bad.mig", from_version=1)),
        name="badplug", distribution="fd-bad",
    )
    with pytest.raises(DocumentError) as err:
        Pipeline.load(DATA / "pipeline_v1.yaml", core_registry)
    assert "'bad.mig' of plugin 'badplug' (fd-bad)" in str(err.value)
    assert expected in str(err.value)


# ----------------------------------------------------------------------------- plugin versions
def saved_doc(registry: Registry, tmp_path: Path) -> dict[str, Any]:
    registry.add_plugin(AnnotatePlugin(), name="annotate", distribution="fd-annotate",
                        version="1.4.0")
    pipeline = Pipeline("versions", LoadFromDicts(name="load", data=[{"text": "a"}])
                        >> Annotate(name="note"))
    doc = pipeline.to_document(registry)
    assert doc["plugins"]["fd-annotate"] == "1.4.0"
    return doc


@pytest.mark.parametrize(
    ("written", "relation", "text"),
    [
        ("2.0.0", "newer", "written with fd-annotate 2.0.0; 1.4.0 is installed (upgrade it"),
        ("1.0.0", "older", "written with fd-annotate 1.0.0; 1.4.0 is installed"),
    ],
)
def test_plugin_version_mismatch_is_recorded_not_fatal(
    core_registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    written: str, relation: str, text: str,
) -> None:
    doc = saved_doc(core_registry, tmp_path)
    doc["plugins"]["fd-annotate"] = written
    with caplog.at_level(logging.INFO, logger="fastdistill.serialization"):
        pipeline = Pipeline.load(write(tmp_path, doc), core_registry)  # no error, no warning
    assert list(pipeline.steps) == ["load", "note"]
    assert any(text in note for note in pipeline.document_notes)
    records = [r for r in caplog.records if r.name == "fastdistill.serialization"]
    assert records and all(r.levelno == logging.INFO for r in records)
    assert any(text in r.getMessage() for r in records)
    notes = hints.plugin_version_notes(doc["plugins"], core_registry)
    assert [(n.distribution, n.relation) for n in notes] == [("fd-annotate", relation)]
    # saving again records the installed version: the note does not travel
    assert pipeline.to_document(core_registry)["plugins"]["fd-annotate"] == "1.4.0"


def test_matching_versions_give_no_note_and_missing_ones_are_noted(
    core_registry: Registry, tmp_path: Path
) -> None:
    doc = saved_doc(core_registry, tmp_path)
    assert Pipeline.load(write(tmp_path, doc), core_registry).document_notes == []
    doc["plugins"]["fd-gone"] = "3.1"
    notes = Pipeline.load(write(tmp_path, doc, "gone.yaml"), core_registry).document_notes
    assert notes == ["the document was written with fd-gone 3.1, which is not installed"]


def test_newer_core_version_is_a_note_but_newer_schema_is_an_error(
    core_registry: Registry, tmp_path: Path
) -> None:
    doc = saved_doc(core_registry, tmp_path)
    doc["plugins"]["fastdistill-core"] = "99.0.0"
    pipeline = Pipeline.load(write(tmp_path, doc), core_registry)
    assert any("fastdistill-core 99.0.0" in n for n in pipeline.document_notes)
    doc["schema_version"] = CURRENT_SCHEMA_VERSION + 1
    with pytest.raises(DocumentError, match="newer than this installation"):
        Pipeline.load(write(tmp_path, doc, "newer.yaml"), core_registry)


# ----------------------------------------------------------------------------- no run state
def test_run_and_cache_state_never_reach_the_document(
    core_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "llm-cache"
    monkeypatch.setenv("FASTDISTILL_CACHE_DIR", str(cache_dir))
    core_registry.add_plugin(AnnotatePlugin(), name="annotate", distribution="fd-annotate")
    note = Annotate(name="note", prefix="#")
    pipeline = Pipeline(
        "state",
        LoadFromDicts(name="load", data=[{"id": i, "text": str(i)} for i in range(5)],
                      batch_size=2) >> note >> KeepColumns(name="keep", columns=["id", "note"]),
    )
    before = pipeline.save(tmp_path / "before.yaml", core_registry).read_text()
    out = tmp_path / "out"
    result = pipeline.run(out, registry=core_registry)
    assert result.kept == 5 and note._seen == 5  # the step did hold run state
    after = pipeline.save(tmp_path / "after.yaml", core_registry).read_text()

    assert after == before
    doc = yaml.safe_load(after)
    assert set(doc) <= {"schema_version", "name", "description", "plugins", "steps"}
    for forbidden in (result.run_id, str(out), str(cache_dir), "_seen", "llm_cache",
                      "checkpoint", "document_notes"):
        assert forbidden not in after, forbidden
    # the copy of the document a run writes beside its outputs holds no run state either
    copy = out / "pipeline.yaml"
    if copy.exists():
        assert yaml.safe_load(copy.read_text())["steps"] == doc["steps"]
        assert "_seen" not in copy.read_text() and str(cache_dir) not in copy.read_text()
    # and a reloaded pipeline starts with fresh run state
    reloaded = Pipeline.load(tmp_path / "after.yaml", core_registry)
    assert reloaded.steps["note"]._seen == 0  # type: ignore[attr-defined]
