"""Shared fixtures for fastdistill-core tests.  They import only ``fastdistill`` (core)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Pipeline, Registry, RunResult

#: a run of these tiny pipelines takes well under a second; anything longer is a hang
RUN_TIMEOUT_S = 60.0


@pytest.fixture
def core_registry() -> Registry:
    """A fresh registry holding only core's built-ins (no installed third-party plugin)."""
    return Registry(env={"FASTDISTILL_LOAD_PLUGINS": ""})


def run_guarded(pipeline: Pipeline, timeout: float = RUN_TIMEOUT_S, **kwargs: Any) -> RunResult:
    """``pipeline.run(**kwargs)`` in a thread; a run that does not finish in time fails."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = pipeline.run(**kwargs)
        except BaseException as exc:  # re-raised in the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"run-{pipeline.name}")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        cancel = kwargs.get("cancel")
        if cancel is not None:
            cancel.set()
        pytest.fail(f"pipeline {pipeline.name!r} did not finish within {timeout}s (hang)")
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.fixture
def run(core_registry: Registry, tmp_path: Path) -> Callable[..., RunResult]:
    """Run a pipeline with the core registry into ``tmp_path/out`` under a wall-clock guard."""

    def _run(pipeline: Pipeline, **kwargs: Any) -> RunResult:
        kwargs.setdefault("registry", core_registry)
        kwargs.setdefault("output", str(tmp_path / "out"))
        return run_guarded(pipeline, **kwargs)

    return _run


class FakeDists:
    """Writes installed-looking distributions (``*.dist-info`` + a plugin module) to a folder."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.modules: list[str] = []

    def add(
        self, dist: str, source: str, *, version: str = "1.0.0", ep_name: str | None = None
    ) -> str:
        """Create distribution ``dist`` whose ``fastdistill`` entry point loads ``source``.

        Returns the (unique) module name of the plugin.
        """
        module = f"fdtest_{dist.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        (self.site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = self.site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[fastdistill]\n{ep_name or dist} = {module}\n", encoding="utf-8"
        )
        self.modules.append(module)
        importlib.invalidate_caches()
        return module


@pytest.fixture
def fake_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDists]:
    """Fake installed distributions, visible to ``importlib.metadata`` through ``sys.path``."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    dists = FakeDists(site)
    yield dists
    for module in dists.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def guarded() -> Callable[..., RunResult]:
    """:func:`run_guarded` as a fixture: ``guarded(pipeline, output=..., registry=...)``."""
    return run_guarded
