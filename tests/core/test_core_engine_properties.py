"""Property tests of the local engine: on every run shape, input ids = output ids + rejected ids,
each exactly once (hypothesis over DAG shapes, batch sizes, replicas, latencies, failures), plus
cases C04 (replicas) and C05 (empty batches, lone generator)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastdistill import Pipeline, Reason, Step, Task
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.testing import ScriptedLLM


class Flaky(Step):
    """Adds a column; rejects ids ≡ r (mod m); raises on ids ≡ x (mod k); random latency."""

    column: str = "a"
    reject_mod: int = 0
    raise_mod: int = 0
    latency_s: float = 0.0

    def output_columns(self) -> list[str]:
        return [self.column]

    def process(self, rows: list[dict], ctx: Any) -> list[dict]:
        if self.latency_s:
            time.sleep(random.random() * self.latency_s)
        out = []
        for r in rows:
            if self.raise_mod and r["id"] % self.raise_mod == 1:
                raise ValueError(f"boom on {r['id']}")
            if self.reject_mod and r["id"] % self.reject_mod == 0:
                ctx.reject(r, Reason.RULE_FAILED, "mod")
                continue
            out.append({**r, self.column: r["id"]})
        return out


class Ask(Task):
    """A task over a scripted model that fails for some rows."""

    llm: ScriptedLLM
    fail_mod: int = 0

    async def aprocess_row(self, row: dict, ctx: Any) -> dict | None:
        if self.fail_mod and row["id"] % self.fail_mod == 2:
            ctx.reject(row, Reason.PROVIDER_ERROR, "scripted failure")
            return None
        gen = await self.llm.agenerate([{"role": "user", "content": str(row["id"])}])
        return {**row, "answer": gen.text}


def run_guarded(pipeline: Pipeline, out: Path, timeout: float = 60, **kw: Any) -> Any:
    """Run in a thread; a hang fails the test instead of hanging CI."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = pipeline.run(out, **kw)
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"pipeline {pipeline.name} did not finish within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box["result"]


def assert_exactly_once(result: Any, n: int) -> tuple[list[dict], list[dict]]:
    kept, rejected = result.read_dataset(), result.read_rejected()
    ids = Counter([r["id"] for r in kept] + [r["id"] for r in rejected])
    assert sorted(ids) == list(range(n))
    assert max(ids.values(), default=1) == 1
    assert multiprocessing.active_children() == []
    return kept, rejected


step_params = st.fixed_dictionaries({
    "input_batch_size": st.integers(1, 40),
    "reject_mod": st.sampled_from([0, 0, 3, 7]),
    "raise_mod": st.sampled_from([0, 0, 11]),
    "latency_s": st.sampled_from([0.0, 0.0, 0.002]),
    "replicas": st.sampled_from([1, 1, 2, 3]),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(0, 120),
    gen_batch=st.integers(1, 50),
    chain=st.lists(step_params, min_size=1, max_size=3),
    branches=st.lists(step_params, min_size=0, max_size=3),
    task_in_flight=st.sampled_from([None, 1, 5]),
    fail_mod=st.sampled_from([0, 4]),
)
def test_every_input_id_once_on_random_shapes(
    tmp_path: Path, n: int, gen_batch: int, chain: list[dict], branches: list[dict],
    task_in_flight: int | None, fail_mod: int,
) -> None:
    rows = [{"id": i} for i in range(n)]
    flow: Any = LoadFromDicts(data=rows, batch_size=gen_batch)
    for i, params in enumerate(chain):
        flow = flow >> Flaky(column=f"c{i}", replica_mode="thread", **params)
    if task_in_flight:
        flow = flow >> Ask(llm=ScriptedLLM(latency_s=0.001), max_in_flight=task_in_flight,
                           fail_mod=fail_mod, input_batch_size=7)
    if branches:
        flow = flow >> [
            Flaky(column=f"b{i}", replica_mode="thread", **params) for i, params in enumerate(branches)
        ] >> KeepColumns(columns=["id"])
    out = tmp_path / f"run-{random.getrandbits(40)}"
    result = run_guarded(Pipeline("prop", flow), out, checkpoint=random.random() < 0.5)
    kept, rejected = assert_exactly_once(result, n)
    for r in rejected:
        assert r["_rejection"]["reason"] in ("rule_failed", "step_error", "provider_error")


@pytest.mark.slow
@pytest.mark.parametrize("mode,runs", [("thread", 10), ("process", 2)])
def test_c04_replicas_terminate_with_every_id(tmp_path: Path, mode: str, runs: int) -> None:
    rows = [{"id": i} for i in range(1000)]
    for i in range(runs):
        p = Pipeline(
            "c04",
            LoadFromDicts(data=rows, batch_size=10)
            >> Flaky(replicas=8, replica_mode=mode, latency_s=0.05, input_batch_size=10)
            >> KeepColumns(columns=["id", "a"]),
        )
        result = run_guarded(p, tmp_path / f"{mode}{i}", timeout=120)
        kept, rejected = assert_exactly_once(result, 1000)
        assert len(kept) == 1000 and not rejected


class KeepIf(Step):
    """FilterByBool: keep rows whose ``keep`` is true."""

    inputs = ("keep",)

    def process(self, rows: list[dict], ctx: Any) -> list[dict]:
        out = []
        for r in rows:
            if r["keep"]:
                out.append(r)
            else:
                ctx.reject(r, Reason.RULE_FAILED, "keep is false")
        return out


def test_c05_empty_batches_do_not_hang(tmp_path: Path) -> None:
    rows = [{"id": i, "keep": i >= 10 and i % 2 == 0} for i in range(30)]  # batch 1 all False
    p = Pipeline("c05", LoadFromDicts(data=rows, batch_size=10) >> KeepIf(input_batch_size=10)
                 >> KeepColumns(columns=["id"]))
    result = run_guarded(p, tmp_path / "a", timeout=30)
    assert sorted(r["id"] for r in result.read_dataset()) == [r["id"] for r in rows if r["keep"]]


def test_c05_everything_filtered_finishes_with_a_warning(tmp_path: Path) -> None:
    rows = [{"id": i, "keep": False} for i in range(30)]
    p = Pipeline("c05b", LoadFromDicts(data=rows, batch_size=10) >> KeepIf(input_batch_size=10)
                 >> KeepColumns(columns=["id"]))
    result = run_guarded(p, tmp_path / "b", timeout=30)
    assert result.kept == 0 and result.rejected == 30
    assert any("no row was kept" in w for w in result.quality["warnings"])


def test_c05_lone_generator(tmp_path: Path) -> None:
    p = Pipeline("lone", LoadFromDicts(data=[{"id": i} for i in range(100)], batch_size=50))
    result = run_guarded(p, tmp_path / "c", timeout=30)
    assert result.kept == 100
