"""The ``fastdistill`` command line: ``run``, ``plugins``, ``inspect``, ``report``.

The CLI holds no business logic: it parses arguments and calls the Python API.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastdistill.errors import FastDistillError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastdistill", description="Build distillation datasets from pipeline documents."
    )
    parser.add_argument("--version", action="store_true", help="print versions and exit")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a pipeline document (YAML or JSON)")
    run.add_argument("pipeline", help="path to the pipeline document")
    run.add_argument("--param", "-p", action="append", default=[], metavar="STEP.KEY=VALUE",
                     help="set a step parameter (repeatable), e.g. teacher.llm.base_url=http://...")
    run.add_argument("--output", "-o", help="output folder or fsspec URL "
                     "(default: fastdistill-runs/<pipeline>)")
    run.add_argument("--fresh", action="store_true",
                     help="ignore checkpoints of earlier attempts in the output folder; start over")
    run.add_argument("--no-llm-cache", action="store_true",
                     help="bypass the LLM response cache (default: on, shared across runs)")
    run.add_argument("--no-checkpoint", action="store_true",
                     help="write no checkpoints (the run cannot be resumed)")
    run.add_argument("--limit", "-n", type=_non_negative, help="at most N rows from each loader")
    run.add_argument("--engine", default="local", help="execution engine (default: local)")
    run.add_argument("--transport", default="memory", help="batch transport (default: memory)")
    run.add_argument("--placement", default="cpu", help="device placement (default: cpu)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    run.add_argument("--json", action="store_true", help="print the result as JSON at the end")

    plugins = sub.add_parser("plugins", help="list installed plugins and their components")
    plugins.add_argument("--json", action="store_true", help="print JSON")

    inspect = sub.add_parser("inspect", help="validate a pipeline document and show its steps")
    inspect.add_argument("pipeline")
    inspect.add_argument("--param", "-p", action="append", default=[], metavar="STEP.KEY=VALUE")

    report = sub.add_parser("report", help="summarise a finished run's output folder")
    report.add_argument("output")

    runs = sub.add_parser("runs", help="list runs, or show one")
    runs_sub = runs.add_subparsers(dest="runs_command")
    runs_list = runs_sub.add_parser("list", help="runs under the runs folder")
    runs_list.add_argument("--root", default="fastdistill-runs", help="default: fastdistill-runs")
    runs_list.add_argument("--json", action="store_true")
    runs_show = runs_sub.add_parser("show", help="status, steps done, rows and reports of a run")
    runs_show.add_argument("run", help="a run's output folder, or a pipeline name under --root")
    runs_show.add_argument("--root", default="fastdistill-runs")
    runs_show.add_argument("--json", action="store_true")
    return parser


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastdistill`` command."""
    args = _parser().parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    try:
        if args.version:
            return _versions()
        if args.command == "run":
            return _run(args, console)
        if args.command == "plugins":
            return _plugins(args)
        if args.command == "inspect":
            return _inspect(args)
        if args.command == "report":
            return _report(args)
        if args.command == "runs":
            from fastdistill.cli.runs import runs_command

            return runs_command(args)
        _parser().print_help()
        return 2
    except FastDistillError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 1
    except BrokenPipeError:  # `fastdistill ... | head`
        sys.stderr.close()
        return 0
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        where = getattr(exc, "filename", None) or ""
        console.print(
            f"[bold red]error:[/] cannot write {where!s}: {exc.strerror or exc}; "
            "choose an --output folder you can write to", highlight=False,
        )
        return 1


def _versions() -> int:
    from fastdistill.registry import Registry

    for p in Registry().plugins():
        print(f"{p.distribution or p.name} {p.version or ''}".strip())
    return 0


def _params(pairs: list[str]) -> dict[str, Any]:
    from fastdistill.pipeline.params import parse_assignment

    return dict(parse_assignment(p) for p in pairs)


