"""fastdistill vs distilabel 1.5.3, both sides measured in the same run.  ``nox -s bench``.

    python benchmarks/run.py                    # every shape, 3 repetitions each, medians
    python benchmarks/run.py --only P1a,P2a     # some shapes
    python benchmarks/run.py --reps 5           # more repetitions
    python benchmarks/run.py --quick            # smoke run: smaller N, 1 repetition, no 1M rows
    python benchmarks/run.py --skip-peer        # fastdistill only (ratios left empty)

The peer side runs the scripts in ``../shared/bench/distilabel`` (``$FASTDISTILL_PEER_BENCH``)
with distilabel 1.5.3 in its own virtualenv, ``$DISTIBENCH/venv`` (created here on first use:
``pip install distilabel==1.5.3 requests``, never torch).  The fastdistill side runs the
``fd_*.py`` scripts with this interpreter.  Every repetition is measured by the peer's
``runbench.run_once`` (process wall, peak RSS/PSS of the process tree, own CPU and
``foreign_cpu_s``: CPU burnt by *other* processes on the box during the run, a noise flag),
after waiting up to ``--quiet-wait`` seconds for an idle box.  The two sides alternate within
each repetition.  Results: ``benchmarks/results/<timestamp>.json`` and ``latest.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER_DIR = Path(
    os.environ.get("FASTDISTILL_PEER_BENCH", REPO.parent / "shared" / "bench" / "distilabel")
)
DISTIBENCH = Path(os.environ.get("DISTIBENCH", Path(tempfile.gettempdir()) / "distibench"))
PEER_VENV = DISTIBENCH / "venv"
PEER_PY = PEER_VENV / "bin" / "python"
FD_PY = sys.executable

sys.path.insert(0, str(PEER_DIR))
try:
    import runbench  # the peer suite's measurement code: same method for both sides
except ImportError:  # pragma: no cover - only without the shared peer folder
    sys.exit(f"cannot import runbench.py from {PEER_DIR}; set FASTDISTILL_PEER_BENCH")


# ------------------------------------------------------------------ the shapes
def shapes(quick: bool) -> list[dict[str, Any]]:
    """Each shape: the command of each side and how its figure is read and judged."""
    n1a, n1b, n2 = (2_000, 20_000, 500) if quick else (10_000, 100_000, 2_000)
    peer_b1, peer_b2 = str(PEER_DIR / "b1_overhead.py"), str(PEER_DIR / "b2_llm.py")
    fd = lambda script, *args: [FD_PY, str(HERE / script), *map(str, args)]  # noqa: E731
    peer = lambda script, *args: [str(PEER_PY), script, *map(str, args)]  # noqa: E731
    return [
        {
            "id": "P1a",
            "shape": f"{n1a:,} rows -> 3 cheap row steps, batch 50",
            "peer": peer(peer_b1, "--n", n1a),
            "fd": fd("fd_rows.py", "--n", n1a, "--batch-size", 50),
            "metric": "rows_per_s",
            "unit": "rows/s",
            "goal": ("ratio>=", 100),
        },
        {
            "id": "P1b",
            "shape": f"{n1b:,} rows -> same, batch 1,000",
            "peer": peer(peer_b1, "--n", n1b, "--batch-size", 1000, "--input-batch-size", 1000),
            "fd": fd("fd_rows.py", "--n", n1b, "--batch-size", 1000),
            "metric": "rows_per_s",
            "unit": "rows/s",
            "goal": ("ratio>=", 30),
        },
        {
            "id": "P1c",
            "shape": "start-up: run() to first batch out (from P1a's runs)",
            "from": "P1a",
            "metric": "startup_s",
            "unit": "s",
            "lower": True,
            "goal": ("fd<=", 0.2),
        },
        {
            "id": "P2a",
            "shape": f"{n2:,} rows -> LLM task, 50 ms scripted, 50 in flight",
            "peer": peer(peer_b2, "--n", n2, "--latency", 0.05, "--input-batch-size", 50),
            "fd": fd(
                "fd_llm.py", "--n", n2, "--latency", 0.05, "--in-flight", 50, "--batch-size", 50
            ),
            "metric": "rows_per_s",
            "unit": "rows/s",
            "ideal": True,
            "goal": ("eff>=", 0.9),
        },
        {
            "id": "P2b",
            "shape": f"{n2:,} rows -> same, 1,000 in flight, batch 1,000",
            "peer": peer(peer_b2, "--n", n2, "--latency", 0.05, "--input-batch-size", 1000),
            "fd": fd(
                "fd_llm.py", "--n", n2, "--latency", 0.05, "--in-flight", 1000, "--batch-size", 1000
            ),
            "metric": "rows_per_s",
            "unit": "rows/s",
            "ideal": True,
            "goal": ("eff>=", 0.5),
        },
        *[
            {
                "id": f"{sid}=",
                "shape": f"{sid} in the peer's configuration (no resume data)",
                "peer_from": sid,
                "fd": fd(*cmd, *flags),
                "metric": "rows_per_s",
                "unit": "rows/s",
                "ideal": sid.startswith("P2"),
                "goal": goal,
                "note": "the peer's scripts run(use_cache=False): no resume data; fastdistill "
                        "the same way (checkpoint=False, llm_cache=False)",
            }
            for sid, cmd, flags, goal in (
                ("P1a", ("fd_rows.py", "--n", n1a, "--batch-size", 50), ("--no-checkpoint",),
                 ("ratio>=", 100)),
                ("P1b", ("fd_rows.py", "--n", n1b, "--batch-size", 1000), ("--no-checkpoint",),
                 ("ratio>=", 30)),
                ("P2a", ("fd_llm.py", "--n", n2, "--latency", 0.05, "--in-flight", 50,
                         "--batch-size", 50), ("--no-checkpoint", "--no-llm-cache"),
                 ("eff>=", 0.9)),
                ("P2b", ("fd_llm.py", "--n", n2, "--latency", 0.05, "--in-flight", 1000,
                         "--batch-size", 1000), ("--no-checkpoint", "--no-llm-cache"),
                 ("eff>=", 0.5)),
            )
        ],
        {
            "id": "P2-HTTP",
            "shape": f"{n2:,} rows -> openai_compat over HTTP (127.0.0.1, 50 ms), 50 in flight",
            "peer": None,
            "fd": fd("fd_http.py", "--n", n2, "--delay", 0.05, "--in-flight", 50),
            "metric": "rows_per_s",
            "unit": "rows/s",
            "ideal": True,
            "goal": ("eff>=", 0.9),
            "note": "no peer run; goal borrowed from P2a",
        },
        {
            "id": "P4",
            "shape": "import + discover all plugins, fresh process",
            "peer": [str(PEER_PY), "-c", "from distilabel.pipeline import Pipeline"],
            "fd": [FD_PY, "-c", "import fastdistill; print(len(fastdistill.Registry().plugins()))"],
            "metric": "wall_s",
            "unit": "s",
            "lower": True,
            "goal": ("fd<=", 0.15),
            "kind": "import",
        },
        {
            "id": "P5",
            "shape": f"peak PSS of P1b ({n1b:,} rows), process tree",
            "from": "P1b",
            "metric": "peak_tree_pss_mb",
            "unit": "MB",
            "lower": True,
            "goal": ("fd<=", 150),
        },
        {
            "id": "P5-flat",
            "shape": "peak PSS, rows generated lazily: 100k vs 1M"
            if not quick
            else "peak PSS, rows generated lazily: 20k vs 100k",
            "peer": None,
            "kind": "flat",
            "fd_small": fd(
                "fd_rows.py", "--lazy", "--n", 20_000 if quick else 100_000, "--batch-size", 1000
            ),
            "fd_big": fd(
                "fd_rows.py", "--lazy", "--n", 100_000 if quick else 1_000_000, "--batch-size", 1000
            ),
            "metric": "peak_tree_pss_mb",
            "unit": "MB",
            "lower": True,
            "goal": ("growth<=", 1.2),
        },
    ]


# ------------------------------------------------------------------ peer virtualenv
def ensure_peer_venv() -> None:
    """Create ``$DISTIBENCH/venv`` with distilabel 1.5.3 unless it is already there."""
    if PEER_PY.exists():
        ok = subprocess.run(
            [
                str(PEER_PY),
                "-c",
                "import importlib.metadata as m, requests; "
                "assert m.version('distilabel') == '1.5.3'",
            ],
            capture_output=True,
        )
        if ok.returncode == 0:
            return
    base = shutil.which("python3.11") or sys.executable
    print(f"creating the peer virtualenv {PEER_VENV} (distilabel==1.5.3, ~40 s) ...", flush=True)
    subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True)
    # requests: imported by distilabel 1.5.3 but not declared.  Never torch.
    subprocess.run(
        [str(PEER_PY), "-m", "pip", "install", "-q", "distilabel==1.5.3", "requests"], check=True
    )


# ------------------------------------------------------------------ measuring
class Runner:
    def __init__(self, logdir: Path, quiet_wait: float, quiet_cores: float) -> None:
        self.logdir = logdir
        self.quiet_wait = quiet_wait
        self.quiet_cores = quiet_cores
        self.count = 0
        self.env = {**os.environ, "DISTIBENCH": str(DISTIBENCH), "PYTHONUNBUFFERED": "1"}

    def wait(self) -> float:
        if self.quiet_wait <= 0:
            return 0.0
        return runbench.wait_quiet(self.quiet_wait, busy_cores=self.quiet_cores, need=2)

    def once(self, label: str, cmd: list[str]) -> dict[str, Any]:
        waited = self.wait()
        self.count += 1
        log = self.logdir / f"{self.count:03d}-{label}.log"
        r = runbench.run_once(cmd, str(log), self.env)
        r["quiet_wait_s"] = waited
        r["load1"] = round(os.getloadavg()[0], 2)
        status = "" if r["rc"] == 0 and "run_s" in r else f"  FAILED rc={r['rc']}, see {log}"
        brief = {
            k: r.get(k)
            for k in (
                "process_wall_s",
                "run_s",
                "rows_per_s",
                "startup_s",
                "peak_tree_pss_mb",
                "foreign_cpu_s",
            )
            if r.get(k) is not None
        }
        print(f"  [{label}] {json.dumps(brief)}{status}", flush=True)
        return r

    def wall(self, label: str, cmd: list[str], reps: int) -> list[dict[str, Any]]:
        """Fresh-process wall time of a short command (P4), measured around the process."""
        subprocess.run(cmd, capture_output=True, env=self.env)  # warm-up: .pyc, page cache
        runs = []
        self.wait()
        for _ in range(reps):
            busy0, kids0 = runbench._cpu_busy_s(), _children_cpu_s()
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
            wall = time.perf_counter() - t0
            own = _children_cpu_s() - kids0
            foreign = runbench._cpu_busy_s() - busy0 - own
            runs.append(
                {
                    "rc": p.returncode,
                    "wall_s": round(wall, 4),
                    "own_cpu_s": round(own, 3),
                    "foreign_cpu_s": round(max(0.0, foreign), 3),
                    "load1": round(os.getloadavg()[0], 2),
                    "stdout": p.stdout.strip()[-200:],
                    "stderr": p.stderr.strip()[-300:],
                }
            )
        print(f"  [{label}] wall_s={[r['wall_s'] for r in runs]}", flush=True)
        return runs


def _fd_versions() -> dict[str, str]:
    """Where this interpreter's fastdistill packages come from (version and location)."""
    code = (
        "import importlib.metadata as m, json; out = {}\n"
        "for d in ('fastdistill-core', 'fastdistill-steps', 'fastdistill-llms', 'fastdistill-cuda'):\n"
        "    try:\n        dist = m.distribution(d); out[d] = f'{dist.version} {dist.locate_file(\"\")}'\n"
        "    except m.PackageNotFoundError:\n        out[d] = 'missing'\n"
        "print(json.dumps(out))"
    )
    p = subprocess.run([FD_PY, "-c", code], capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr[-300:]}


