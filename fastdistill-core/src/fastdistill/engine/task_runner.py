"""The asyncio loop of an LLM task: keeps ``max_in_flight`` requests going continuously.

Rows are admitted as soon as a slot is free (a slow row never holds back the rows behind it).
Finished rows are accounted for in groups: when ``input_batch_size`` rows have finished, or
``FLUSH_S`` after the last group, they are checkpointed (into the step's commit buffer, no
thread hop) and sent downstream by one sender coroutine, in finishing order.

Durability of finished requests: a successful answer is queued for the LLM response cache as
soon as it arrives (its request slot is free at once), and the sender awaits the cache's
``barrier()`` before it sends a group on: a row leaves the step only once its answer is
committed, so the checkpoint may commit it later (group commits).  What the cache does not hold
is committed at once: a rejected row (failures are never cached) is flushed and committed as
soon as it is known, and without a response cache every group is committed as it is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from fastdistill.rows import ROW_ID, Reason, Rejection, Row
from fastdistill.step import Task

if TYPE_CHECKING:
    from fastdistill.engine.workers import StepWorker

#: finished rows wait at most this long before they are accounted for and sent on
FLUSH_S = 0.05


async def run_task(worker: StepWorker) -> None:
    """Run ``worker``'s task over its inputs (the thread's ``asyncio.run`` target)."""
    step = worker.step
    assert isinstance(step, Task)
    ctx = worker.ctx
    plan = worker.plan
    size = max(1, int(step.input_batch_size))
    sem = asyncio.Semaphore(step.max_in_flight)
    finished: list[Row] = []  # input rows whose request is over
    done: list[Row] = []  # their output rows
    running: dict[Any, Row] = {}  # in flight: row id -> input row
    tasks: set[asyncio.Task[None]] = set()
    replayed: set[str] = set()
    outbox: asyncio.Queue[tuple[list[Row], list[str], bool] | None] = asyncio.Queue()
    uncovered = plan.llm_cache is None or not getattr(plan.llm_cache, "enabled", True)
    cache = None if uncovered else plan.llm_cache
    if cache is not None and hasattr(cache, "barrier"):
        ctx.defer_cache_commits = True  # the sender awaits cache.barrier() before each send
    else:
        cache = None
    state = {"t_batch": time.perf_counter(), "last_flush": time.monotonic()}

    def flush(urgent: bool = False) -> None:
        """Account for the finished rows (synchronously, on the loop) and queue their send."""
        state["last_flush"] = time.monotonic()
        rejections = ctx.drain_rejections()
        if running and rejections:
            # a rejection of a row still in flight is accounted with that row, later
            early = [(r, j) for r, j in rejections if r.get(ROW_ID) in running]
            if early:
                rejections = [(r, j) for r, j in rejections if r.get(ROW_ID) not in running]
                held.extend(early)
        rejections = held_back() + rejections
        if not finished and not done and not rejections:
            return
        batch = finished[:]
        kept = done[:]
        finished.clear()
        done.clear()
        result = worker._account(batch, kept, state["t_batch"], replayed, rejections=rejections)
        state["t_batch"] = time.perf_counter()
        outbox.put_nowait((*result, urgent or uncovered or bool(rejections)))

    held: list[tuple[Row, Rejection]] = []

    def held_back() -> list[tuple[Row, Rejection]]:
        ready = [(r, j) for r, j in held if r.get(ROW_ID) not in running]
        if ready:
            held[:] = [(r, j) for r, j in held if r.get(ROW_ID) in running]
        return ready

    def maybe_flush() -> None:
        if len(finished) >= size or time.monotonic() - state["last_flush"] >= FLUSH_S:
            flush()

    async def send(items: list[tuple[list[Row], list[str], bool]]) -> None:
        if cache is not None:
            # every answer in these rows is in the response cache before they count as done
            # (requests queue their answers without waiting for each commit)
            await cache.barrier()
        await asyncio.to_thread(_send_all, worker, items)

    async def sender() -> None:
        while True:
            item = await outbox.get()
            if item is None:
                return
            items = [item]
            while not outbox.empty():  # send what piled up in one hop
                nxt = outbox.get_nowait()
                if nxt is None:
                    await send(items)
                    return
                items.append(nxt)
            await send(items)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            if finished or done:
                maybe_flush()
            if worker.checkpoint is not None and worker.checkpoint.due():
                await asyncio.to_thread(worker.checkpoint.maybe_commit)

    errors: list[BaseException] = []  # engine failures inside a request's task (not the row's)

    async def one(row: Row, source: Row) -> None:
        rid = row.get(ROW_ID)
        out: Row | None = None
        try:
            try:
                try:
                    out = await step.aprocess_row(row, ctx)
                finally:  # a cancelled request is not finished: not accounted (resume asks again)
                    sem.release()
                    running.pop(rid, None)
            except Exception as exc:
                ctx.reject(row, Reason.STEP_ERROR, f"{type(exc).__name__}: {exc}")
            if out is not None:
                done.append(out)
            finished.append(source)  # the input row as it came in (a task may change it in place)
            if ctx._rejected:
                flush(urgent=True)  # a failure is not in the response cache: commit it now
            else:
                maybe_flush()
        except asyncio.CancelledError:
            pass  # the run is being cancelled: this request is simply not finished
        except Exception as exc:  # kept and raised by the runner: an engine bug never vanishes
            errors.append(exc)
        finally:
            tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    send_task = asyncio.create_task(sender())
    tick_task = asyncio.create_task(ticker())
    inputs = worker._inputs()
    try:
        while True:
            item = await asyncio.to_thread(next, inputs, None)
            if item is None:
                break
            rows, removed = item
            if removed:
                outbox.put_nowait(([], list(removed), False))
            replaying = bool(worker.replay)
            for row in rows:
                outcome = worker._replayed(row) if replaying else None
                if outcome is not None:
                    replayed.add(row[ROW_ID])
                    finished.append(row)
                    done.extend(outcome)
                    if len(finished) >= size:
                        flush()
                    continue
                await sem.acquire()
                if plan.cancel.is_set():
                    sem.release()
                    break
                running[row.get(ROW_ID)] = row
                tasks.add(asyncio.create_task(one(row, row.copy())))
            if plan.cancel.is_set():
                break
        while tasks:
            await asyncio.wait(set(tasks), timeout=0.1)
            if plan.cancel.is_set():
                for t in tasks:
                    t.cancel()
        if not plan.cancel.is_set() and running:
            # every request is over: a started row that neither returned nor was rejected
            # vanished; accounting it makes _account reject it (step_error) instead of losing it
            finished.extend(running.values())
            running.clear()
        flush()
        if errors:
            raise errors[0]
    finally:
        tick_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            await tick_task  # retrieved, so a cancelled run prints no "never retrieved" noise
        outbox.put_nowait(None)
        await send_task


def _send_all(worker: StepWorker, items: list[tuple[list[Row], list[str], bool]]) -> None:
    if worker.checkpoint is not None:
        if any(urgent for _, _, urgent in items):
            worker.checkpoint.commit()
        else:
            worker.checkpoint.maybe_commit()
    for rows, removed, _ in items:
        worker._send(rows, removed)
