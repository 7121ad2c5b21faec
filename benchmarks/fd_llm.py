"""P2a / P2b on fastdistill: rows -> TextGeneration(ScriptedLLM with a fixed async latency).

  python fd_llm.py --n 2000 --latency 0.05 --in-flight 50 --batch-size 50       # P2a
  python fd_llm.py --n 2000 --latency 0.05 --in-flight 1000 --batch-size 1000   # P2b

Same shape as the peer's ``b2_llm.py``: the loader's ``batch_size`` and the task's
``input_batch_size`` are ``--batch-size``; the task keeps ``--in-flight`` requests going
(``max_in_flight``).  The peer's concurrency is its input batch size, so the ideal is the same
on both sides: ``ceil(n / in_flight) * latency`` seconds, i.e. ``in_flight / latency`` rows/s.
``efficiency_vs_ideal`` = ideal_run_s / run_s (the whole ``run()``, as for the peer);
``steady_rows_per_s`` counts calls over the LLM-active window only (first call -> last answer).
``--thread-cpu`` adds the CPU seconds each thread used (``thread_cpu_s``: the task's event loop
runs in ``fastdistill-gen``, the response cache's writer in ``fastdistill-llm-cache``) and the
process's CPU during ``run()`` (``run_cpu_s``).  ``--floor`` runs no pipeline: the same
requests straight to the scripted model, ``--in-flight`` at a time with ``asyncio.gather`` on
one loop (what asyncio and the model alone cost: the floor under any engine).
"""

from __future__ import annotations

import time

t_imp0 = time.perf_counter()
import argparse  # noqa: E402
import bisect  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Clock, cache_args, emit, make_instructions, scratch_dir  # noqa: E402
from fastdistill import Pipeline  # noqa: E402
from fastdistill.builtins.steps import LoadFromDicts  # noqa: E402
from fastdistill.testing import ScriptedLLM  # noqa: E402
from fastdistill_llms.text_generation import TextGeneration  # noqa: E402

import_s = time.perf_counter() - t_imp0


def llm_stats(starts: list[float], latency: float, t_run0: float) -> dict[str, float | int | None]:
    """Start-up, LLM window, steady rate and max concurrency from the call start times."""
    if not starts:
        return {}
    st = sorted(starts)
    window = st[-1] - st[0] + latency
    inflight = max(i - bisect.bisect_right(st, t - latency) + 1 for i, t in enumerate(st))
    return {
        "startup_s": round(st[0] - t_run0, 4),
        "llm_window_s": round(window, 3),
        "steady_rows_per_s": round(len(st) / window, 1),
        "max_inflight_calls": inflight,
        "llm_end_s": round(st[-1] + latency - t_run0, 3),
    }


def measure_threads(into: dict[str, float]) -> None:
    """Record each thread's CPU time (``time.thread_time()`` as it ends) under its name."""
    run = threading.Thread.run

    def timed(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            into[self.name] = into.get(self.name, 0.0) + time.thread_time()

    threading.Thread.run = timed  # type: ignore[method-assign]  # this benchmark process only


def floor(a: argparse.Namespace) -> None:
    """The same requests without an engine: waves of ``--in-flight`` gathered on one loop."""
    import asyncio

    llm = ScriptedLLM(script=lambda m: "answer:" + str(m[-1]["content"])[:24],
                      latency_s=a.latency)
    asks = [[{"role": "user", "content": r["instruction"]}] for r in make_instructions(a.n)]

    async def waves() -> float:
        cpu0 = time.thread_time()
        for i in range(0, len(asks), a.in_flight):
            await asyncio.gather(*(llm.agenerate(m) for m in asks[i:i + a.in_flight]))
        return time.thread_time() - cpu0

    t0 = time.perf_counter()
    loop_cpu = asyncio.run(waves())
    run_s = time.perf_counter() - t0
    ideal_s = math.ceil(a.n / a.in_flight) * a.latency
    emit({"bench": "P2-floor", "n": a.n, "latency_s": a.latency, "in_flight": a.in_flight,
          "run_s": round(run_s, 3), "ideal_run_s": round(ideal_s, 3),
          "efficiency_vs_ideal": round(ideal_s / run_s, 4) if a.latency else None,
          "loop_cpu_s": round(loop_cpu, 4),
          "loop_cpu_us_per_request": round(loop_cpu / a.n * 1e6, 1), "llm_calls": llm.calls})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--in-flight", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--no-llm-cache", action="store_true",
                    help="run(llm_cache=False) (default: the response cache on, as for a user, "
                         "but in a fresh folder: every run is a first run, all misses)")
    ap.add_argument("--no-checkpoint", action="store_true",
                    help="run(checkpoint=False): no resume data (with --no-llm-cache: the "
                         "peer's configuration, run(use_cache=False))")
    ap.add_argument("--thread-cpu", action="store_true",
                    help="report the CPU time of each thread (thread_cpu_s) and of run()")
    ap.add_argument("--floor", action="store_true",
                    help="no pipeline: the requests straight to the model (see the docstring)")
    a = ap.parse_args()
    if a.floor:
        floor(a)
        return
    thread_cpu: dict[str, float] = {}
    if a.thread_cpu:
        measure_threads(thread_cpu)

    starts: list[float] = []

    def script(messages):  # called after the scripted sleep
        starts.append(time.perf_counter() - a.latency)
        return "answer:" + str(messages[-1]["content"])[:24]

    work = scratch_dir("fd_llm_")
    llm = ScriptedLLM(script=script, latency_s=a.latency)
    pipe = Pipeline(
        "p2-llm",
        LoadFromDicts(name="load", data=make_instructions(a.n), batch_size=a.batch_size)
        >> TextGeneration(name="gen", llm=llm, template="{instruction}",
                          max_in_flight=a.in_flight, input_batch_size=a.batch_size),
    )
    clock = Clock()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    result = pipe.run(os.path.join(work, "out"), on_event=clock, checkpoint=not a.no_checkpoint,
                      **cache_args(a.no_llm_cache, work))
    run_s = time.perf_counter() - t0
    run_cpu_s = time.process_time() - cpu0

    ideal_s = math.ceil(a.n / a.in_flight) * a.latency
    emit({
        "bench": "P2", "n": a.n, "latency_s": a.latency, "in_flight": a.in_flight,
        "batch_size": a.batch_size,
        "import_s": round(import_s, 3),
        "run_s": round(run_s, 3),
        "rows_per_s": round(a.n / run_s, 1),
        "ideal_rows_per_s": round(a.in_flight / a.latency, 1) if a.latency else None,
        "ideal_run_s": round(ideal_s, 3),
        "efficiency_vs_ideal": round(ideal_s / run_s, 4) if a.latency else None,
        "llm_calls": llm.calls,
        **llm_stats(starts, a.latency, t0),
        "rows_out": result.kept,
        "rejected": result.rejected,
        **({"run_cpu_s": round(run_cpu_s, 3),
            "thread_cpu_s": {k: round(v, 4) for k, v in sorted(thread_cpu.items())}}
           if a.thread_cpu else {}),
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