def _run(args: argparse.Namespace, console: Any) -> int:
    from rich.logging import RichHandler

    from fastdistill.cli.display import ProgressDisplay, summary_tables
    from fastdistill.pipeline.core import Pipeline
    from fastdistill.registry import Registry

    registry = Registry()
    for broken in registry.load_errors():
        console.print(
            f"[yellow]warning:[/] plugin {broken.name!r} ({broken.distribution}) failed to load: "
            f"{broken.error}", highlight=False,
        )
    pipeline = Pipeline.load(args.pipeline, registry)
    handler = RichHandler(console=console, show_path=False, level=logging.WARNING)
    root = logging.getLogger("fastdistill")
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with ProgressDisplay(console, enabled=not args.quiet) as display:
            result = pipeline.run(
                args.output,
                params=_params(args.param),
                limit=args.limit,
                engine=args.engine,
                transport=args.transport,
                placement=args.placement,
                registry=registry,
                on_event=display,
                resume=not args.fresh,
                checkpoint=not args.no_checkpoint,
                llm_cache=not args.no_llm_cache,
            )
    finally:
        root.removeHandler(handler)
    for table in summary_tables(result):
        console.print(table)
    for warning in result.quality.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.reused:
        console.print("a finished run with the same pipeline, parameters and input is in the "
                      "output folder: nothing to compute (use --fresh to recompute)")
    state = "cancelled — rerun to resume; partial output" if result.cancelled else "output"
    console.print(f"{state}: [bold]{result.output}[/]  (dataset.jsonl, rejected.jsonl, "
                  "manifests/, quality_report.json, timing_report.json)", highlight=False)
    if args.json:
        print(json.dumps({"run_id": result.run_id, "output": result.output, "kept": result.kept,
                          "rejected": result.rejected, "cancelled": result.cancelled}))
    return 130 if result.cancelled else 0


def _plugins(args: argparse.Namespace) -> int:
    from fastdistill.registry import Registry

    plugins = [p.to_dict() for p in Registry().plugins()]
    if args.json:
        print(json.dumps(plugins, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fastdistill plugins", title_justify="left")
    for col in ("plugin", "distribution", "version", "components", "problems"):
        table.add_column(col)
    for p in plugins:
        comps = ", ".join(f"{c['name']} ({c['kind']})" for c in p["components"])
        problems = "; ".join([p["error"]] if p["error"] else []) or "; ".join(p.get("warnings", []))
        table.add_row(p["name"], p["distribution"] or "-", p["version"] or "-", comps, problems)
    Console().print(table)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from fastdistill.pipeline.core import Pipeline
    from fastdistill.registry import Registry

    registry = Registry()
    pipeline = Pipeline.load(args.pipeline, registry)
    if args.param:
        pipeline.set_params(_params(args.param))
    pipeline.validate(registry)
    print(f"pipeline {pipeline.name}: valid, {len(pipeline.steps)} steps")
    for name in pipeline.topological_order():
        step = pipeline.steps[name]
        comp = pipeline.component_names.get(name, type(step).__name__)
        ups = ", ".join(pipeline.upstream(name)) or "-"
        print(f"  {name} ({comp}) after: {ups}")
        for pname, info in type(step).runtime_parameters_info.items():
            flag = " (required)" if info.required else ""
            print(f"      --param {name}.{pname}={getattr(step, pname)!r}{flag}  {info.description}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fastdistill.cli.display import summary_tables

    out = Path(args.output)
    if not (out / "quality_report.json").exists():
        raise FastDistillError(f"{out} holds no quality_report.json; is it a run's output folder?")
    quality = json.loads((out / "quality_report.json").read_text())
    timing = json.loads((out / "timing_report.json").read_text())

    class _R:
        pass

    r = _R()
    r.quality, r.timing = quality, timing  # type: ignore[attr-defined]
    console = Console()
    for table in summary_tables(r):
        console.print(table)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
