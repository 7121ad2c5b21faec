"""Steps: runtime-parameter metadata per class, strict fields, column contracts."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastdistill import GeneratorStep, RuntimeParameter, Step
from fastdistill.step import RuntimeParamInfo
from pydantic import ValidationError


class Base(Step):
    inputs = ("text",)
    outputs = ("text",)

    output_dir: Annotated[str, RuntimeParameter("where files go")] = "out"
    base_url: Annotated[str | None, RuntimeParameter("API base URL", required=True)] = None
    temperature: float = 0.7  # configuration, not a runtime parameter

    def process(self, rows: Any, ctx: Any) -> Any:
        return rows


class Child(Base):
    retries: Annotated[int, RuntimeParameter("how often to retry")] = 3


def test_runtime_parameters_are_computed_per_class_at_creation() -> None:
    info = Base.runtime_parameters_info
    assert set(info) == {"output_dir", "base_url"}
    assert info["output_dir"] == RuntimeParamInfo("output_dir", "where files go", False, "out")
    assert info["base_url"] == RuntimeParamInfo("base_url", "API base URL", True, None)
    assert "temperature" not in info
    # the base class has none
    assert Step.runtime_parameters_info == {}


def test_subclass_inherits_and_extends_without_touching_the_parent() -> None:
    assert set(Child.runtime_parameters_info) == {"output_dir", "base_url", "retries"}
    assert Child.runtime_parameters_info["retries"].default == 3
    assert "retries" not in Base.runtime_parameters_info
    assert Child.runtime_parameters_info is not Base.runtime_parameters_info


def test_runtime_parameters_are_not_recomputed_per_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fastdistill.step as step_module

    before = Child.runtime_parameters_info
    built: list[str] = []

    class CountingInfo(RuntimeParamInfo):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(args[0] if args else kwargs["name"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(step_module, "RuntimeParamInfo", CountingInfo)
    a = Child(output_dir="a", base_url="http://a")
    b = Child(retries=5)
    a.output_dir = "changed"
    assert built == []  # creating and changing instances computes nothing
    assert type(a).runtime_parameters_info is before
    assert type(b).runtime_parameters_info is before
    # instance values do not leak into the class metadata
    assert before["output_dir"].default == "out"
    assert before["retries"].default == 3

    # the spy is live: creating a class does compute its metadata (once)
    class Grandchild(Child):
        pass

    assert sorted(built) == ["base_url", "output_dir", "retries"]
    assert set(Grandchild.runtime_parameters_info) == set(before)


def test_a_misspelled_field_is_an_error_not_ignored() -> None:
    with pytest.raises(ValidationError) as err:
        Base(input_batch_sise=10)
    assert "input_batch_sise" in str(err.value)
    assert "Extra inputs are not permitted" in str(err.value)


def test_assignment_is_validated() -> None:
    step = Base()
    with pytest.raises(ValidationError):
        step.input_batch_size = 0  # must be >= 1
    with pytest.raises(ValidationError):
        step.temperature = "hot"  # type: ignore[assignment]


def test_column_contracts_come_from_the_class_and_can_be_overridden() -> None:
    class Dynamic(Step):
        column: str = "a"

        def input_columns(self) -> list[str]:
            return [self.column]

        def output_columns(self) -> list[str]:
            return [f"{self.column}_len"]

    assert Base().input_columns() == ["text"] and Base().output_columns() == ["text"]
    assert Dynamic(column="q").input_columns() == ["q"]
    assert Dynamic(column="q").output_columns() == ["q_len"]


def test_unimplemented_methods_name_the_class() -> None:
    class Lazy(Step):
        pass

    class LazyGen(GeneratorStep):
        pass

    with pytest.raises(NotImplementedError, match="Lazy.process"):
        Lazy().process([], None)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="LazyGen.generate"):
        LazyGen().generate(None)  # type: ignore[arg-type]
