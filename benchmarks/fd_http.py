"""P2-HTTP: TextGeneration(openai_compat) against ``http_fixture.py`` on 127.0.0.1.

  python fd_http.py --n 2000 --delay 0.05 --in-flight 50

Starts the fixture server (a separate process, so it does not share this GIL), then runs
LoadFromDicts(n) -> TextGeneration(OpenAICompatLLM) with ``max_in_flight`` = the model's
``max_concurrency`` = ``--in-flight``.  Ideal: ``in_flight / delay`` rows/s (1,000 rows/s for
50 in flight at 50 ms); the difference is client + engine overhead (HTTP client, JSON, the task).
"""

from __future__ import annotations

import time

t_imp0 = time.perf_counter()
import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import Clock, cache_args, emit, make_instructions, scratch_dir  # noqa: E402
from fastdistill import Pipeline  # noqa: E402
from fastdistill.builtins.steps import LoadFromDicts  # noqa: E402
from fastdistill_llms.openai_compat import OpenAICompatLLM  # noqa: E402
from fastdistill_llms.text_generation import TextGeneration  # noqa: E402

import_s = time.perf_counter() - t_imp0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--in-flight", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--no-llm-cache", action="store_true",
                    help="run(llm_cache=False) (default: the response cache on, as for a user, "
                         "but in a fresh folder: every run is a first run, all misses)")
    a = ap.parse_args()

    server = subprocess.Popen([sys.executable, os.path.join(HERE, "http_fixture.py"),
                               "--delay", str(a.delay)], stdout=subprocess.PIPE, text=True)
    work = scratch_dir("fd_http_")
    try:
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("LISTENING "):
            raise SystemExit(f"fixture server did not start: {line!r}")
        port = int(line.split()[1])
        llm = OpenAICompatLLM(base_url=f"http://127.0.0.1:{port}/v1", model="bench",
                              api_key_env=None, max_concurrency=a.in_flight, max_retries=0)
        pipe = Pipeline(
            "p2-http",
            LoadFromDicts(name="load", data=make_instructions(a.n), batch_size=a.batch_size)
            >> TextGeneration(name="gen", llm=llm, template="{instruction}",
                              max_in_flight=a.in_flight, input_batch_size=a.batch_size),
        )
        clock = Clock()
        t0 = time.perf_counter()
        result = pipe.run(os.path.join(work, "out"), on_event=clock, **cache_args(a.no_llm_cache, work))
        run_s = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    ideal_s = math.ceil(a.n / a.in_flight) * a.delay
    emit({
        "bench": "P2-HTTP", "n": a.n, "delay_s": a.delay, "in_flight": a.in_flight,
        "import_s": round(import_s, 3),
        "run_s": round(run_s, 3),
        "rows_per_s": round(a.n / run_s, 1),
        "ideal_rows_per_s": round(a.in_flight / a.delay, 1),
        "ideal_run_s": round(ideal_s, 3),
        "efficiency_vs_ideal": round(ideal_s / run_s, 4),
        "startup_s": round(clock.first["gen"] - t0, 4) if "gen" in clock.first else None,
        "rows_out": result.kept,
        "rejected": result.rejected,
    })


if __name__ == "__main__":
    main()
