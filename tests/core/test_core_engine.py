"""The local engine: streaming, fan-out/convergence by row id, rejections, tasks, cancel.

Every run goes through ``run_guarded`` (conftest), so a hang fails the test instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastdistill import (
    LLM,
    ROW_ID,
    Generation,
    GeneratorStep,
    GlobalStep,
    Pipeline,
    Reason,
    Registry,
    RunResult,
    Step,
    StepContext,
    StepError,
    Task,
    hookimpl,
)
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.engine.local import LocalEngine
from fastdistill.placement import DeviceAssignment
from fastdistill.testing import ScriptedLLM
from fastdistill.transport import MemoryTransport

Runner = Callable[..., RunResult]


def rows(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "x": i, **extra} for i in range(n)]


def ids(found: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in found]


def assert_accounted(result: RunResult, n: int) -> None:
    """Every input row ends up kept or rejected, exactly once, never both."""
    kept = ids(result.read_dataset())
    rejected = ids(result.read_rejected())
    assert len(kept) == len(set(kept)), "a row was kept twice"
    assert len(rejected) == len(set(rejected)), "a row was rejected twice"
    assert not set(kept) & set(rejected), "a row was both kept and rejected"
    assert sorted(kept + rejected) == list(range(n))
    assert (result.kept, result.rejected) == (len(kept), len(rejected))


# ------------------------------------------------------------------ steps used below
class Double(Step):
    inputs = ("x",)
    outputs = ("a",)

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        return [{**r, "a": r["x"] * 2} for r in batch]


class RejectMultiples(Step):
    """Rejects rows whose ``x`` is a multiple of ``of``; adds column ``col``."""

    inputs = ("x",)
    of: int = 3
    col: str = "b"

    def output_columns(self) -> list[str]:
        return [self.col]

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        out = []
        for r in batch:
            if r["x"] % self.of == 0:
                ctx.reject(r, Reason.RULE_FAILED, f"multiple of {self.of}")
            else:
                out.append({**r, self.col: r["x"] + 1})
        return out


class Sum(Step):
    inputs = ("a", "b")
    outputs = ("s",)

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        return [{**r, "s": r["a"] + r["b"]} for r in batch]


class RaisesOn(Step):
    inputs = ("x",)
    bad: int = 5

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        if any(r["x"] == self.bad for r in batch):
            raise ValueError(f"cannot handle x={self.bad}")
        return batch


class DropsSilently(Step):
    inputs = ("x",)

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        return [r for r in batch if r["x"] % 4]


class RejectAll(Step):
    inputs = ("x",)

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        for r in batch:
            ctx.reject(r, "not_wanted", "every row")
        return []


class Nothing(Step):
    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        return batch


# ------------------------------------------------------------------ linear runs
def test_linear_run_with_rejections(run: Runner) -> None:
    p = Pipeline(
        "linear",
        LoadFromDicts(data=rows(20), batch_size=6)
        >> Double(input_batch_size=4)
        >> RejectMultiples(of=3, input_batch_size=5),
    )
    result = run(p)

    kept = result.read_dataset()
    assert ids(kept) == [i for i in range(20) if i % 3]  # in input order
    assert kept[0] == {"id": 1, "x": 1, "a": 2, "b": 2}  # no private columns in the dataset
    rejected = result.read_rejected()
    assert ids(rejected) == [0, 3, 6, 9, 12, 15, 18]
    assert rejected[0][ROW_ID] == "load_from_dicts:0"
    assert rejected[0]["_rejection"] == {
        "reason": "rule_failed",
        "step": "reject_multiples",
        "detail": "multiple of 3",
    }
    assert_accounted(result, 20)
    assert result.cancelled is False


def test_fan_out_and_convergence_align_rows_by_id(run: Runner) -> None:
    n = 60
    load = LoadFromDicts(data=rows(n), batch_size=7)
    a = Double(name="a", input_batch_size=3)
    b = RejectMultiples(name="b", of=3, col="b", input_batch_size=5)
    c = RejectMultiples(name="c", of=2, col="c", input_batch_size=11)
    merge = Sum(name="merge", input_batch_size=4)
    result = run(Pipeline("fan", load >> [a, b, c] >> merge))

    kept = result.read_dataset()
    survivors = [i for i in range(n) if i % 3 and i % 2]
    assert ids(kept) == survivors
    for r in kept:  # columns of every branch belong to the same input row
        assert r == {"id": r["x"], "x": r["x"], "a": 2 * r["x"], "b": r["x"] + 1,
                     "c": r["x"] + 1, "s": 3 * r["x"] + 1}
    rejected = result.read_rejected()
    # a row both branches reject (multiples of 6) is in the rejected set once
    assert sorted(ids(rejected)) == [i for i in range(n) if i % 3 == 0 or i % 2 == 0]
    for r in rejected:
        assert r["_rejection"]["step"] in {"b", "c"}
        assert r["_rejection"]["reason"] == "rule_failed"
    assert_accounted(result, n)
    assert result.quality["rejected_by_step"]["b"]["rule_failed"] + result.quality[
        "rejected_by_step"
    ]["c"]["rule_failed"] == len(rejected)


def test_fan_out_to_two_leaves_writes_one_dataset_per_leaf(run: Runner, tmp_path: Path) -> None:
    load = LoadFromDicts(data=rows(10), batch_size=3)
    p = Pipeline("leaves", load >> [Double(name="left"), RejectMultiples(name="right", of=5)])
    result = run(p)
    left = [r for r in _jsonl(tmp_path / "out" / "dataset.left.jsonl")]
    right = [r for r in _jsonl(tmp_path / "out" / "dataset.right.jsonl")]
    assert ids(left) == list(range(10))
    assert ids(right) == [i for i in range(10) if i % 5]
    assert "b" not in left[0] and "a" not in right[0]  # branches got independent copies
    assert result.kept == 10 + 8


def _jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_row_that_raises_is_the_only_one_rejected(run: Runner) -> None:
    p = Pipeline(
        "raises",
        LoadFromDicts(data=rows(12), batch_size=12) >> RaisesOn(bad=5, input_batch_size=4),
    )
    result = run(p)
    assert ids(result.read_dataset()) == [i for i in range(12) if i != 5]
    (bad,) = result.read_rejected()
    assert bad["id"] == 5
    assert bad["_rejection"]["reason"] == "step_error"
    assert bad["_rejection"]["step"] == "raises_on"
    assert "ValueError" in bad["_rejection"]["detail"]
    assert "cannot handle x=5" in bad["_rejection"]["detail"]
    assert_accounted(result, 12)


def test_rows_a_step_drops_silently_are_rejected_with_step_error(run: Runner) -> None:
    p = Pipeline("drops", LoadFromDicts(data=rows(16), batch_size=5) >> DropsSilently())
    result = run(p)
    assert ids(result.read_dataset()) == [i for i in range(16) if i % 4]
    rejected = result.read_rejected()
    assert ids(rejected) == [0, 4, 8, 12]
    assert {r["_rejection"]["reason"] for r in rejected} == {"step_error"}
    assert {r["_rejection"]["step"] for r in rejected} == {"drops_silently"}
    assert_accounted(result, 16)


def test_rows_returned_without_the_row_id_are_not_counted_twice(run: Runner) -> None:
    class Rebuilds(Step):
        inputs = ("x",)

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            return [{"id": r["id"], "x": r["x"]} for r in batch]  # drops the private column

    result = run(Pipeline("rebuild", LoadFromDicts(data=rows(6)) >> Rebuilds()))
    assert_accounted(result, 6)
    # the engine cannot trace such rows, so it says why they were rejected
    rejected = result.read_rejected()
    assert result.kept == 0 and len(rejected) == 6
    assert {r["_rejection"]["reason"] for r in rejected} == {"step_error"}
    assert "'_row_id'" in rejected[0]["_rejection"]["detail"]


def test_a_row_returned_twice_is_rejected_not_kept_twice(run: Runner) -> None:
    class Repeats(Step):
        inputs = ("x",)

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            # row 0 of each batch twice (once more in place of row 1, which vanishes)
            return [batch[0], *batch] if batch[0]["id"] % 8 == 0 else [batch[0], *batch[:1],
                                                                           *batch[2:]]

    result = run(Pipeline("repeats", LoadFromDicts(data=rows(16), batch_size=4)
                          >> Repeats(input_batch_size=4)))
    assert_accounted(result, 16)
    rejected = {r["id"]: r["_rejection"] for r in result.read_rejected()}
    assert sorted(rejected) == [0, 4, 5, 8, 12, 13]  # the repeated rows, and the vanished ones
    assert "returned 2 rows for this one input row" in rejected[0]["detail"]
    assert "no row and no reason" in rejected[5]["detail"]
    assert {j["reason"] for j in rejected.values()} == {"step_error"}


def test_extra_rows_without_a_row_id_are_not_kept_and_are_reported(
    run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    class AddsOne(Step):
        inputs = ("x",)

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            # rows of its own, not traceable to an input: no row id, a made-up one, not a row
            return [*batch, {"id": 99, "x": 0}, {**batch[0], "id": 98, ROW_ID: "made:up"}, None]

    with caplog.at_level(logging.WARNING, logger="fastdistill.step.addsone"):
        result = run(Pipeline("adds", LoadFromDicts(data=rows(6), batch_size=3)
                              >> AddsOne(name="addsone", input_batch_size=3)))
    assert_accounted(result, 6)  # ids 98 and 99 are not in the dataset
    assert result.kept == 6
    assert any("without the engine's '_row_id'" in r.getMessage() for r in caplog.records)
    assert any("'addsone' returned 6 row(s)" in w for w in result.quality["warnings"])


def test_a_step_that_returns_non_rows_in_place_of_its_rows_rejects_those_rows(
    run: Runner,
) -> None:
    class Broken(Step):
        inputs = ("x",)

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            return [None, *batch[1:-1], {**batch[-1], ROW_ID: "made:up"}]

    result = run(Pipeline("broken", LoadFromDicts(data=rows(6)) >> Broken(input_batch_size=3)))
    assert_accounted(result, 6)  # the run goes on: no engine error
    rejected = {r["id"]: r["_rejection"] for r in result.read_rejected()}
    assert sorted(rejected) == [0, 2, 3, 5]
    assert all("not its input rows" in j["detail"] for j in rejected.values())


class NeedsX(Step):
    inputs = ("x",)

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        return [{**r, "y": r["x"] * 2 + r.get("bonus", {})["b"]} for r in batch]


@pytest.mark.parametrize("replicas", [1, 2], ids=["one", "process-replicas"])
def test_a_row_without_a_declared_input_column_is_invalid_input(
    run: Runner, replicas: int
) -> None:
    data = [{"id": i, "x": i, "bonus": {"b": 1}} for i in range(6)]
    del data[2]["x"]  # a column the step declares
    del data[4]["bonus"]["b"]  # a KeyError the step's own code raises: still step_error
    result = run(Pipeline("needs", LoadFromDicts(data=data)
                          >> NeedsX(name="needs", replicas=replicas, input_batch_size=3)))
    assert_accounted(result, 6)
    rejected = {r["id"]: r["_rejection"] for r in result.read_rejected()}
    assert rejected[2]["reason"] == "invalid_input"
    assert rejected[2]["detail"] == "missing column 'x', which step 'needs' needs"
    assert rejected[4]["reason"] == "step_error" and "KeyError" in rejected[4]["detail"]


def test_all_rows_rejected_finishes_with_an_empty_dataset(run: Runner, tmp_path: Path) -> None:
    p = Pipeline(
        "none_kept",
        LoadFromDicts(data=rows(9), batch_size=4) >> RejectAll() >> Double(),
    )
    result = run(p)
    assert result.kept == 0 and result.read_dataset() == []
    assert (tmp_path / "out" / "dataset.jsonl").read_text() == ""
    assert ids(result.read_rejected()) == list(range(9))
    assert result.quality["keep_rate"] == 0.0
    assert result.quality["reject_reasons"] == {"not_wanted": 9}
    assert result.quality["status"] == "completed"
    assert_accounted(result, 9)


def test_empty_batches_and_an_empty_generator(run: Runner, tmp_path: Path) -> None:
    class Gappy(GeneratorStep):
        def output_columns(self) -> list[str]:
            return ["id", "x"]

        def generate(self, ctx: StepContext) -> Iterator[list[dict[str, Any]]]:
            yield []
            yield rows(3)
            yield []
            yield [{"id": 3, "x": 3}]
            yield []

    result = run(Pipeline("gappy", Gappy() >> Double(input_batch_size=2)))
    assert ids(result.read_dataset()) == [0, 1, 2, 3]
    assert_accounted(result, 4)

    empty = run(Pipeline("empty", LoadFromDicts(data=[]) >> Nothing()), output=tmp_path / "empty")
    assert empty.kept == 0 and empty.rejected == 0
    assert empty.quality["keep_rate"] is None


def test_generator_only_pipeline(run: Runner, tmp_path: Path) -> None:
    result = run(Pipeline("gen_only", LoadFromDicts(name="load", data=rows(100), batch_size=50)))
    assert ids(result.read_dataset()) == list(range(100))
    assert result.timing["steps"]["load"]["batches"] == 2
    assert result.timing["steps"]["load"]["rows_out"] == 100
    assert result.quality["rows_in"] == 100 and result.quality["keep_rate"] == 1.0


def test_global_step_gets_every_row_at_once(run: Runner) -> None:
    seen: list[int] = []

    class Total(GlobalStep):
        inputs = ("x",)
        outputs = ("total",)

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            seen.append(len(batch))
            total = sum(r["x"] for r in batch)
            return [{**r, "total": total} for r in batch]

    p = Pipeline(
        "global",
        LoadFromDicts(data=rows(23), batch_size=4)
        >> RejectMultiples(of=5, input_batch_size=3)
        >> Total(input_batch_size=2),
    )
    result = run(p)
    survivors = [i for i in range(23) if i % 5]
    assert seen == [len(survivors)]  # one call, with all rows, despite input_batch_size=2
    assert {r["total"] for r in result.read_dataset()} == {sum(survivors)}
    assert_accounted(result, 23)


def test_limit_caps_rows_per_generator(run: Runner) -> None:
    result = run(Pipeline("limited", LoadFromDicts(data=rows(50), batch_size=8) >> Double()),
                 limit=7)
    assert ids(result.read_dataset()) == list(range(7))
    assert result.quality["rows_in"] == 7


def test_steps_see_their_runtime_parameters_run_id_and_storage(run: Runner) -> None:
    from typing import Annotated

    from fastdistill import RuntimeParameter

    seen: dict[str, Any] = {}

    class Looks(Step):
        inputs = ("x",)
        prefix: Annotated[str, RuntimeParameter("prefix")] = "p"

        def load(self, ctx: StepContext) -> None:
            seen["params"] = dict(ctx.params)
            seen["run_id"] = ctx.run_id
            seen["step"] = ctx.step_name
            ctx.storage.write_text("artifacts/looks.txt", "hello")

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            return batch

    p = Pipeline("looks", LoadFromDicts(data=rows(2)) >> Looks(name="looks"))
    result = run(p, params={"looks.prefix": "q"})
    assert seen == {"params": {"prefix": "q"}, "run_id": result.run_id, "step": "looks"}
    assert (Path(result.output) / "artifacts" / "looks.txt").read_text() == "hello"


def test_a_step_that_fails_to_load_fails_the_run_naming_it(run: Runner) -> None:
    class Broken(Step):
        inputs = ("x",)

        def load(self, ctx: StepContext) -> None:
            raise RuntimeError("model file missing")

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            return batch

    p = Pipeline("broken", LoadFromDicts(data=rows(200), batch_size=1) >> Broken(name="broken"))
    with pytest.raises(StepError, match="'broken'.*model file missing"):
        run(p)


# ------------------------------------------------------------------ tasks
class Ask(Task):
    inputs = ("q",)
    outputs = ("answer",)
    llm: LLM

    async def aprocess_row(self, row: dict[str, Any], ctx: StepContext) -> Any:
        gen = await self.llm.agenerate([{"role": "user", "content": row["q"]}])
        ctx.metrics.incr("requests")
        if gen.usage.get("completion_tokens"):
            ctx.metrics.observe("completion_tokens", gen.usage["completion_tokens"])
        if not gen.ok:
            ctx.reject(row, gen.error_kind or Reason.EMPTY_OUTPUT, gen.error or "")
            return None
        return {**row, "answer": gen.text}


def _script(messages: Sequence[dict[str, Any]]) -> Any:
    q = messages[-1]["content"]
    n = int(q.split()[-1])
    if n % 7 == 3:
        return Generation(text=None, error_kind="provider_error", error="HTTP 503")
    if n % 7 == 5:
        raise ConnectionError("connection reset")
    return f"answer {n}"


def test_task_with_scripted_llm_rejects_only_failed_rows(run: Runner) -> None:
    n = 40
    llm = ScriptedLLM(script=_script, latency_s=0.005)
    data = [{"id": i, "q": f"question {i}"} for i in range(n)]
    p = Pipeline(
        "task",
        LoadFromDicts(data=data, batch_size=9)
        >> Ask(name="ask", llm=llm, max_in_flight=6, input_batch_size=5)
        >> KeepColumns(columns=["id", "answer"]),
    )
    result = run(p)

    kept = result.read_dataset()
    ok = [i for i in range(n) if i % 7 not in (3, 5)]
    assert ids(kept) == ok
    assert all(r["answer"] == f"answer {r['id']}" for r in kept)
    reasons = {r["id"]: r["_rejection"]["reason"] for r in result.read_rejected()}
    assert reasons == {
        i: ("provider_error" if i % 7 == 3 else "step_error") for i in range(n) if i % 7 in (3, 5)
    }
    assert llm.calls == n
    assert result.quality["provider_errors"] == sum(1 for i in range(n) if i % 7 == 3)
    assert result.quality["llm"]["ask"]["counters"]["requests"] == n - len(
        [i for i in range(n) if i % 7 == 5]
    )
    assert result.timing["steps"]["ask"]["llm_completion_tokens"] > 0
    assert_accounted(result, n)


def test_task_keeps_requests_in_flight_concurrently(run: Runner) -> None:
    state = {"now": 0, "peak": 0}

    class Tracking(ScriptedLLM):
        async def agenerate(self, messages: Any, **overrides: Any) -> Generation:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            try:
                await asyncio.sleep(0.02)
                return Generation(text="fine")
            finally:
                state["now"] -= 1

    data = [{"id": i, "q": f"q {i}"} for i in range(48)]
    p = Pipeline(
        "inflight",
        LoadFromDicts(data=data, batch_size=48) >> Ask(llm=Tracking(), max_in_flight=8,
                                                       input_batch_size=100),
    )
    result = run(p)
    assert result.kept == 48
    # many requests overlap, but never more than max_in_flight
    assert 4 <= state["peak"] <= 8


def test_slow_request_holds_back_neither_its_batch_nor_the_next(run: Runner) -> None:
    order: list[int] = []

    class OneSlow(ScriptedLLM):
        async def agenerate(self, messages: Any, **overrides: Any) -> Generation:
            n = int(messages[-1]["content"].split()[-1])
            await asyncio.sleep(0.3 if n == 1 else 0.002)
            order.append(n)
            return Generation(text=f"a{n}")

    data = [{"id": i, "q": f"q {i}"} for i in range(30)]
    p = Pipeline(
        "one-slow",
        LoadFromDicts(data=data, batch_size=5) >> Ask(llm=OneSlow(), max_in_flight=3,
                                                      input_batch_size=5),
    )
    result = run(p)
    assert result.kept == 30 and sorted(order) == list(range(30))
    # while row 1 waits, the two other request slots go through every later row, also
    # those of later input batches
    assert order[-1] == 1


def test_task_reads_ahead_a_bounded_number_of_rows(run: Runner) -> None:
    made = {"rows": 0}
    lead: list[int] = []

    class Counted(GeneratorStep):
        def output_columns(self) -> list[str]:
            return ["id", "q"]

        def generate(self, ctx: StepContext) -> Iterator[list[dict[str, Any]]]:
            for b in range(40):
                made["rows"] += 10
                yield [{"id": i, "q": f"q {i}"} for i in range(b * 10, b * 10 + 10)]

    class Lead(ScriptedLLM):
        async def agenerate(self, messages: Any, **overrides: Any) -> Generation:
            lead.append(made["rows"] - int(messages[-1]["content"].split()[-1]))
            await asyncio.sleep(0.001)
            return Generation(text="ok")

    p = Pipeline("read-ahead", Counted() >> Ask(llm=Lead(), max_in_flight=4, input_batch_size=10))
    result = run(p)
    assert result.kept == 400
    # rows made but not yet asked: the transport's 8 batches, the one being fetched, the rows
    # waiting for a request slot (fewer than the 4 slots plus one batch) and the generator's
    # batch in hand; never the whole input
    assert max(lead) <= (8 + 1 + 1 + 1) * 10 + 4


def test_task_row_that_returns_none_without_a_reason_is_not_lost(run: Runner) -> None:
    class Forgetful(Task):
        inputs = ("x",)

        async def aprocess_row(self, row: dict[str, Any], ctx: StepContext) -> Any:
            return None if row["x"] == 2 else row

    p = Pipeline("forgetful", LoadFromDicts(data=rows(5)) >> Forgetful(input_batch_size=2))
    result = run(p)
    assert ids(result.read_dataset()) == [0, 1, 3, 4]
    (lost,) = result.read_rejected()
    assert lost["id"] == 2 and lost["_rejection"]["reason"] == "step_error"
    assert_accounted(result, 5)


# ------------------------------------------------------------------ isolation, cancel
class Slow(Step):
    inputs = ("x",)
    delay: float = 0.01

    def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
        time.sleep(self.delay)
        return batch


def test_two_pipelines_run_concurrently_without_seeing_each_other(
    core_registry: Registry, tmp_path: Path, guarded: Runner
) -> None:
    results: dict[str, RunResult] = {}
    errors: list[BaseException] = []

    def go(tag: str, n: int) -> None:
        try:
            data = [{"id": i, "x": i, "tag": tag} for i in range(n)]
            p = Pipeline(tag, LoadFromDicts(data=data, batch_size=5)
                         >> Slow(input_batch_size=5) >> RejectMultiples(of=4))
            results[tag] = guarded(p, output=str(tmp_path / tag), registry=core_registry)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(t, n)) for t, n in (("one", 40), ("two", 55))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for tag, n in (("one", 40), ("two", 55)):
        res = results[tag]
        kept, rejected = res.read_dataset(), res.read_rejected()
        assert {r["tag"] for r in kept + rejected} == {tag}
        assert ids(kept) == [i for i in range(n) if i % 4]
        assert_accounted(res, n)
        assert res.quality["pipeline"] == tag
    assert results["one"].run_id != results["two"].run_id


def test_cancel_from_another_thread_keeps_partial_results(run: Runner, tmp_path: Path) -> None:
    n = 2000
    progressed = threading.Event()
    processed = Counter[str]()

    class Watched(Slow):
        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            out = super().process(batch, ctx)
            processed["rows"] += len(batch)
            if processed["rows"] >= 30:
                progressed.set()
            return out

    cancel = threading.Event()

    def canceller() -> None:
        progressed.wait(30)
        cancel.set()

    threading.Thread(target=canceller, daemon=True).start()
    p = Pipeline("cancel", LoadFromDicts(data=rows(n), batch_size=10)
                 >> Watched(delay=0.02, input_batch_size=10))
    t0 = time.perf_counter()
    result = run(p, cancel=cancel)
    assert time.perf_counter() - t0 < 20  # stopped well before the 4 s a full run takes
    assert result.cancelled is True
    kept = result.read_dataset()
    assert 30 <= len(kept) < n
    assert ids(kept) == list(range(len(kept)))  # what was finished is written, in order
    out = tmp_path / "out"
    assert (out / "dataset.jsonl").exists() and (out / "quality_report.json").exists()
    assert result.quality["status"] == "cancelled"
    assert not (out / ".spool").exists()


def test_filesystem_transport_gives_the_same_output_as_memory(
    core_registry: Registry, tmp_path: Path, guarded: Runner
) -> None:
    def build() -> Pipeline:
        return Pipeline(
            "same",
            LoadFromDicts(data=rows(45), batch_size=4)
            >> [Double(name="a", input_batch_size=3), RejectMultiples(name="b", of=4)]
            >> Sum(name="sum", input_batch_size=7),
        )

    mem = guarded(build(), output=str(tmp_path / "mem"), registry=core_registry)
    fs = guarded(build(), output=str(tmp_path / "fs"), registry=core_registry,
                     transport="filesystem")
    assert fs.read_dataset() == mem.read_dataset()
    assert fs.read_rejected() == mem.read_rejected()
    assert len(mem.read_dataset()) == len([i for i in range(45) if i % 4])


def test_components_are_chosen_by_registered_name(
    core_registry: Registry, tmp_path: Path, guarded: Runner
) -> None:
    puts = Counter[str]()
    assigned: list[tuple[str, int]] = []
    devices: dict[str, DeviceAssignment] = {}
    engines: list[str] = []

    class CountingTransport(MemoryTransport):
        def put(self, item: Any, timeout: float | None = None) -> None:
            puts["n"] += 1
            super().put(item, timeout=timeout)

    class FakeDevices:
        def __init__(self, prefix: str = "dev") -> None:
            self.prefix = prefix

        def assign(self, step_name: str, replica: int, *, needs_device: bool) -> DeviceAssignment:
            assigned.append((step_name, replica))
            return DeviceAssignment(kind="fake", devices=(f"{self.prefix}{len(assigned)}",))

        def release(self, step_name: str, replica: int) -> None:
            pass

    class RecordingEngine(LocalEngine):
        def run(self, plan: Any) -> Any:
            engines.append(plan.run_id)
            return super().run(plan)

    class SeesDevice(Step):
        inputs = ("x",)

        def load(self, ctx: StepContext) -> None:
            devices[ctx.step_name] = ctx.device

        def process(self, batch: list[dict[str, Any]], ctx: StepContext) -> Any:
            return batch

    class Custom:
        @hookimpl
        def register_transports(self, register: Any) -> None:
            register(CountingTransport, name="counting")

        @hookimpl
        def register_placements(self, register: Any) -> None:
            register(FakeDevices, name="fake_devices")

        @hookimpl
        def register_engines(self, register: Any) -> None:
            register(RecordingEngine, name="recording")

    core_registry.add_plugin(Custom(), name="custom")
    p = Pipeline("custom", LoadFromDicts(data=rows(10), batch_size=2) >> SeesDevice(name="sees"))
    result = guarded(
        p, output=str(tmp_path / "out"), registry=core_registry, engine="recording",
        transport="counting", placement="fake_devices", placement_options={"prefix": "gpu"},
    )
    assert engines == [result.run_id]
    assert puts["n"] >= 5  # the batches went through the chosen transport
    assert [s for s, _ in assigned] == ["load_from_dicts", "sees"]
    assert devices["sees"].kind == "fake" and devices["sees"].devices == ("gpu2",)
    assert result.kept == 10


# ------------------------------------------------------------------ reports
def test_reports_are_written_for_every_run(run: Runner, tmp_path: Path) -> None:
    import json

    data = [{"id": i, "x": i, "sample_id": f"s{i:03d}"} for i in range(30)]
    p = Pipeline(
        "reports",
        LoadFromDicts(name="load", data=data, batch_size=8)
        >> Double(name="double", input_batch_size=5)
        >> RejectMultiples(name="gate", of=3, input_batch_size=6),
    )
    result = run(p)
    out = tmp_path / "out"
    assert sorted(f.name for f in (out / "manifests").iterdir()) == [
        "double.json", "gate.json", "load.json"
    ]

    gate = json.loads((out / "manifests" / "gate.json").read_text())
    expected_keys = {"run_id", "stage", "count", "columns", "field_hash", "min_sample_id",
                     "max_sample_id", "step_signature", "schema_version"}
    assert expected_keys <= set(gate)
    kept_sids = sorted(f"s{i:03d}" for i in range(30) if i % 3)
    assert gate["run_id"] == result.run_id
    assert gate["stage"] == "gate"
    assert gate["count"] == 20
    assert gate["columns"] == ["a", "b", "id", "sample_id", "x"]
    assert gate["min_sample_id"] == kept_sids[0] and gate["max_sample_id"] == kept_sids[-1]
    assert isinstance(gate["schema_version"], int)
    load = json.loads((out / "manifests" / "load.json").read_text())
    assert load["count"] == 30 and load["columns"] == ["id", "sample_id", "x"]
    assert (load["min_sample_id"], load["max_sample_id"]) == ("s000", "s029")
    # different columns, different field hash; different steps, different signatures
    assert load["field_hash"] != gate["field_hash"]
    sigs = {json.loads((out / "manifests" / f).read_text())["step_signature"]
            for f in ("load.json", "double.json", "gate.json")}
    assert len(sigs) == 3 and all(isinstance(s, str) and s for s in sigs)

    quality = json.loads((out / "quality_report.json").read_text())
    assert quality == result.quality
    assert quality["run_id"] == result.run_id
    assert (quality["kept"], quality["rejected"]) == (20, 10)
    assert quality["keep_rate"] == pytest.approx(20 / 30)
    assert quality["reject_reasons"] == {"rule_failed": 10}

    timing = json.loads((out / "timing_report.json").read_text())
    assert timing == result.timing
    assert timing["wall_s"] > 0
    assert set(timing["steps"]) == {"load", "double", "gate"}
    for name, st in timing["steps"].items():
        lat = st["batch_latency_s"]
        assert lat["p50"] is not None and lat["p50"] <= lat["p90"] <= lat["p95"], name
        assert st["rows_per_s"] is None or st["rows_per_s"] > 0
        assert st["queue_wait_s"] >= 0
    assert timing["steps"]["gate"]["rows_out"] == 20
    assert timing["steps"]["double"]["batches"] == 6
    assert (out / "pipeline.yaml").exists()


def test_step_signature_changes_with_parameters_and_propagates_downstream(
    run: Runner, tmp_path: Path
) -> None:
    import json

    def sigs(of: int, output: Path) -> dict[str, str]:
        p = Pipeline("sig", LoadFromDicts(name="load", data=rows(5)) >> RejectMultiples(
            name="gate", of=of) >> Double(name="after"))
        run(p, output=str(output))
        return {n: json.loads((output / "manifests" / f"{n}.json").read_text())["step_signature"]
                for n in ("load", "gate", "after")}

    first = sigs(3, tmp_path / "one")
    again = sigs(3, tmp_path / "two")
    changed = sigs(4, tmp_path / "three")
    assert first == again  # stable across runs
    assert changed["load"] == first["load"]
    assert changed["gate"] != first["gate"] and changed["after"] != first["after"]
