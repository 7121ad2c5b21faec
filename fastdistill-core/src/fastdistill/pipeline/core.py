"""``Pipeline``: a named DAG of steps, its validation and its ``run()``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastdistill.errors import PipelineValidationError
from fastdistill.pipeline.compose import Chain, as_chain
from fastdistill.registry import Registry, default_component_name
from fastdistill.step import GeneratorStep, Step, Task


@dataclass
class RunResult:
    """What a run produced: where, how many rows, and the reports."""

    run_id: str
    output: str
    dataset_path: str
    rejected_path: str
    kept: int
    rejected: int
    quality: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    #: True when a finished identical run in the same output folder was returned as is
    reused: bool = False

    def read_dataset(self) -> list[dict[str, Any]]:
        """The kept rows (reads ``dataset.jsonl``)."""
        return _read_jsonl(self.dataset_path)

    def read_rejected(self) -> list[dict[str, Any]]:
        """The rejected rows, each with its ``_rejection`` record."""
        return _read_jsonl(self.rejected_path)


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file: a local path is read directly, any other URL with fsspec."""
    import json

    from fastdistill.storage import local_path_of

    local = local_path_of(path)
    if local is None:
        import fsspec

        opened: Any = fsspec.open(path, "rt", encoding="utf-8")
    else:
        opened = open(local, encoding="utf-8")  # noqa: SIM115 - closed by the with below
    with opened as fh:
        return [json.loads(line) for line in fh if line.strip()]


