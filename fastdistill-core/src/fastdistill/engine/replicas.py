"""Step replicas: several copies of one step working on different batches.

``replica_mode="thread"`` runs each copy in a thread of this process (I/O-bound steps);
``"process"`` runs each copy in a child process started with ``spawn`` (CPU-bound steps the GIL
would serialise).  Each replica has its own copy of the step, so per-instance state is never
shared; steps that need all rows with one key in one place declare :meth:`Step.partition_key`
and the engine routes those rows to the same replica (this keeps exact dedup correct).

A child process gets its device assignment's environment at its own start: the parent's
environment is never modified.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import queue
import threading
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastdistill.context import StepContext, StepMetrics
from fastdistill.rows import Rejection, Row, row_failure
from fastdistill.step import Step


@dataclass
class ChildSpec:
    """What a child process needs to rebuild its replica."""

    step_bytes: bytes
    run_id: str
    step_name: str
    storage_url: str
    base_dir: str
    limit: int | None
    replica: int
    env: dict[str, str]
    params: dict[str, Any]
    restore: list[Row] = field(default_factory=list)


def _child_main(conn: Any, spec: ChildSpec) -> None:  # pragma: no cover - runs in a child
    """Body of a replica process: load the step, then process batches until told to stop."""
    # this runs in the spawned child: the device assignment's environment is applied at the
    # worker boundary, never in the parent process
    os.environ.update(spec.env)
    from fastdistill.storage import StorageBackend

    step = pickle.loads(spec.step_bytes)
    ctx = StepContext(
        run_id=spec.run_id,
        step_name=spec.step_name,
        storage=StorageBackend(spec.storage_url),
        params=spec.params,
        base_dir=Path(spec.base_dir),
        limit=spec.limit,
        replica=spec.replica,
    )
    try:
        step.load(ctx)
        if spec.restore:
            step.restore_state(spec.restore, ctx)
    except BaseException as exc:
        conn.send(("load_error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return
    conn.send(("ready", None, None))
    try:
        while True:
            msg = conn.recv()
            if msg is None:
                break
            ctx.metrics = StepMetrics()
            kept: list[Row] = []
            try:
                kept = list(step.process(msg, ctx))
            except Exception:
                ctx.drain_rejections()
                for row in msg:
                    try:
                        kept.extend(step.process([row], ctx))
                    except Exception as exc:
                        ctx.reject(row, *row_failure(exc, row, step, spec.step_name))
            rejections = [(r, j.to_dict()) for r, j in ctx.drain_rejections()]
            conn.send(("ok", kept, rejections, ctx.metrics.counters(), ctx.metrics.observations()))
    finally:
        step.unload()
        conn.close()


class ProcessReplica:
    """A step copy in a child process; :meth:`process` has the signature of ``Step.process``."""

    def __init__(
        self, step: Any, ctx: StepContext, env: dict[str, str], restore: list[Row] | None = None
    ) -> None:
        mp = multiprocessing.get_context("spawn")
        self._conn, child = mp.Pipe()
        spec = ChildSpec(
            step_bytes=pickle.dumps(step),
            run_id=ctx.run_id,
            step_name=ctx.step_name,
            storage_url=ctx.storage.url,
            base_dir=str(ctx.base_dir),
            limit=ctx.limit,
            replica=ctx.replica,
            env=dict(env),
            params=dict(ctx.params),
            restore=list(restore or []),
        )
        self.process_handle = mp.Process(
            target=_child_main, args=(child, spec), daemon=True,
            name=f"fastdistill-{ctx.step_name}-{ctx.replica}",
        )
        self.process_handle.start()
        child.close()
        status, detail, tb = self._conn.recv()
        if status != "ready":
            self.close()
            raise RuntimeError(f"replica {ctx.replica} of step {ctx.step_name!r} failed to load: "
                               f"{detail}\n{tb}")

    def process(self, rows: list[Row], ctx: StepContext) -> list[Row]:
        """Send a batch to the child; rejections and metrics come back into ``ctx``."""
        self._conn.send(rows)
        try:
            _, kept, rejections, counters, observations = self._conn.recv()
        except EOFError as exc:
            raise RuntimeError(f"replica process of step {ctx.step_name!r} died") from exc
        for row, rej in rejections:
            r = Rejection(**rej)
            ctx.reject(row, r.reason, r.detail)
        for name, n in counters.items():
            if not name.startswith("rejected."):
                ctx.metrics.incr(name, n)
        for name, values in observations.items():
            for v in values:
                ctx.metrics.observe(name, v)
        out: list[Row] = kept
        return out

    def close(self) -> None:
        """Stop the child (waits briefly, then terminates it)."""
        with contextlib.suppress(OSError, BrokenPipeError):
            self._conn.send(None)
        self.process_handle.join(timeout=10)
        if self.process_handle.is_alive():
            self.process_handle.terminate()
            self.process_handle.join(timeout=5)
        self._conn.close()


def _lane_context(worker: Any, i: int) -> StepContext:
    base = worker.ctx
    device = worker.plan.placement.assign(
        worker.name, i, needs_device=bool(getattr(worker.step, "needs_device", False))
    )
    return replace(base, replica=i, device=device, metrics=base.metrics)


def run_replicated(worker: Any) -> None:
    """Run ``worker``'s step as ``step.replicas`` copies fed from one dispatcher (the caller)."""
    step = worker.step
    n = step.replicas
    plan = worker.plan
    has_partition = type(step).partition_key is not Step.partition_key
    replay_rows = worker.replay.state_rows()

    def lane_of(row: Row, turn: int) -> int:
        if has_partition:
            key = step.partition_key(row)
            if key is not None:
                return int(hashlib.sha256(str(key).encode()).hexdigest()[:8], 16) % n
        return turn % n

    contexts = [_lane_context(worker, i) for i in range(n)]
    runners: list[Any] = []
    try:
        for i in range(n):
            copy = step.model_copy(deep=True)
            mine = [r for j, r in enumerate(replay_rows) if lane_of(r, j) == i] if has_partition else []
            if step.replica_mode == "process":
                env = dict(contexts[i].device.env)
                runners.append(ProcessReplica(copy, contexts[i], env, restore=mine))
            else:
                copy.load(contexts[i])
                if mine:
                    copy.restore_state(mine, contexts[i])
                runners.append(copy)
        _dispatch(worker, runners, contexts, lane_of)
    finally:
        for runner in runners:
            if isinstance(runner, ProcessReplica):
                runner.close()
            else:
                runner.unload()
        for i in range(n):
            plan.placement.release(worker.name, i)