def _children_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def median(runs: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in runs if isinstance(r.get(key), (int, float)) and r.get("rc") == 0]
    return round(statistics.median(vals), 4) if vals else None


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = {
        k
        for r in runs
        for k, v in r.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    return {k: m for k in sorted(keys) if (m := median(runs, k)) is not None}


# ------------------------------------------------------------------ judging
def judge(s: dict[str, Any], peer: dict[str, float], fd: dict[str, float]) -> dict[str, Any]:
    """The figure of each side, the ratio (fastdistill's advantage, >1 is better) and the goal."""
    metric, lower = s["metric"], s.get("lower", False)
    pv, fv = peer.get(metric), fd.get(metric)
    ratio = None
    if pv and fv:
        ratio = round(pv / fv if lower else fv / pv, 2)
    kind, bar = s["goal"]
    met: bool | None = None
    if kind == "ratio>=":
        met = None if ratio is None else ratio >= bar
    elif kind == "fd<=":
        met = None if fv is None else fv <= bar
    elif kind == "eff>=":
        fv_eff = fd.get("efficiency_vs_ideal")
        met = None if fv_eff is None else fv_eff >= bar
    elif kind == "growth<=":
        met = None if fd.get("growth") is None else fd["growth"] <= bar
    return {"peer_value": pv, "fd_value": fv, "ratio": ratio, "met": met}


def fmt_value(s: dict[str, Any], side: dict[str, float], value: float | None) -> str:
    if value is None:
        return "-"
    if s.get("kind") == "flat":
        return f"{side['small_mb']:.0f} -> {side['big_mb']:.0f} MB (x{side['growth']:.2f})"
    if s["unit"] == "rows/s":
        text = f"{value:,.0f} rows/s"
        if s.get("ideal") and side.get("efficiency_vs_ideal") is not None:
            text += f" ({side['efficiency_vs_ideal']:.0%} of ideal)"
        return text
    if s["unit"] == "s":
        return f"{value:.3f} s"
    return f"{value:.0f} {s['unit']}"


def fmt_goal(s: dict[str, Any]) -> str:
    kind, bar = s["goal"]
    return {
        "ratio>=": f">= {bar}x",
        "fd<=": f"<= {bar} {s['unit']}",
        "eff>=": f">= {bar:.0%} of ideal",
        "growth<=": f"flat (<= x{bar})",
    }[kind]


def table(rows: list[dict[str, Any]]) -> str:
    head = ["id", "shape", "distilabel 1.5.3", "fastdistill", "ratio", "goal", "met?", "noise"]
    body = [
        [
            r["id"],
            r["shape"],
            r["peer_text"],
            r["fd_text"],
            "-" if r["ratio"] is None else f"{r['ratio']:,.1f}x",
            r["goal_text"],
            {True: "yes", False: "NO", None: "-"}[r["met"]],
            r["noise"],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: list[Any]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)]
    )