class Pipeline:
    """A DAG of steps.

    Build it from a chain (``Pipeline("name", load >> clean >> [a, b] >> merge)``), add steps one
    by one (:meth:`add`), or load it from a document (:meth:`load`).

    :param name: the pipeline's name (used for the default output folder).
    :param graph: a step, a list, or a chain built with ``>>``.
    :param base_dir: where relative paths in step parameters are resolved (default: cwd).
    """

    def __init__(
        self,
        name: str = "pipeline",
        graph: Any = None,
        *,
        description: str = "",
        base_dir: str | Path | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ValueError(f"pipeline name {name!r} may use letters, digits, '_', '.', '-'")
        self.name = name
        self.description = description
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()
        self._steps: dict[str, Step] = {}
        self._upstream: dict[str, list[str]] = {}
        #: names of components the steps were built from (set when loaded from a document)
        self.component_names: dict[str, str] = {}
        #: notes from loading the document (e.g. plugin versions that differ from the installed)
        self.document_notes: list[str] = []
        if graph is not None:
            self.add_chain(as_chain(graph))

    # --------------------------------------------------------------- building
    def _name_for(self, step: Step) -> str:
        if step.name:
            return step.name
        base = default_component_name(type(step))
        name, i = base, 1
        while name in self._steps:
            i += 1
            name = f"{base}_{i}"
        return name

    def add(self, step: Step, after: list[str] | str | None = None) -> Step:
        """Add ``step`` (named automatically when it has no name) after the named steps."""
        if any(s is step for s in self._steps.values()):
            return step
        name = self._name_for(step)
        if name in self._steps:
            raise PipelineValidationError(f"two steps are named {name!r}; step names must be unique")
        step.name = name
        if isinstance(step, GeneratorStep):
            step._base_dir = self.base_dir
        self._steps[name] = step
        ups = [after] if isinstance(after, str) else list(after or [])
        self._upstream[name] = []
        for up in ups:
            self.connect(up, name)
        return step

    def connect(self, upstream: str | Step, downstream: str | Step) -> None:
        """Add the edge ``upstream -> downstream`` (both already in the pipeline)."""
        up = upstream if isinstance(upstream, str) else upstream.name
        down = downstream if isinstance(downstream, str) else downstream.name
        if up is None or down is None:
            raise PipelineValidationError("connect() needs steps that are in the pipeline (named)")
        for n in (up, down):
            if n not in self._steps:
                raise PipelineValidationError(f"no step named {n!r} in pipeline {self.name!r}")
        if up not in self._upstream[down]:
            self._upstream[down].append(up)

    def add_chain(self, chain: Chain) -> None:
        """Add every step and edge of a chain built with ``>>``."""
        for step in chain.steps:
            self.add(step)
        for a, b in chain.edges:
            self.connect(a.name or "", b.name or "")

    # --------------------------------------------------------------- queries
    @property
    def steps(self) -> dict[str, Step]:
        """Steps by name, in insertion order."""
        return dict(self._steps)

    def upstream(self, name: str) -> list[str]:
        """Names of the steps feeding ``name``."""
        return list(self._upstream[name])

    def downstream(self, name: str) -> list[str]:
        """Names of the steps ``name`` feeds."""
        return [d for d, ups in self._upstream.items() if name in ups]

    def leaves(self) -> list[str]:
        """Steps nothing reads from: their rows form the dataset."""
        return [n for n in self._steps if not self.downstream(n)]

    def topological_order(self) -> list[str]:
        """Step names, upstream first; raises on a cycle, naming the steps in it."""
        indeg = {n: len(ups) for n, ups in self._upstream.items()}
        ready = [n for n in self._steps if indeg[n] == 0]
        order: list[str] = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for d in self.downstream(n):
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
        if len(order) != len(self._steps):
            stuck = sorted(n for n in self._steps if n not in order)
            raise PipelineValidationError(
                f"pipeline {self.name!r} has a cycle through steps {', '.join(stuck)}; "
                "remove one of their connections"
            )
        return order

    # --------------------------------------------------------------- params
    def set_params(self, params: Mapping[str, Any], registry: Registry | None = None) -> None:
        """Set runtime parameters: ``{"step.key": value}`` or ``{"step": {"key": value}}``.

        Nested components use dots: ``teacher.llm.base_url``.
        """
        from fastdistill.pipeline.params import apply_params

        apply_params(self, params, registry)

    # --------------------------------------------------------------- validation
    def validate(self, registry: Registry | None = None) -> list[str]:
        """Check the pipeline before anything runs; returns warnings, raises on errors."""
        from fastdistill.pipeline.validate import validate_pipeline

        return validate_pipeline(self, registry)

    # --------------------------------------------------------------- documents
    def to_document(self, registry: Registry | None = None) -> dict[str, Any]:
        """The pipeline as a versioned document (components by registered name, no secrets)."""
        from fastdistill.serialization.document import pipeline_to_document

        return pipeline_to_document(self, registry)

    def save(self, path: str | Path, registry: Registry | None = None) -> Path:
        """Save as YAML (``.yaml``/``.yml``) or JSON (``.json``).

        Relative paths in the steps' :attr:`~fastdistill.Step.path_params` are rewritten to
        stay right beside the new document (they are relative to :attr:`base_dir` here).
        """
        from fastdistill.serialization.document import rebase_paths, save_document

        doc = self.to_document(registry)
        target = Path(path).resolve().parent
        if target != self.base_dir.resolve():
            rebase_paths(doc, self, self.base_dir.resolve(), target)
        return save_document(doc, path)

    @classmethod
    def load(cls, path: str | Path, registry: Registry | None = None) -> Pipeline:
        """Load a pipeline document; components are looked up by registered name only."""
        from fastdistill.serialization.document import load_pipeline

        return load_pipeline(path, registry)

    @classmethod
    def from_document(
        cls, doc: Mapping[str, Any], registry: Registry | None = None, base_dir: str | Path | None = None
    ) -> Pipeline:
        """Build a pipeline from an already-parsed document."""
        from fastdistill.serialization.document import pipeline_from_document

        return pipeline_from_document(doc, registry, base_dir)

    # --------------------------------------------------------------- running
    def run(
        self,
        output: str | Path | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        limit: int | None = None,
        engine: str = "local",
        transport: str = "memory",
        placement: str = "cpu",
        placement_options: Mapping[str, Any] | None = None,
        registry: Registry | None = None,
        on_event: Callable[[Any], None] | None = None,
        cancel: Any = None,
        resume: bool = True,
        checkpoint: bool = True,
        llm_cache: Any = True,
    ) -> RunResult:
        """Validate, then run on the chosen engine and write dataset, rejected set and reports.

        :param output: output folder or fsspec URL (default ``fastdistill-runs/<name>``).
        :param params: runtime parameters (see :meth:`set_params`).
        :param limit: maximum rows each generator produces.
        :param on_event: callback receiving progress events (see ``fastdistill.engine.events``).
        :param cancel: a ``threading.Event``; setting it cancels the run, keeping finished work.
        :param resume: reuse the checkpoints of earlier attempts in ``output`` (a killed run
            continues where it stopped; a finished identical run returns at once).  ``False``
            starts from scratch (``--fresh``).
        :param checkpoint: write step checkpoints so that this run can be resumed.
        :param llm_cache: the LLM response cache: ``True`` (default) uses the shared cache in
            ``$FASTDISTILL_CACHE_DIR`` (``~/.cache/fastdistill``), a path uses that SQLite file,
            an :class:`~fastdistill.cache.LLMResponseCache` is used as is, ``False`` bypasses it.
        """

        if limit is not None and limit < 0:
            raise PipelineValidationError(f"limit must be 0 or more, got {limit}")
        registry = registry or Registry()
        if params:
            self.set_params(params, registry)
        self.validate(registry)
        engine_cls = registry.engine(engine)
        # only LLM tasks ask models: a pipeline without one opens (and imports) no cache
        asks = any(isinstance(s, Task) for s in self._steps.values())
        cache, own_cache = _open_cache(llm_cache if asks else False)
        try:
            return self._run_plan(
                engine_cls, cache, registry=registry, output=output, limit=limit,
                transport=transport, placement=placement, placement_options=placement_options,
                on_event=on_event, cancel=cancel, resume=resume, checkpoint=checkpoint,
            )
        finally:
            if own_cache and cache is not None:
                cache.close()

    def _run_plan(
        self, engine_cls: Any, cache: Any, *, registry: Registry, output: Any, limit: int | None,
        transport: str, placement: str, placement_options: Any, on_event: Any, cancel: Any,
        resume: bool, checkpoint: bool,
    ) -> RunResult:
        from fastdistill.engine.plan import build_plan

        plan = build_plan(
            self,
            registry=registry,
            output=output,
            limit=limit,
            transport=transport,
            placement=placement,
            placement_options=placement_options,
            on_event=on_event,
            cancel=cancel,
            resume=resume,
            checkpoint=checkpoint,
            llm_cache=cache,
        )
        from fastdistill.engine.runlock import hold_output

        with hold_output(plan.storage):  # a second run into this folder is refused meanwhile
            _check_output_folder(plan, self.name, fresh=not resume)
            result: RunResult = engine_cls().run(plan)
        return result

    def generators(self) -> list[str]:
        """Names of generator steps."""
        return [n for n, s in self._steps.items() if isinstance(s, GeneratorStep)]

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={list(self._steps)})"


