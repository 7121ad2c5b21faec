"""Meta-tests that keep hooks, docs and tests in step (as datasette's test_docs/test_plugins)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from fastdistill import hookspecs
from fastdistill.registry import HOOK_KINDS

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
HOOKS = sorted(
    name for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
)


def test_hookspecs_are_found() -> None:
    # guards the parametrisations below against silently collecting nothing
    assert set(HOOKS) == set(HOOK_KINDS)
    assert "register_steps" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_its_spec(hook: str) -> None:
    fn = getattr(hookspecs, hook)
    doc = inspect.getdoc(fn) or ""
    assert ":param register:" in doc, f"{hook} docstring lacks ':param register:'"
    assert list(inspect.signature(fn).parameters) == ["register"], hook
    assert ".. versionadded::" in doc, hook


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_mentioned_in_the_readme(hook: str) -> None:
    readme = REPO / "README.md"
    assert readme.is_file(), f"{readme} is missing"
    assert re.search(rf"\b{hook}\b", readme.read_text(encoding="utf-8")), (
        f"hook {hook} is not documented in README.md"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    this = Path(__file__).resolve()
    users = [
        p for p in TESTS.rglob("*.py")
        if p.resolve() != this and re.search(rf"def {hook}\(", p.read_text(encoding="utf-8"))
    ]
    assert users, f"no test implements hook {hook} (looked for 'def {hook}(' under {TESTS})"
