"""Step workers of the local engine: one thread per step, batches through bounded transports.

Every batch travels as an :class:`Envelope` carrying the rows and the ids of rows removed
upstream, so a step that merges branches (``[b, c] >> d``) aligns rows by row id, never by
arrival order.  Each worker checks that every input row came out kept or rejected; a row a step
lost without a reason is rejected with ``step_error`` rather than dropped.
"""

from __future__ import annotations

import queue
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any

from fastdistill.context import StepContext
from fastdistill.engine.checkpoint import Replay, StepCheckpoint
from fastdistill.engine.snapshot import Snapshot
from fastdistill.engine.collect import RejectedSink, StepStats
from fastdistill.engine.plan import Event, ExecutionPlan
from fastdistill.rows import ROW_ID, Reason, Rejection, Row, row_failure
from fastdistill.step import GeneratorStep, GlobalStep, Step, Task


@dataclass
class Envelope:
    """A batch in flight: rows from ``source`` plus ids of rows removed upstream."""

    source: str
    rows: list[Row] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    end: bool = False


class Merger:
    """Joins rows of several upstream branches by row id."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.pending: dict[str, dict[str, Row | None]] = {}

    def add(self, env: Envelope) -> tuple[list[Row], list[str]]:
        """Feed one envelope; return rows complete in every branch and ids removed by any."""
        ready: list[Row] = []
        gone: list[str] = []
        items: list[tuple[str, Row | None]] = [(r[ROW_ID], r) for r in env.rows]
        items += [(rid, None) for rid in env.removed]
        for rid, row in items:
            slot = self.pending.setdefault(rid, {})
            slot[env.source] = row
            if len(slot) == len(self.sources):
                del self.pending[rid]
                parts = [slot[s] for s in self.sources]
                if any(p is None for p in parts):
                    gone.append(rid)
                else:
                    merged: Row = {}
                    for p in parts:
                        merged.update(p or {})
                    ready.append(merged)
        return ready, gone


_ROW_ID_OF = itemgetter(ROW_ID)


def _same_ids(kept: list[Row], batch: list[Row]) -> bool:
    """Whether ``kept`` holds exactly the rows of ``batch``, in order, by row id (C loops)."""
    if len(kept) != len(batch):
        return False
    try:
        return list(map(_ROW_ID_OF, kept)) == list(map(_ROW_ID_OF, batch))
    except (KeyError, TypeError):  # a row without an id: the slow path sorts it out
        return False


class StepWorker:
    """Runs one step: reads envelopes, re-chunks to the step's batch size, forwards results."""

    def __init__(
        self,
        plan: ExecutionPlan,
        name: str,
        ctx: StepContext,
        inbox: Any,
        outboxes: list[Any],
        rejected: RejectedSink,
        stats: StepStats,
        on_leaf: Callable[[list[Row]], None] | None,
        checkpoint: StepCheckpoint | None = None,
    ) -> None:
        self.plan = plan
        self.name = name
        self.step: Step = plan.pipeline.steps[name]
        self.ctx = ctx
        self.inbox = inbox
        self.outboxes = outboxes
        self.rejected = rejected
        self.stats = stats
        self.on_leaf = on_leaf
        self.upstream = plan.pipeline.upstream(name)
        self.error: BaseException | None = None
        self.checkpoint = checkpoint
        #: a deterministic stateless step is recomputed on resume instead of checkpointed
        self.records = checkpoint is not None and not (
            getattr(self.step, "deterministic", False)
            and not getattr(self.step, "state_columns", list)()
        )
        self.replay = Replay()
        self.completed = False

    # ------------------------------------------------------------ plumbing
    def _send(self, rows: list[Row], removed: list[str]) -> None:
        if self.on_leaf is not None and rows:
            self.on_leaf(rows)
        for i, box in enumerate(self.outboxes):
            payload = rows if i == 0 else [dict(r) for r in rows]
            if payload or removed:
                self._put(box, Envelope(self.name, payload, list(removed)))

    def _put(self, box: Any, env: Envelope) -> None:
        while True:
            try:
                box.put(env, timeout=0.1)
                return
            except queue.Full:
                if self.plan.cancel.is_set():
                    return

    def _finish(self) -> None:
        for box in self.outboxes:
            self._put(box, Envelope(self.name, end=True))

    def _receive(self) -> Any:
        while True:
            t0 = time.perf_counter()
            try:
                env = self.inbox.get(timeout=0.1)
            except queue.Empty:
                self.stats.queue_wait_s += time.perf_counter() - t0
                if self.plan.cancel.is_set():
                    return None
                continue
            self.stats.queue_wait_s += time.perf_counter() - t0
            return env

    def _account(
        self,
        batch: list[Row],
        kept: list[Row],
        t0: float,
        replayed: set[str] | None = None,
        record: bool = True,
        ctx: StepContext | None = None,
        sources: Snapshot | dict[str, Row] | None = None,
        rejections: list[tuple[Row, Rejection]] | None = None,
    ) -> tuple[list[Row], list[str]]:
        """Record rejections; reject rows that vanished without a reason; checkpoint the
        batch's new outcomes; update stats.  ``sources``: the input rows as they were before
        the step ran (a step may change its input rows in place)."""
        if rejections is None:
            rejections = (ctx or self.ctx).drain_rejections()
        if rejections or not _same_ids(kept, batch):
            kept, rejections = self._reconcile(batch, kept, rejections)
        if self.checkpoint is not None and record:
            src = sources if sources is not None else {r[ROW_ID]: r for r in batch if ROW_ID in r}
            if replayed:
                self.checkpoint.record(
                    [r for r in kept if r.get(ROW_ID) not in replayed],
                    [(r, j) for r, j in rejections if r.get(ROW_ID) not in replayed],
                    src,
                )
            else:
                self.checkpoint.record(kept, rejections, src)
            self.checkpoint.maybe_commit()
        fresh = self.rejected.reject(rejections) if rejections else rejections
        dt = time.perf_counter() - t0
        with self.stats.lock:
            self.stats.batches += 1
            self.stats.batch_latencies.append(dt)
            self.stats.busy_s += dt
            self.stats.rejected += len(fresh)
        self.stats.observe_output(kept)
        self.plan.emit(Event("progress", self.name, len(batch), len(kept), len(fresh)))
        return kept, [rid for r, _ in rejections if (rid := r.get(ROW_ID)) is not None]

    def _reconcile(
        self, batch: list[Row], kept: list[Row], rejections: list[tuple[Row, Rejection]]
    ) -> tuple[list[Row], list[tuple[Row, Rejection]]]:
        """The slow path of :meth:`_account`: rows dropped, repeated, rejected or returned
        untracked.  Every input row ends up kept once or rejected once."""
        # a returned row that is not one of this batch's input rows (no row id, an id of its
        # own, not a row at all) cannot be traced to an input row: it is not kept, and an input
        # row it stood in for is rejected below (never both kept and rejected)
        batch_ids = {r.get(ROW_ID) for r in batch}
        tracked = [r for r in kept if isinstance(r, dict) and r.get(ROW_ID) in batch_ids]
        untracked = len(kept) - len(tracked)
        kept = tracked
        rej_ids = {r.get(ROW_ID) for r, _ in rejections}
        rejections = list(rejections)
        counts = Counter(r[ROW_ID] for r in kept)
        repeated = {rid: n for rid, n in counts.items() if n > 1 and rid not in rej_ids}
        if repeated:
            # one input row came back several times: which copy is right is unknowable, so
            # the input row is rejected
            for r in batch:
                rid = r.get(ROW_ID)
                if rid in repeated:
                    rejections.append((r, Rejection(
                        Reason.STEP_ERROR.value, self.name,
                        f"the step returned {repeated[rid]} rows for this one input row; return "
                        "each input row at most once")))
                    rej_ids.add(rid)
            kept = [r for r in kept if r[ROW_ID] not in repeated]
        out_ids = {r.get(ROW_ID) for r in kept}
        lost = [r for r in batch if r.get(ROW_ID) not in out_ids and r.get(ROW_ID) not in rej_ids]
        detail = "the step returned no row and no reason"
        if untracked:
            detail = (f"the step returned {untracked} row(s) that are not its input rows "
                      f"(without the engine's {ROW_ID!r} column, or with another one); build "
                      "output rows from the input row, e.g. {**row, ...}")
            if not lost:  # every input row is accounted for: the extra rows are the step's own
                self.ctx.logger.warning(
                    "step %s returned %d row(s) besides its input rows (without the engine's "
                    "%r column, with an id of their own, or not rows at all); they are not "
                    "kept (output rows are built from input rows, e.g. {**row, ...})",
                    self.name, untracked, ROW_ID)
                self.ctx.metrics.incr("untracked_rows", untracked)
        rejections = rejections + [
            (r, Rejection(Reason.STEP_ERROR.value, self.name, detail)) for r in lost
        ]
        # a returned row that was also rejected counts as rejected
        if rej_ids:
            kept = [r for r in kept if r.get(ROW_ID) not in rej_ids]
        return kept, rejections

    # ------------------------------------------------------------ processing
    def _replayed(self, row: Row, ctx: StepContext | None = None) -> list[Row] | None:
        """The recorded outcome of ``row`` from an earlier attempt (rejections re-recorded)."""
        rid = row.get(ROW_ID)
        if rid is None or not self.replay.has(rid):
            return None
        kept, rejection = self.replay.outcome(rid, row)
        if rejection is not None:
            (ctx or self.ctx).reject(rejection[0], rejection[1].reason, rejection[1].detail)
        return kept

    def _process_batch(
        self, batch: list[Row], runner: Any = None, ctx: StepContext | None = None
    ) -> tuple[list[Row], list[str]]:
        """Replay what earlier attempts did, process the rest with ``runner`` (the step, or a
        replica), account for every row."""
        runner = runner or self.step
        ctx = ctx or self.ctx
        t0 = time.perf_counter()
        kept: list[Row] = []
        new: list[Row] = []
        replayed: set[str] = set()
        if self.replay:
            for row in batch:
                outcome = self._replayed(row, ctx)
                if outcome is None:
                    new.append(row)
                else:
                    replayed.add(row[ROW_ID])
                    kept.extend(outcome)
        else:
            new = list(batch)
        sources: Snapshot | None = None
        if new or not batch:  # a global step is called even with no rows (to write its files)
            pending = ctx.drain_rejections()
            if self.records:
                # the rows as they came in: a step may add or change columns in place
                sources = Snapshot(new)
            try:
                kept.extend(runner.process(new, ctx))
            except Exception:
                ctx.drain_rejections()
                kept.extend(self._isolate(new, runner, ctx))
            for row, rej in pending:
                ctx.reject(row, rej.reason, rej.detail)
        return self._account(batch, kept, t0, replayed, record=self.records, ctx=ctx,
                             sources=sources)

    def _isolate(self, batch: list[Row], runner: Any, ctx: StepContext) -> list[Row]:
        """A batch raised: retry row by row so only the failing rows are rejected."""
        kept: list[Row] = []
        for row in batch:
            try:
                kept.extend(runner.process([row], ctx))
            except Exception as exc:
                reason, detail = row_failure(exc, row, self.step, self.name)
                if reason is Reason.STEP_ERROR:  # a missing declared column is the row's fault
                    ctx.logger.warning("step %s failed on %s: %s", self.name,
                                       ctx.row_label(row), detail)
                ctx.reject(row, reason, detail)
        return kept

    def run(self) -> None:
        """Thread body."""
        try:
            if self.checkpoint is not None:
                self.replay = self.checkpoint.load()
            replicated = (
                self.step.replicas > 1
                and not isinstance(self.step, (GeneratorStep, GlobalStep, Task))
            )
            if not replicated:
                self.step.load(self.ctx)
                if self.replay.kept and not isinstance(self.step, GeneratorStep):
                    self.step.restore_state(self.replay.state_rows(), self.ctx)
            try:
                if replicated:
                    from fastdistill.engine.replicas import run_replicated

                    run_replicated(self)
                elif isinstance(self.step, GeneratorStep):
                    self._run_generator()
                elif isinstance(self.step, Task):
                    import asyncio  # here: a pipeline without LLM tasks never imports it

                    from fastdistill.engine.task_runner import run_task

                    asyncio.run(run_task(self))
                else:
                    self._run_normal()
                if self.checkpoint is not None:
                    self.checkpoint.commit()
                if not self.plan.cancel.is_set():
                    self.completed = True
                    if self.checkpoint is not None:
                        self.checkpoint.mark_done({"limit": self.plan.limit, "rows_in": self.stats.rows_in})
            finally:
                if not replicated:
                    self.step.unload()
        except BaseException as exc:  # reported by the engine, which cancels the run
            self.error = exc
            if self.checkpoint is not None:  # what was processed before the failure is kept
                try:
                    self.checkpoint.commit()
                except Exception:
                    self.ctx.logger.debug("checkpoint commit failed: %s", traceback.format_exc())
            self.ctx.logger.debug("step %s failed: %s", self.name, traceback.format_exc())
            self.plan.cancel.set()
        finally:
            self.stats.finished = time.perf_counter()
            self._finish()
            self.plan.emit(Event("step_finished", self.name))

    def _replay_generator(self, step: GeneratorStep) -> None:
        """Send the rows an earlier, finished attempt generated, without reading the input."""
        order = sorted(
            set(self.replay.kept) | set(self.replay.rejected),
            key=lambda rid: int(rid.rpartition(":")[2]),
        )
        for start in range(0, len(order), step.batch_size):
            if self.plan.cancel.is_set():
                return
            t0 = time.perf_counter()
            rows: list[Row] = []
            rejections: list[tuple[Row, Rejection]] = []
            for rid in order[start : start + step.batch_size]:
                kept, rejection = self.replay.generated(rid)
                rows.extend(kept)
                if rejection is not None:
                    rejections.append(rejection)
            self._generated(rows, rejections, t0)

    def _generated(self, batch: list[Row], rejections: list[tuple[Row, Rejection]], t0: float) -> None:
        fresh = self.rejected.reject(rejections)
        dt = time.perf_counter() - t0
        with self.stats.lock:
            self.stats.rows_in += len(batch) + len(rejections)
            self.stats.batches += 1
            self.stats.batch_latencies.append(dt)
            self.stats.busy_s += dt
            self.stats.rejected += len(fresh)
        self.stats.observe_output(batch)
        self.plan.emit(Event("progress", self.name, len(batch) + len(fresh), len(batch), len(fresh)))
        self._send(batch, [])

    def _run_generator(self) -> None:
        step = self.step
        assert isinstance(step, GeneratorStep)
        index = 0
        self.stats.mark_start()
        # a deterministic generator (its rows follow from its parameters, e.g. inline data) is
        # not recorded: it generates the same rows with the same ids again
        deterministic = bool(getattr(step, "deterministic", False))
        if (
            not deterministic
            and self.replay.done is not None
            and self.replay.done.get("limit") == self.plan.limit
        ):
            self._replay_generator(step)
            return
        if self.checkpoint is not None and len(self.replay):
            self.checkpoint.clear()  # an unfinished earlier attempt: generate again, cleanly
            self.replay = Replay()
        iterator = iter(step.generate(self.ctx))
        while not self.plan.cancel.is_set():
            t0 = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            batch = list(batch)
            rejections = self.ctx.drain_rejections()
            ids = list(map(f"{self.name}:".__add__, map(str, range(index, index + len(batch)))))
            try:  # C loops; a row that is not a dict fails the batch below, as before
                deque(map(dict.__setitem__, batch, repeat(ROW_ID), ids), maxlen=0)
            except TypeError:
                for row, rid in zip(batch, ids, strict=True):
                    row[ROW_ID] = rid
            index += len(batch)
            for row, _ in rejections:
                row[ROW_ID] = f"{self.name}:{index}"
                index += 1
            if self.checkpoint is not None and not deterministic:
                self.checkpoint.record(batch, rejections)
                self.checkpoint.maybe_commit()
            self._generated(batch, rejections, t0)

    def _inputs(self) -> Any:
        """Yield (rows, removed) from upstream, merged by row id when there are several."""
        merger = Merger(self.upstream) if len(self.upstream) > 1 else None
        ended = 0
        while ended < len(self.upstream):
            env = self._receive()
            if env is None:
                return
            if env.end:
                ended += 1
                continue
            if merger is not None:
                rows, removed = merger.add(env)
            else:
                rows, removed = env.rows, env.removed
            if rows:
                self.stats.mark_start()
                with self.stats.lock:
                    self.stats.rows_in += len(rows)
            yield rows, removed

    def _run_normal(self) -> None:
        size = self.step.input_batch_size
        whole = isinstance(self.step, GlobalStep)
        buffer: list[Row] = []
        for rows, removed in self._inputs():
            if removed:
                self._send([], removed)
            buffer.extend(rows)
            while not whole and len(buffer) >= size and not self.plan.cancel.is_set():
                batch, buffer = buffer[:size], buffer[size:]
                self._send(*self._process_batch(batch))
        if self.plan.cancel.is_set():
            return
        if whole and self.replay and not (
            self.replay.done is not None and all(self.replay.has(r[ROW_ID]) for r in buffer)
        ):
            # a global step sees all rows at once: replay all of them or none
            if self.checkpoint is not None:
                self.checkpoint.clear()
            self.replay = Replay()
        if buffer or (whole and self.stats.rows_in == 0):
            self._send(*self._process_batch(buffer))