def _open_cache(spec: Any) -> tuple[Any, bool]:
    """``(cache or None, whether this run opened it)`` from ``Pipeline.run``'s ``llm_cache``."""
    if spec is None or spec is False:
        return None, False
    from fastdistill.cache import LLMResponseCache

    if isinstance(spec, LLMResponseCache):
        return spec, False
    if spec is True:
        return LLMResponseCache(), True
    return LLMResponseCache(spec), True


#: what a run writes at the top of its output folder (``--fresh`` removes these)
RUN_ARTIFACTS = ("dataset.jsonl", "rejected.jsonl", "quality_report.json", "timing_report.json",
                 "pipeline.yaml", "manifests", ".fastdistill", ".spool")


def _check_output_folder(plan: Any, name: str, *, fresh: bool) -> None:
    """Refuse to mix two pipelines in one output folder; ``fresh`` clears an earlier run."""
    import json

    storage = plan.storage
    state_rel = ".fastdistill/state.json"
    previous = None
    if storage.exists(state_rel):
        try:
            previous = json.loads(storage.read_bytes(state_rel)).get("pipeline")
        except ValueError:
            previous = None
    if fresh:
        for rel in RUN_ARTIFACTS:
            if storage.exists(rel):
                storage.rm(rel, recursive=True)
        for rel in storage.listdir():
            if rel.startswith("dataset.") and rel.endswith(".jsonl"):
                storage.rm(rel)
        return
    if previous is not None and previous != name:
        raise PipelineValidationError(
            f"the output folder {storage.url} holds a run of pipeline {previous!r}, not {name!r}; "
            "choose another --output, or pass --fresh (resume=False) to replace that run"
        )
