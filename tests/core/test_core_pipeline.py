"""Composition with ``>>`` and validation before anything runs (each error names the step)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastdistill import (
    DocumentError,
    Pipeline,
    PipelineValidationError,
    Registry,
    RuntimeParameter,
    Step,
)
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts


class Pass(Step):
    inputs = ("x",)

    def process(self, rows: Any, ctx: Any) -> Any:
        return rows


class NeedsY(Step):
    inputs = ("x", "y")

    def process(self, rows: Any, ctx: Any) -> Any:
        return rows


class AddsY(Step):
    inputs = ("x",)
    outputs = ("y",)

    def process(self, rows: Any, ctx: Any) -> Any:
        return [{**r, "y": 1} for r in rows]


class WithEndpoint(Step):
    base_url: Annotated[str | None, RuntimeParameter("the API endpoint", required=True)] = None

    def process(self, rows: Any, ctx: Any) -> Any:
        return rows


def load(**kw: Any) -> LoadFromDicts:
    return LoadFromDicts(data=[{"x": 1}], **kw)


def edges(p: Pipeline) -> set[tuple[str, str]]:
    return {(up, name) for name in p.steps for up in p.upstream(name)}


# ------------------------------------------------------------------ composition
def test_rshift_builds_edges() -> None:
    a, b = load(name="a"), Pass(name="b")
    p = Pipeline("p", a >> b)
    assert list(p.steps) == ["a", "b"]
    assert edges(p) == {("a", "b")}
    assert p.leaves() == ["b"]


def test_fan_out_and_converge() -> None:
    a, b, c, d = load(name="a"), Pass(name="b"), Pass(name="c"), Pass(name="d")
    p = Pipeline("p", a >> [b, c] >> d)
    assert edges(p) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert p.upstream("d") == ["b", "c"]
    assert p.downstream("a") == ["b", "c"]
    order = p.topological_order()
    assert order[0] == "a" and order[-1] == "d"
    assert p.leaves() == ["d"]


def test_longer_chains_compose_without_duplicate_edges() -> None:
    a, b, c, d, e = load(name="a"), Pass(name="b"), Pass(name="c"), Pass(name="d"), Pass(name="e")
    left = a >> [b, c]
    p = Pipeline("p", [left >> d, c >> e])
    assert edges(p) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("c", "e")}
    assert sorted(p.leaves()) == ["d", "e"]


def test_unnamed_steps_get_unique_names() -> None:
    p = Pipeline("p", load() >> Pass() >> Pass())
    assert list(p.steps) == ["load_from_dicts", "pass", "pass_2"]


def test_duplicate_explicit_names_are_an_error() -> None:
    with pytest.raises(PipelineValidationError, match="'b'"):
        Pipeline("p", load(name="a") >> [Pass(name="b"), Pass(name="b")])


def test_connecting_something_that_is_not_a_step_fails() -> None:
    with pytest.raises(TypeError, match="int"):
        load() >> 3  # type: ignore[operator]


# ------------------------------------------------------------------ validation
def test_cycle_names_the_steps_in_it(core_registry: Registry) -> None:
    p = Pipeline("p")
    p.add(load(name="src"))
    p.add(Pass(name="alpha"), after="src")
    p.add(Pass(name="beta"), after="alpha")
    p.add(Pass(name="tail"), after="src")
    p.connect("beta", "alpha")
    with pytest.raises(PipelineValidationError) as err:
        p.validate(core_registry)
    message = str(err.value)
    assert "cycle" in message and "alpha" in message and "beta" in message
    assert "tail" not in message and "src" not in message


def test_connect_unknown_step_names_it() -> None:
    p = Pipeline("p")
    p.add(load(name="src"))
    with pytest.raises(PipelineValidationError, match="'nope'"):
        p.connect("src", "nope")


def test_missing_column_names_step_and_column(core_registry: Registry) -> None:
    p = Pipeline("p", load(name="src") >> Pass(name="ok") >> NeedsY(name="needy"))
    with pytest.raises(PipelineValidationError) as err:
        p.validate(core_registry)
    message = str(err.value)
    assert "'needy'" in message and "'y'" in message
    assert "available: x" in message  # says what there is
    # producing the column upstream fixes it, also across a fan-out
    ok = Pipeline("p", load(name="src") >> [AddsY(name="adds"), Pass(name="other")] >> NeedsY())
    assert ok.validate(core_registry) == []


def test_missing_required_runtime_parameter(core_registry: Registry) -> None:
    p = Pipeline("p", load(name="src") >> WithEndpoint(name="teacher"))
    with pytest.raises(PipelineValidationError) as err:
        p.validate(core_registry)
    message = str(err.value)
    assert "'teacher'" in message and "base_url" in message and "the API endpoint" in message
    assert "--param teacher." in message
    p.set_params({"teacher.base_url": "http://localhost:1"})
    p.validate(core_registry)


def test_generator_with_upstream_is_refused(core_registry: Registry) -> None:
    p = Pipeline("p", load(name="first") >> load(name="second"))
    with pytest.raises(PipelineValidationError, match="'second'.*generator"):
        p.validate(core_registry)


def test_step_without_upstream_is_refused(core_registry: Registry) -> None:
    p = Pipeline("p", [load(name="src"), Pass(name="orphan")])
    with pytest.raises(PipelineValidationError, match="'orphan'.*no upstream"):
        p.validate(core_registry)


def test_empty_pipeline_is_refused(core_registry: Registry) -> None:
    with pytest.raises(PipelineValidationError, match="no steps"):
        Pipeline("empty").validate(core_registry)


def test_unknown_component_in_a_document_lists_close_names(core_registry: Registry) -> None:
    doc = {
        "schema_version": 2,
        "name": "p",
        "steps": [
            {"name": "src", "component": "load_from_dicts", "params": {"data": [{"x": 1}]}},
            {"name": "keep", "component": "keep_colums", "params": {"columns": ["x"]}},
        ],
    }
    with pytest.raises(DocumentError) as err:
        Pipeline.from_document(doc, core_registry)
    message = str(err.value)
    assert "'keep'" in message and "'keep_colums'" in message and "'keep_columns'" in message


def test_document_after_naming_an_unknown_step(core_registry: Registry) -> None:
    doc = {
        "schema_version": 2,
        "steps": [
            {"name": "src", "component": "load_from_dicts", "params": {"data": [{"x": 1}]}},
            {"name": "keep", "component": "keep_columns", "after": ["scr"],
             "params": {"columns": ["x"]}},
        ],
    }
    with pytest.raises(DocumentError, match="'keep'.*'scr'.*Did you mean 'src'"):
        Pipeline.from_document(doc, core_registry)


def test_document_invalid_params_name_the_step(core_registry: Registry) -> None:
    doc = {
        "schema_version": 2,
        "steps": [
            {"name": "src", "component": "load_from_dicts", "params": {"data": [{"x": 1}]}},
            {"name": "keep", "component": "keep_columns", "params": {"colums": ["x"]}},
        ],
    }
    with pytest.raises(DocumentError) as err:
        Pipeline.from_document(doc, core_registry)
    assert "'keep'" in str(err.value) and "colums" in str(err.value)
    assert "columns" in str(err.value)  # lists the real parameters


# ------------------------------------------------------------------ set_params
def test_set_params_unknown_parameter_suggests(core_registry: Registry) -> None:
    p = Pipeline("p", load(name="src") >> KeepColumns(name="keep", columns=["x"]))
    with pytest.raises(PipelineValidationError) as err:
        p.set_params({"keep.colums": ["x"]})
    assert "'keep.colums'" in str(err.value) and "'columns'" in str(err.value)


def test_set_params_unknown_parameter_lists_the_known_ones() -> None:
    p = Pipeline("p", load(name="src") >> KeepColumns(name="keep", columns=["x"]))
    with pytest.raises(PipelineValidationError) as err:
        p.set_params({"keep.nokey": 1})  # nothing close to it
    assert "Parameters: " in str(err.value) and "columns" in str(err.value)
    assert "input_batch_size" in str(err.value) and "'name'" not in str(err.value)


def test_set_params_unknown_step_suggests() -> None:
    p = Pipeline("p", load(name="src") >> KeepColumns(name="keep", columns=["x"]))
    with pytest.raises(PipelineValidationError, match="no step named 'kep'.*Did you mean 'keep'"):
        p.set_params({"kep.columns": ["x"]})


def test_set_params_validates_and_accepts_nested_form() -> None:
    p = Pipeline("p", load(name="src") >> KeepColumns(name="keep", columns=["x"]))
    p.set_params({"keep": {"columns": ["x", "y"], "input_batch_size": 7}})
    step = p.steps["keep"]
    assert isinstance(step, KeepColumns)
    assert step.columns == ["x", "y"] and step.input_batch_size == 7
    with pytest.raises(PipelineValidationError, match="'keep.input_batch_size'.*'keep'"):
        p.set_params({"keep.input_batch_size": 0})
    with pytest.raises(PipelineValidationError, match="step.key"):
        p.set_params({"keep": 3})
    with pytest.raises(PipelineValidationError):
        p.set_params({"keep.name": "renamed"})  # the name is structure, not a parameter


def test_param_can_replace_a_nested_component() -> None:
    from fastdistill import Registry, Task
    from fastdistill.builtins.steps import LoadFromDicts
    from fastdistill.models import LLM
    from fastdistill.pipeline import Pipeline
    from fastdistill.testing import ScriptedLLM

    class Teach(Task):
        llm: LLM

    class OtherLLM(ScriptedLLM):
        pass

    registry = Registry()
    registry.add_plugin(_models_plugin(OtherLLM), name="test-models")
    p = Pipeline("swap", LoadFromDicts(data=[{"q": 1}]) >> Teach(llm=ScriptedLLM(), name="teach"))
    p.set_params({"teach.llm": {"component": "other_llm", "params": {"name_": "swapped"}}}, registry)
    assert isinstance(p.steps["teach"].llm, OtherLLM)
    assert p.steps["teach"].llm.model_name == "swapped"
    import pytest

    from fastdistill.errors import PipelineValidationError

    with pytest.raises(PipelineValidationError, match="other_lm|unknown model"):
        p.set_params({"teach.llm": {"component": "other_lm"}}, registry)


def _models_plugin(cls):
    from fastdistill import hookimpl

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(cls, name="other_llm")

    return Plugin()
