"""P1a / P1b / P1c / P5 on fastdistill: rows -> AddLength -> Upper -> KeepColumns.

  python fd_rows.py --n 10000 --batch-size 50            # P1a (+ P1c from the same run)
  python fd_rows.py --n 100000 --batch-size 1000         # P1b, P5 (peak memory, measured outside)
  python fd_rows.py --n 1000000 --batch-size 1000 --lazy # P5 flatness (rows generated lazily)

Same shape as the peer's ``b1_overhead.py``: the loader's ``batch_size`` and the three steps'
``input_batch_size`` are both ``--batch-size``.  Timings (seconds):
  import_s       importing fastdistill and the steps inside this script
  build_s        constructing the Pipeline
  run_s          ``pipeline.run()`` wall time (registry discovery, validation, the batch loop,
                 writing dataset.jsonl, rejected.jsonl and the reports)
  startup_s      ``run()`` call -> first batch out of the LAST step (first ``progress`` event)
  startup_first_step_s  ``run()`` call -> first batch out of AddLength (the peer measures
                 ``run()`` -> first batch *entering* AddLength)
  loop_s         ``run()`` call -> last batch out of the last step (the rest of run_s is
                 writing outputs and reports)
  maxrss_loop_mb / maxrss_end_mb  this process's peak RSS when the last batch came out of the
                 last step / at the end of ``run()``
"""

from __future__ import annotations

import time

t_imp0 = time.perf_counter()
import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import AddLength, Clock, SynthRows, Upper, emit, make_rows, maxrss_mb, scratch_dir  # noqa: E402
from fastdistill import Pipeline  # noqa: E402
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts  # noqa: E402

import_s = time.perf_counter() - t_imp0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--lazy", action="store_true", help="generate rows lazily (SynthRows)")
    ap.add_argument("--no-checkpoint", action="store_true",
                    help="run(checkpoint=False): no resume data, as the peer's "
                         "run(use_cache=False)")
    ap.add_argument("--no-rss", action="store_true",
                    help="skip maxrss_loop_mb (getrusage per batch looks expensive under py-spy)")
    a = ap.parse_args()

    work = scratch_dir("fd_rows_")
    if a.lazy:
        load = SynthRows(name="load", n=a.n, batch_size=a.batch_size)
    else:
        load = LoadFromDicts(name="load", data=make_rows(a.n), batch_size=a.batch_size)
    t0 = time.perf_counter()
    pipe = Pipeline(
        "p1-overhead",
        load
        >> AddLength(name="add_length", input_batch_size=a.batch_size)
        >> Upper(name="upper", input_batch_size=a.batch_size)
        >> KeepColumns(name="keep", columns=["id", "text_upper", "n_chars"],
                       input_batch_size=a.batch_size),
    )
    build_s = time.perf_counter() - t0

    clock = Clock(track=None if a.no_rss else "keep")
    t_run0 = time.perf_counter()
    result = pipe.run(os.path.join(work, "out"), on_event=clock,
                      checkpoint=not a.no_checkpoint)
    run_s = time.perf_counter() - t_run0

    emit({
        "bench": "P1", "n": a.n, "batch_size": a.batch_size, "lazy": a.lazy,
        "import_s": round(import_s, 3),
        "build_s": round(build_s, 3),
        "run_s": round(run_s, 3),
        "rows_per_s": round(a.n / run_s, 1),
        "startup_s": round(clock.first["keep"] - t_run0, 4) if "keep" in clock.first else None,
        "startup_first_step_s": (round(clock.first["add_length"] - t_run0, 4)
                                 if "add_length" in clock.first else None),
        "loop_s": round(clock.last["keep"] - t_run0, 3) if "keep" in clock.last else None,
        "maxrss_loop_mb": clock.maxrss_loop_mb,
        "maxrss_end_mb": maxrss_mb(),
        "rows_out": result.kept,
        "rejected": result.rejected,
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
