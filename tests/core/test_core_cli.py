"""The ``fastdistill`` command line, called in-process through ``fastdistill.cli.main``."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from fastdistill.cli import main

DOC = {
    "schema_version": 2,
    "name": "tiny",
    "steps": [
        {
            "name": "load",
            "component": "load_from_dicts",
            "params": {"batch_size": 2, "data": [
                {"id": 1, "text": "a", "noise": 0},
                {"id": 2, "text": "b", "noise": 0},
                {"id": 3, "text": "c", "noise": 0},
            ]},
        },
        {"name": "keep", "component": "keep_columns", "params": {"columns": ["id", "text"]}},
    ],
}


@pytest.fixture(autouse=True)
def _core_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only core's plugin, and a console wide enough that messages are not wrapped."""
    monkeypatch.setenv("FASTDISTILL_LOAD_PLUGINS", "")
    monkeypatch.setenv("COLUMNS", "240")


@pytest.fixture
def doc_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(DOC, sort_keys=False))
    return path


def flat(text: str) -> str:
    return " ".join(text.split())


def test_plugins_json_lists_core_with_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    plugins = json.loads(capsys.readouterr().out)
    assert isinstance(plugins, list) and plugins[0]["name"] == "core"
    core = plugins[0]
    assert core["distribution"] == "fastdistill-core"
    assert core["version"] == metadata.version("fastdistill-core")
    assert core["error"] is None
    assert "register_steps" in core["hooks"] and "register_engines" in core["hooks"]
    components = {(c["kind"], c["name"]) for c in core["components"]}
    assert {("step", "load_from_dicts"), ("step", "keep_columns"), ("engine", "local"),
            ("transport", "memory"), ("transport", "filesystem"),
            ("placement", "cpu")} <= components


def test_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "fastdistill-core" in out and "load_from_dicts" in out


def test_version_lists_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert f"fastdistill-core {metadata.version('fastdistill-core')}" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: fastdistill" in capsys.readouterr().out


def test_inspect_validates_and_shows_steps(
    doc_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(doc_path)]) == 0
    out = capsys.readouterr().out
    assert "pipeline tiny: valid, 2 steps" in out
    assert "load (load_from_dicts) after: -" in out
    assert "keep (keep_columns) after: load" in out


def test_inspect_reports_an_invalid_pipeline(
    doc_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(doc_path), "--param", "keep.columns=[id, missing]"]) == 1
    err = flat(capsys.readouterr().err)
    assert "error:" in err and "'keep'" in err and "'missing'" in err


def test_run_writes_the_dataset_and_reports(
    doc_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["run", str(doc_path), "--param", "keep.columns=[id]", "--output", str(out),
                 "--quiet", "--json"])
    assert code == 0
    stdout = capsys.readouterr().out
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["kept"] == 3 and summary["rejected"] == 0 and summary["cancelled"] is False
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert rows == [{"id": 1}, {"id": 2}, {"id": 3}]  # --param overrode the document
    assert (out / "rejected.jsonl").read_text() == ""
    assert sorted(p.name for p in (out / "manifests").iterdir()) == ["keep.json", "load.json"]
    quality = json.loads((out / "quality_report.json").read_text())
    assert quality["run_id"] == summary["run_id"] and quality["keep_rate"] == 1.0
    assert json.loads((out / "timing_report.json").read_text())["run_id"] == summary["run_id"]
    saved = yaml.safe_load((out / "pipeline.yaml").read_text())
    assert saved["steps"][1]["params"]["columns"] == ["id"]


def test_run_with_limit_and_filesystem_transport(
    doc_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(doc_path), "-o", str(out), "-n", "2", "-q", "--transport",
                 "filesystem"]) == 0
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert rows == [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}]


def test_report_summarises_a_finished_run(
    doc_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["run", str(doc_path), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "keep rate" in text and "100.0%" in text
    assert "load" in text and "keep" in text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "{tmp}/missing.yaml"], ["missing.yaml", "does not exist"]),
        (["inspect", "{tmp}/missing.yaml"], ["missing.yaml", "does not exist"]),
        (["run", "{doc}", "--param", "keep.colums=[id]"], ["'keep.colums'", "'columns'"]),
        (["run", "{doc}", "--param", "nonsense"], ["'nonsense'", "step.key=value"]),
        (["run", "{doc}", "--engine", "rocket"], ["unknown engine 'rocket'"]),
        (["run", "{doc}", "--transport", "memroy"], ["'memroy'", "Did you mean 'memory'"]),
        (["report", "{tmp}"], ["quality_report.json"]),
    ],
)
def test_errors_exit_1_with_a_message_naming_the_problem(
    doc_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    argv: list[str], expected: list[str],
) -> None:
    args = [a.format(tmp=tmp_path, doc=doc_path) for a in argv]
    if args[0] == "run":
        args += ["--output", str(tmp_path / "out"), "--quiet"]
    assert main(args) == 1
    err = flat(capsys.readouterr().err)
    assert err.startswith("error:")
    for part in expected:
        assert part in err


def test_unknown_component_in_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {**DOC, "steps": [DOC["steps"][0], {**DOC["steps"][1], "component": "keep_colums"}]}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["run", str(path), "-o", str(tmp_path / "out"), "-q"]) == 1
    err = flat(capsys.readouterr().err)
    assert "'keep_colums'" in err and "Did you mean 'keep_columns'" in err and "typo.yaml" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_runs_show_says_interrupted_for_a_killed_run(tmp_path, capsys) -> None:
    import json
    import socket
    import subprocess
    import sys

    from fastdistill.cli import main

    run_dir = tmp_path / "runs" / "killed"
    (run_dir / ".fastdistill").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = {"pipeline": "killed", "status": "running", "pid": dead.pid,
             "host": socket.gethostname(), "step_signatures": {}}
    (run_dir / ".fastdistill" / "state.json").write_text(json.dumps(state))
    assert main(["runs", "show", "killed", "--root", str(tmp_path / "runs"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "interrupted"


def test_summary_counts_teacher_calls_with_and_without_the_cache(tmp_path: Path) -> None:
    from typing import Any

    from fastdistill import Pipeline
    from fastdistill.builtins.steps import LoadFromDicts
    from fastdistill.cli.display import teacher_rows
    from fastdistill.testing import ScriptedLLM
    from llm_helpers import Ask

    def rows_of(result: Any) -> dict[str, str]:
        return dict(teacher_rows(result.timing, reused=False))

    data = [{"id": i, "q": f"q{i % 3}"} for i in range(6)]  # 3 distinct questions
    llm = ScriptedLLM(script=lambda m: "ok")
    pipe = Pipeline("asks", LoadFromDicts(data=data) >> Ask(llm=llm))
    cached = pipe.run(tmp_path / "a", llm_cache=tmp_path / "c.sqlite")
    calls = llm.calls
    assert rows_of(cached) == {"teacher calls": str(calls), "llm cache hits": str(6 - calls)}
    again = pipe.run(tmp_path / "b", llm_cache=tmp_path / "c.sqlite")
    assert rows_of(again) == {"teacher calls": "0", "llm cache hits": "6"}
    before = llm.calls
    uncached = pipe.run(tmp_path / "c", llm_cache=False)
    assert llm.calls - before == 6 and rows_of(uncached) == {"teacher calls": "6"}
    assert dict(teacher_rows({}, reused=True)) == {
        "teacher calls": "0 now (finished run reused; reports are of that run)"}