def _dispatch(worker: Any, runners: list[Any], contexts: list[StepContext], lane_of: Any) -> None:
    n = len(runners)
    plan = worker.plan
    lanes: list[queue.Queue[list[Row] | None]] = [queue.Queue(maxsize=2) for _ in range(n)]
    errors: list[BaseException] = []

    def lane(i: int) -> None:
        while True:
            batch = lanes[i].get()
            if batch is None:
                return
            if errors or plan.cancel.is_set():
                continue
            try:
                worker._send(*worker._process_batch(batch, runners[i], contexts[i]))
            except BaseException as exc:  # a dead replica process: stop the run, report it
                errors.append(exc)
                plan.cancel.set()

    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()

    def put(i: int, batch: list[Row]) -> None:
        while not plan.cancel.is_set():
            try:
                lanes[i].put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    size = worker.step.input_batch_size
    turn = 0
    buffers: list[list[Row]] = [[] for _ in range(n)]
    try:
        for rows, removed in worker._inputs():
            if removed:
                worker._send([], removed)
            for row in rows:
                i = lane_of(row, turn)
                buffers[i].append(row)
                if len(buffers[i]) >= size:
                    put(i, buffers[i])
                    buffers[i] = []
                    turn += 1
        for i, buf in enumerate(buffers):
            if buf:
                put(i, buf)
    finally:
        for q in lanes:
            while True:
                try:
                    q.put(None, timeout=0.1)
                    break
                except queue.Full:
                    if not any(t.is_alive() for t in threads):
                        break
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
