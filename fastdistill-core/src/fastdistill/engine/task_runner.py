"""The asyncio loop of an LLM task: keeps ``max_in_flight`` requests going continuously.

Up to ``max_in_flight`` request slots (coroutines opened as rows arrive) take the waiting rows
one after another, so a row starts as soon as a slot is free and a slow row never holds back the
rows behind it; no task is created per row.
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
from collections import deque
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
    loop = asyncio.get_running_loop()
    size = max(1, int(step.input_batch_size))
    slots = max(1, int(step.max_in_flight))
    finished: list[Row] = []  # input rows whose request is over
    done: list[Row] = []  # their output rows
    running: dict[Any, Row] = {}  # in flight: row id -> input row
    waiting: deque[Row] = deque()  # admitted rows no request slot has taken yet
    idle: list[asyncio.Future[None]] = []  # request slots with nothing to do
    slot_tasks: set[asyncio.Task[None]] = set()
    replayed: set[str] = set()
    outbox: asyncio.Queue[tuple[list[Row], list[str], bool] | None] = asyncio.Queue()
    uncovered = plan.llm_cache is None or not getattr(plan.llm_cache, "enabled", True)
    cache = None if uncovered else plan.llm_cache
    if cache is not None and hasattr(cache, "barrier"):
        ctx.defer_cache_commits = True  # the sender awaits cache.barrier() before each send
    else:
        cache = None
    state: dict[str, Any] = {
        "t_batch": time.perf_counter(), "last_flush": time.monotonic(), "closing": False,
        "room": None,  # a future the admission loop awaits while enough rows wait
    }

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

    errors: list[BaseException] = []  # engine failures inside a request slot (not the row's)

    async def one(row: Row) -> None:
        """One request; a cancelled request is not finished: not accounted (resume asks again)."""
        rid = row.get(ROW_ID)
        source = row.copy()  # the input row as it came in (a task may change it in place)
        running[rid] = row
        out: Row | None = None
        try:
            try:
                out = await step.aprocess_row(row, ctx)
            finally:
                running.pop(rid, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ctx.reject(row, Reason.STEP_ERROR, f"{type(exc).__name__}: {exc}")
        if out is not None:
            done.append(out)
        finished.append(source)
        if ctx._rejected:
            flush(urgent=True)  # a failure is not in the response cache: commit it now
        else:
            maybe_flush()

    async def request_slot() -> None:
        """Takes waiting rows one after another (no task per row) until the input ends."""
        try:
            while not plan.cancel.is_set():
                if waiting:
                    row = waiting.popleft()
                    room = state["room"]
                    if room is not None and len(waiting) < slots and not room.done():
                        room.set_result(None)
                    await one(row)
                    continue
                if state["closing"]:
                    return
                wake: asyncio.Future[None] = loop.create_future()
                idle.append(wake)
                await wake
        except asyncio.CancelledError:
            pass  # the run is being cancelled: this request is simply not finished
        except Exception as exc:  # kept and raised by the runner: an engine bug never vanishes
            errors.append(exc)
        finally:
            slot_tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    def admit(rows: list[Row]) -> None:
        """Queue rows for the request slots: wake idle slots, open new ones up to the limit."""
        waiting.extend(rows)
        ready = len(waiting)
        while idle and ready > 0:
            wake = idle.pop()
            if not wake.done():
                wake.set_result(None)
                ready -= 1
        while ready > 0 and len(slot_tasks) < slots:
            slot_tasks.add(asyncio.create_task(request_slot()))
            ready -= 1

    def wake_all() -> None:
        while idle:
            wake = idle.pop()
            if not wake.done():
                wake.set_result(None)

    send_task = asyncio.create_task(sender())
    tick_task = asyncio.create_task(ticker())
    inputs = worker._inputs()
    try:
        while True:
            # back-pressure: the next input batch is fetched once fewer rows wait than there
            # are request slots (memory: at most one batch plus the slots' rows)
            while len(waiting) >= slots and not plan.cancel.is_set():
                state["room"] = room = loop.create_future()
                await asyncio.wait([room], timeout=0.1)  # woken by a slot, or checks cancel
                state["room"] = None
            if plan.cancel.is_set():
                break
            item = await asyncio.to_thread(next, inputs, None)
            if item is None:
                break
            rows, removed = item
            if removed:
                outbox.put_nowait(([], list(removed), False))
            if worker.replay:
                fresh: list[Row] = []
                for row in rows:
                    outcome = worker._replayed(row)
                    if outcome is None:
                        fresh.append(row)
                        continue
                    replayed.add(row[ROW_ID])
                    finished.append(row)
                    done.extend(outcome)
                    if len(finished) >= size:
                        flush()
                rows = fresh
            if rows and not plan.cancel.is_set():
                admit(rows)
        state["closing"] = True
        wake_all()
        while slot_tasks:
            await asyncio.wait(set(slot_tasks), timeout=0.1)
            if plan.cancel.is_set():
                for t in slot_tasks:
                    t.cancel()
                wake_all()
        if not plan.cancel.is_set() and running:
            # every request is over: a started row that neither returned nor was rejected
            # vanished; accounting it makes _account reject it (step_error) instead of losing it
            finished.extend(running.values())
            running.clear()
        flush()
        if errors:
            raise errors[0]
    finally:
        for t in slot_tasks:
            t.cancel()
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
