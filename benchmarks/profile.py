"""Profile the fastdistill side of a shape with py-spy and print where the time goes.

    python benchmarks/profile.py P1b            # rows, 100k, batch 1,000
    python benchmarks/profile.py P2b            # LLM task, 1,000 in flight
    python benchmarks/profile.py P2-HTTP        # openai_compat over local HTTP
    python benchmarks/profile.py P4             # import + plugin discovery (also -X importtime)
    python benchmarks/profile.py P1b --top 40 --rate 250
    python benchmarks/profile.py P2b -- --n 20000   # steady state: the script's own args win

py-spy is not a project dependency: it is installed into a scratch virtualenv,
``$DISTIBENCH/tools`` (``pip install py-spy``), on first use.  By default samples only the
thread holding the GIL (``--gil``: Python CPU time), all threads together (``--threads``
splits them; ``--all-threads`` samples every non-idle thread instead).
Prints the top functions by *self* time and by *total* (inclusive) time, as a share of samples;
the raw collapsed stacks are kept in ``$DISTIBENCH/profiles/<shape>.txt`` (flamegraph input).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DISTIBENCH = Path(os.environ.get("DISTIBENCH", Path(tempfile.gettempdir()) / "distibench"))
TOOLS = DISTIBENCH / "tools"
PYSPY = TOOLS / "bin" / "py-spy"

SHAPES = {
    "P1a": ["fd_rows.py", "--n", "10000", "--batch-size", "50", "--no-rss"],
    "P1b": ["fd_rows.py", "--n", "100000", "--batch-size", "1000", "--no-rss"],
    "P2a": ["fd_llm.py", "--n", "2000", "--in-flight", "50", "--batch-size", "50"],
    "P2b": ["fd_llm.py", "--n", "2000", "--in-flight", "1000", "--batch-size", "1000"],
    "P2-HTTP": ["fd_http.py", "--n", "2000", "--in-flight", "50"],
    "P5-1M": ["fd_rows.py", "--lazy", "--n", "1000000", "--batch-size", "1000", "--no-rss"],
}


def ensure_pyspy() -> None:
    if PYSPY.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
    subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", "py-spy"], check=True)


#: engine areas, most specific first: a sample counts for the first area whose frame is on its stack
AREAS = [
    ("registry/validate/plan (start-up)", "Registry.__init__"),
    ("registry/validate/plan (start-up)", "validate_pipeline"),
    ("registry/validate/plan (start-up)", "build_plan"),
    ("imports (mostly before run())", "_find_and_load"),
    ("checkpoint writes", "StepCheckpoint.record"),
    ("HTTP client (aiohttp)", "aiohttp/"),
    ("HTTP client (aiohttp)", "yarl/"),
    ("HTTP client (aiohttp)", "multidict/"),
    ("HTTP client (httpx/httpcore)", "httpcore/"),
    ("HTTP client (httpx/httpcore)", "httpx/"),
    ("openai_compat (request body, retries, parsing)", "openai_compat.py"),
    ("LLM response cache", "llm_cache"),
    ("dataset spool (RowSink.add)", "RowSink.add"),
    ("final sort+rewrite (RowSink.finalize)", "RowSink.finalize"),
    ("reports + pipeline.yaml", "write_reports"),
    ("LLM task per-row (aprocess_row)", "aprocess_row"),
    ("task scheduling (_run_task, flush)", "_run_task"),
    ("row accounting (_account)", "_account"),
    ("manifest stats (observe_output)", "observe_output"),
    ("step code (process)", ".process ("),
    ("generator code (generate)", ".generate"),
    ("queues (transport put/get)", "Transport."),
    ("asyncio event loop", "asyncio/"),
]


def areas(raw: Path) -> None:
    """Share of samples per engine area (see AREAS)."""
    counts: collections.Counter[str] = collections.Counter()
    n = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n += int(count)
        area = next((label for label, pat in AREAS if pat in stack), "other")
        counts[area] += int(count)
    print("\nBY ENGINE AREA (first match, most specific first)")
    for label, k in counts.most_common():
        print(f"  {k / max(n, 1):6.1%}  {label}")


def summarize(raw: Path, top: int) -> None:
    self_c: collections.Counter[str] = collections.Counter()
    total_c: collections.Counter[str] = collections.Counter()
    n = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        n += k
        frames = stack.split(";")
        self_c[frames[-1]] += k
        for f in set(frames):
            total_c[f] += k
    print(f"\n{n} samples\n\nTOP BY SELF TIME")
    for f, k in self_c.most_common(top):
        print(f"  {k / n:6.1%}  {f}")
    print("\nTOP BY TOTAL (INCLUSIVE) TIME")
    for f, k in total_c.most_common(top):
        print(f"  {k / n:6.1%}  {f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=[*SHAPES, "P4"])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    ap.add_argument("--threads", action="store_true", help="keep threads apart")
    ap.add_argument("--all-threads", action="store_true",
                    help="sample every non-idle thread (default: only the thread holding the GIL, "
                         "i.e. where Python CPU time goes; threads blocked on a queue or a join "
                         "would otherwise show up as busy)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a = ap.parse_args(argv[:cut])
    extra = argv[cut + 1:]  # after --: arguments for the script (they win), e.g. -- --n 20000
    if a.shape == "P4":
        # import time is best read from the interpreter's own importtime log
        out = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import fastdistill; fastdistill.Registry()"],
                             capture_output=True, text=True).stderr.splitlines()
        rows = []
        for line in out:
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                rows.append((int(parts[1]), int(parts[0].split(":")[1]), parts[2].rstrip()))
        print("TOP IMPORTS BY CUMULATIVE TIME (us, self us, module)")
        for cum, self_us, mod in sorted(rows, reverse=True)[: a.top]:
            print(f"  {cum:8d} {self_us:8d} {mod}")
        return
    ensure_pyspy()
    out_dir = DISTIBENCH / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"{a.shape}.txt"
    cmd = [str(PYSPY), "record", "-r", str(a.rate), "-f", "raw", "-o", str(raw),
           *(["--threads"] if a.threads else []), *([] if a.all_threads else ["--gil"]), "--", sys.executable,
           str(HERE / SHAPES[a.shape][0]), *SHAPES[a.shape][1:], *extra]
    subprocess.run(cmd, check=True)
    areas(raw)
    summarize(raw, a.top)


if __name__ == "__main__":
    main()
