"""``fastdistill runs list`` and ``fastdistill runs show``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fastdistill.engine.checkpoint import STATE_DIR
from fastdistill.errors import FastDistillError


def _state(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE_DIR / "state.json"
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        return None
    return data


def _alive(state: dict[str, Any]) -> bool:
    """Whether the process that marked the run ``running`` still exists (same host only)."""
    import os
    import socket

    pid = state.get("pid")
    if not isinstance(pid, int) or state.get("host") != socket.gethostname():
        return True  # cannot tell from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _summary(folder: Path) -> dict[str, Any]:
    state = _state(folder) or {}
    if state.get("status") == "running" and not _alive(state):
        state = {**state, "status": "interrupted"}  # killed: rerun the same command to resume
    steps = state.get("step_signatures", {})
    done = [
        name for name, sig in steps.items()
        if (folder / STATE_DIR / "steps" / sig / "done.json").is_file()
    ]
    reports = [n for n in ("quality_report.json", "timing_report.json") if (folder / n).is_file()]
    return {
        "output": str(folder),
        "pipeline": state.get("pipeline"),
        "run_id": state.get("run_id"),
        "status": state.get("status"),
        "attempts": state.get("attempts"),
        "started": state.get("started"),
        "finished": state.get("finished"),
        "kept": state.get("kept"),
        "rejected": state.get("rejected"),
        "steps_done": done,
        "steps": list(steps),
        "reports": reports,
    }


def runs_command(args: argparse.Namespace) -> int:
    """Dispatch ``runs list`` / ``runs show``."""
    root = Path(args.root)
    if args.runs_command == "list":
        folders = sorted(p.parent.parent for p in root.glob(f"*/{STATE_DIR}/state.json"))
        rows = [_summary(f) for f in folders]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print(f"no runs under {root}/")
            return 0
        for r in rows:
            print(f"{r['output']}  {r['status']:<9}  kept={r['kept']} rejected={r['rejected']}  "
                  f"steps done {len(r['steps_done'])}/{len(r['steps'])}  {r['finished'] or r['started']}")
        return 0
    if args.runs_command == "show":
        folder = Path(args.run)
        if not folder.is_dir():
            folder = root / args.run
        if _state(folder) is None:
            raise FastDistillError(
                f"no run found at {args.run!r} (looked in {args.run} and {root / args.run}); "
                "`fastdistill runs list` shows the runs"
            )
        info = _summary(folder)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        for key, value in info.items():
            print(f"{key:>10}: {value}")
        return 0
    raise FastDistillError("usage: fastdistill runs list | fastdistill runs show RUN")
