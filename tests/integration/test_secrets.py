"""Secrets never reach a file: plant an API key, run a real pipeline, scan everything written.

The key is planted in ``OPENAI_API_KEY``; ``openai_compat`` reads it (by variable *name*) and sends
it to a fake OpenAI-compatible server on 127.0.0.1, which checks that it did arrive.  The pipeline
is saved, run with ``Pipeline.run`` and with the CLI (logging at DEBUG), answers go through the
LLM response cache in a temporary ``FASTDISTILL_CACHE_DIR``, and then every file under the test's
temporary folder (outputs incl. hidden files, cache, saved document, temp files, captured logs,
stdout and stderr) is scanned for the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Pipeline, Registry
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.cache import LLMResponseCache
from fastdistill.cli import main

pytest.importorskip("fastdistill_llms", reason="needs fastdistill-llms")
pytest.importorskip("fastdistill_steps", reason="needs fastdistill-steps")

KEY = "sk-test-PLANTED-9f3c1a7e5b2d4c6e8a0b1c2d3e4f5a6b"
NEEDLES = (KEY, KEY[len("sk-test-"):], "9f3c1a7e5b2d4c6e8a0b")


class FakeOpenAI(ThreadingHTTPServer):
    """``POST /v1/chat/completions`` answers ``ANSWER: <prompt>``; a prompt with FAIL gets 400."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.auth: list[str] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            self.server.auth.append(self.headers.get("Authorization", ""))
        prompt = str(body["messages"][-1]["content"])
        if "FAIL" in prompt:
            status, reply = 400, {"error": {"message": "this prompt is refused"}}
        else:
            status, reply = 200, {
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"ANSWER: {prompt}"}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3},
            }
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """Key planted; cwd, HOME, temp files, cache and a DEBUG log file all under ``tmp_path``."""
    dirs = {name: tmp_path / name for name in ("home", "tmp", "cache", "work", "logs")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("HOME", str(dirs["home"]))
    monkeypatch.setenv("TMPDIR", str(dirs["tmp"]))
    monkeypatch.setenv("FASTDISTILL_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.setattr(tempfile, "tempdir", str(dirs["tmp"]))
    monkeypatch.chdir(dirs["work"])
    handler = logging.FileHandler(dirs["logs"] / "debug.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    root = logging.getLogger()
    names = ("", "fastdistill", "aiohttp", "aiohttp.client", "aiohttp.internal")
    levels = {n: logging.getLogger(n).level for n in names}
    root.addHandler(handler)
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    try:
        yield {**dirs, "root": tmp_path}
    finally:
        root.removeHandler(handler)
        handler.close()
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def build(base_url: str) -> Pipeline:
    from fastdistill_llms.openai_compat import OpenAICompatLLM
    from fastdistill_llms.text_generation import TextGeneration
    from fastdistill_steps.canonical import Canonicalize, ComputeHash

    rows = [{"id": i, "question": f"  question   {i} "} for i in range(6)]
    rows.append({"id": 99, "question": "please FAIL"})
    teacher = TextGeneration(
        name="teacher",
        template="Q: {question}",
        system_prompt="Answer briefly.",
        llm=OpenAICompatLLM(base_url=base_url, model="fake-teacher", max_retries=0,
                            api_key_env="OPENAI_API_KEY"),
    )
    return Pipeline(
        "secrets",
        LoadFromDicts(name="load", data=rows, batch_size=3)
        >> Canonicalize(name="clean", fields=["question"])
        >> ComputeHash(name="hash", fields=["question"])
        >> teacher
        >> KeepColumns(name="keep", columns=["sample_id", "question", "generation"]),
    )


def scan(root: Path) -> tuple[list[Path], list[str]]:
    """Every file under ``root`` (hidden ones too), and those containing a needle."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    leaks = [f"{p}: {n!r}" for p in files for n in NEEDLES if n.encode() in p.read_bytes()]
    return files, leaks


def test_a_planted_api_key_is_never_written(
    sandbox: dict[str, Path], fake_openai: FakeOpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    registry = Registry()
    pipeline = build(fake_openai.base_url)

    doc = pipeline.save(sandbox["work"] / "pipeline.yaml", registry)
    result = pipeline.run(sandbox["work"] / "out-api", registry=registry)
    assert result.kept == 6 and result.rejected == 1

    # the response cache, with the very model that holds the key at run time
    llm = pipeline.steps["teacher"].llm  # type: ignore[attr-defined]
    llm.load()
    cache = LLMResponseCache()  # $FASTDISTILL_CACHE_DIR/llm_responses.sqlite

    async def ask_twice() -> list[Any]:
        messages = [{"role": "user", "content": "cached question"}]
        return [await cache.get_or_generate(llm, messages) for _ in range(2)]

    first, second = asyncio.run(ask_twice())
    assert first.text == "ANSWER: cached question" and second.cached
    llm.unload()
    cache.close()
    assert (sandbox["cache"] / "llm_responses.sqlite").exists()

    code = main(["run", str(doc), "--output", str(sandbox["work"] / "out-cli"),
                 "--transport", "filesystem", "--json"])
    assert code == 0
    captured = capfd.readouterr()
    (sandbox["logs"] / "stdout.txt").write_text(captured.out, encoding="utf-8")
    (sandbox["logs"] / "stderr.txt").write_text(captured.err, encoding="utf-8")
    assert json.loads(captured.out.strip().splitlines()[-1])["kept"] == 6

    # the key really was used: every request carried it
    assert fake_openai.auth and set(fake_openai.auth) == {f"Bearer {KEY}"}
    for path in logging.getLogger().handlers:
        path.flush()

    files, leaks = scan(sandbox["root"])
    assert leaks == [], "\n".join(leaks)
    written = {p.name for p in files}
    assert {"pipeline.yaml", "dataset.jsonl", "rejected.jsonl", "llm_responses.sqlite",
            "debug.log", "stdout.txt", "stderr.txt"} <= written
    assert (sandbox["logs"] / "debug.log").stat().st_size > 0  # DEBUG logging did capture


def test_the_scan_finds_a_key_anywhere(tmp_path: Path) -> None:
    """The scanner itself: a key in a hidden, nested or binary file is found."""
    hidden = tmp_path / "out" / ".state" / ".ckpt"
    hidden.parent.mkdir(parents=True)
    hidden.write_bytes(b"\x00\x01" + KEY.encode() + b"\xff")
    (tmp_path / "clean.txt").write_text("nothing here")
    files, leaks = scan(tmp_path)
    assert len(files) == 2 and len(leaks) == len(NEEDLES) and str(hidden) in leaks[0]