# ------------------------------------------------------------------ main
def compile_fastdistill() -> None:
    """Byte-compile fastdistill's packages as ``pip install`` does (an editable install under
    ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile ~25 modules in every process)."""
    code = (
        "import compileall, importlib.util, os\n"
        "for name in ('fastdistill', 'fastdistill_steps', 'fastdistill_llms',\n"
        "             'fastdistill_cuda'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    if spec is not None and spec.origin:\n"
        "        compileall.compile_dir(os.path.dirname(spec.origin), quiet=1)\n"
    )
    subprocess.run([FD_PY, "-c", code], check=False, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", default="", help="comma-separated shape ids, e.g. P1a,P2a")
    ap.add_argument(
        "--reps", type=int, default=None, help="repetitions per side (default 3; --quick 1)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: smaller N, no 1M-row run")
    ap.add_argument("--skip-peer", action="store_true", help="do not run distilabel")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=float(os.environ.get("QUIET_WAIT", 10)),
        help="max seconds to wait for an idle box before each run (0: don't)",
    )
    ap.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="the box counts as idle below this many busy cores",
    )
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument(
        "--note", default="", help="free text saved with the results (what was measured)"
    )
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    all_shapes = shapes(a.quick)
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    unknown = only - {s["id"] for s in all_shapes}
    if unknown:
        ap.error(
            f"unknown shape(s) {', '.join(sorted(unknown))}; known: {', '.join(s['id'] for s in all_shapes)}"
        )
    wanted = [s for s in all_shapes if not only or s["id"] in only]
    # derived shapes need their source shape's runs
    needed = (
        {s["id"] for s in wanted}
        | {s["from"] for s in wanted if "from" in s}
        | {s["peer_from"] for s in wanted if "peer_from" in s}
    )
    to_run = [s for s in all_shapes if s["id"] in needed]

    if not a.skip_peer and any(s.get("peer") for s in to_run):
        ensure_peer_venv()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logdir = DISTIBENCH / "fastdistill-logs" / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    (DISTIBENCH / "scratch").mkdir(parents=True, exist_ok=True)  # the peer scripts work there
    runner = Runner(logdir, a.quiet_wait, a.quiet_cores)
    compile_fastdistill()
    print(f"fastdistill benchmarks: reps={reps} quick={a.quick} logs={logdir}", flush=True)

    raw: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for s in to_run:
        if "from" in s:
            continue
        print(f"{s['id']}: {s['shape']}", flush=True)
        peer_runs: list[dict[str, Any]] = []
        fd_runs: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        # a "peer_from" shape has no peer command: it is read against another shape's peer runs
        do_peer = bool(s.get("peer")) and not a.skip_peer
        if s.get("kind") == "import":
            n = max(reps, 5)
            fd_runs = runner.wall(f"{s['id']}-fastdistill", s["fd"], n)
            extra["fd_interpreter"] = runner.wall("python-startup", [FD_PY, "-c", "pass"], n)
            if do_peer:
                peer_runs = runner.wall(f"{s['id']}-distilabel", s["peer"], n)
        elif s.get("kind") == "flat":
            fd_runs = [runner.once(f"{s['id']}-small-{i}", s["fd_small"]) for i in range(reps)]
            big = [
                runner.once(f"{s['id']}-big-{i}", s["fd_big"])
                for i in range(1 if not a.quick else reps)
            ]
            extra["fd_big_runs"] = big
        else:
            for i in range(reps):
                order = [("distilabel", s.get("peer")), ("fastdistill", s["fd"])]
                if i % 2:
                    order.reverse()
                for side, cmd in order:
                    if side == "distilabel" and not do_peer:
                        continue
                    r = runner.once(f"{s['id']}-{side}-{i}", cmd)
                    (peer_runs if side == "distilabel" else fd_runs).append(r)
        raw[s["id"]] = {"peer_runs": peer_runs, "fd_runs": fd_runs, **extra}

    rows = []
    for s in wanted:
        src = raw[s.get("from", s["id"])]
        if "peer_from" in s:  # the same peer runs as its shape, fastdistill configured like it
            src = {**src, "peer_runs": raw[s["peer_from"]]["peer_runs"]}
        peer_m, fd_m = medians(src["peer_runs"]), medians(src["fd_runs"])
        if s.get("kind") == "flat":
            small = fd_m.get("peak_tree_pss_mb")
            big = medians(src["fd_big_runs"]).get("peak_tree_pss_mb")
            fd_m = {
                **fd_m,
                "small_mb": small or 0,
                "big_mb": big or 0,
                "growth": round(big / small, 3) if small and big else None,
            }
        verdict = judge(s, peer_m, fd_m)
        all_runs = src["peer_runs"] + src["fd_runs"] + src.get("fd_big_runs", [])
        # foreign CPU from fastdistill's runs only: the peer's figure also counts its own
        # worker processes (GNU time never sees their CPU), so it is not a noise signal
        fd_all = src["fd_runs"] + src.get("fd_big_runs", [])
        foreign = [r["foreign_cpu_s"] for r in fd_all if "foreign_cpu_s" in r]
        loads = [r["load1"] for r in all_runs if "load1" in r]
        failed = sum(1 for r in all_runs if r.get("rc") != 0)
        if foreign:
            noise = f"{statistics.median(foreign):.1f} cpu-s, load {statistics.median(loads):.1f}"
        else:
            noise = ""
        if failed:
            noise += f"; {failed} FAILED run(s)"
        rows.append(
            {
                "id": s["id"],
                "shape": s["shape"],
                "goal_text": fmt_goal(s),
                "noise": noise,
                "peer_text": fmt_value(s, peer_m, verdict["peer_value"])
                if src["peer_runs"]
                else ("(no peer)" if not s.get("peer") and "from" not in s else "-"),
                "fd_text": fmt_value(s, fd_m, verdict["fd_value"]),
                "peer_median": peer_m,
                "fd_median": fd_m,
                **verdict,
                **({"note": s["note"]} if "note" in s else {}),
            }
        )

    print()
    print(table(rows))
    print(
        f"\n(total {time.perf_counter() - t_all:.0f} s; ratio = fastdistill's advantage, >1 is "
        f"better; noise = median CPU-seconds other processes burnt during a fastdistill run, and the "
        f"1-min load average after the runs)"
    )

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()

    doc = {
        "timestamp": stamp,
        "args": vars(a) | {"reps": reps},
        "note": a.note,
        "fastdistill_versions": _fd_versions(),
        "machine": {
            "nproc": os.cpu_count(),
            "loadavg_end": os.getloadavg(),
            "python": sys.version.split()[0],
            "fd_python": FD_PY,
            "peer_python": str(PEER_PY),
        },
        "git": {
            "commit": git("rev-parse", "HEAD"),
            "dirty_files": git("status", "--porcelain").splitlines(),
        },
        "logs": str(logdir),
        "table": rows,
        "raw": raw,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{stamp}.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    (out / "latest.json").write_text(json.dumps(doc, indent=1, default=str))
    print(f"saved {path} (and latest.json)")
    return (
        0
        if not any(
            r.get("rc") != 0
            for v in raw.values()
            for k in ("peer_runs", "fd_runs")
            for r in v.get(k, [])
        )
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
