"""A fault-injecting HTTP proxy on 127.0.0.1, for tests against a real OpenAI-compatible server.

It forwards each ``POST`` to the upstream server (the real llama.cpp server of
:class:`fastdistill_llms.embedded.EmbeddedServer`) and, for the requests a test chooses,
misbehaves the way real providers and gateways do instead::

    with FaultProxy(upstream_base_url) as proxy:
        proxy.script = lambda body, seen: Fault.status(500) if seen == 0 else None

``script(body, seen)`` sees the JSON request body and how many earlier requests carried the same
last user message (0 on the first try), and returns a :class:`Fault` or ``None`` (forward as is).
Uniquely named (not ``conftest``) so tests can import it without clashing with other folders.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Fault:
    """One way to answer a request badly.

    :ivar kind: ``status`` (an HTTP error, not forwarded), ``truncated`` (forward, then cut the
        JSON body short), ``hang`` (send nothing for ``hang_s`` seconds), ``close`` (drop the
        connection without a response), ``rewrite`` (forward, then replace the message content
        and finish reason).
    """

    kind: str
    status_code: int = 500
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang_s: float = 30.0
    content: str | None = None
    finish_reason: str = "stop"

    @classmethod
    def status(cls, code: int, body: bytes = b"", **headers: str) -> Fault:
        """Answer ``code`` (e.g. 429 with ``Retry_After="1"``, or 500) without forwarding."""
        hdrs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
        return cls("status", status_code=code, headers=hdrs, body=body or b"injected fault")

    @classmethod
    def truncated(cls) -> Fault:
        """Forward, then send only the first half of the upstream JSON body (status 200)."""
        return cls("truncated")

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Send nothing for ``seconds`` (past the client's timeout), then close."""
        return cls("hang", hang_s=seconds)

    @classmethod
    def close(cls) -> Fault:
        """Close the connection without sending a response."""
        return cls("close")

    @classmethod
    def rewrite(cls, content: str | None, finish_reason: str = "stop") -> Fault:
        """Forward, then replace the answer's content and finish reason (e.g. empty output)."""
        return cls("rewrite", content=content, finish_reason=finish_reason)


def last_user(body: dict[str, Any]) -> str:
    """Content of the last user message of a request body ('' when there is none)."""
    users = [m for m in body.get("messages") or () if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


@dataclass
class FaultProxy:
    """The proxy: ``base_url`` (``http://127.0.0.1:PORT/v1``) once started; a context manager."""

    upstream: str
    script: Callable[[dict[str, Any], int], Fault | None] = lambda body, seen: None
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    base_url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> FaultProxy:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def reset(self, script: Callable[[dict[str, Any], int], Fault | None] | None = None) -> None:
        """Forget recorded requests and set a new script (``None``: forward everything)."""
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.script = script or (lambda body, seen: None)

    # ------------------------------------------------------------------ behaviour
    def decide(self, body: dict[str, Any]) -> Fault | None:
        """Record the request and ask the script what to do with it."""
        with self.lock:
            prompt = last_user(body)
            seen = sum(1 for b in self.requests if last_user(b) == prompt)
            self.requests.append(body)
            script = self.script
        fault = script(body, seen)
        if fault is not None:
            with self.lock:
                self.faults.append(fault.kind)
        return fault

    def forward(self, path: str, raw: bytes) -> tuple[int, bytes]:
        """Send the request upstream; returns status and body."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
        try:
            conn.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()


def _rewrite(payload: bytes, content: str | None, finish_reason: str) -> bytes:
    data = json.loads(payload)
    data["choices"][0]["message"]["content"] = content
    data["choices"][0]["finish_reason"] = finish_reason
    return json.dumps(data).encode()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: bytes, headers: tuple[tuple[str, str], ...] = ()):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            fault = proxy.decide(body)
            # the client may have given up (timeout): then there is nothing to answer
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(fault, raw)

        def _answer(self, fault: Fault | None, raw: bytes) -> None:
            if fault is None:
                self._send(*proxy.forward(self.path, raw))
            elif fault.kind == "status":
                self._send(fault.status_code, fault.body, fault.headers)
            elif fault.kind == "truncated":
                status, payload = proxy.forward(self.path, raw)
                self._send(status, payload[: max(1, len(payload) // 2)])
            elif fault.kind == "rewrite":
                status, payload = proxy.forward(self.path, raw)
                self._send(status, _rewrite(payload, fault.content, fault.finish_reason))
            elif fault.kind == "hang":
                deadline = time.monotonic() + fault.hang_s
                while time.monotonic() < deadline and not proxy.stopping.wait(0.05):
                    pass
                self._drop()
            elif fault.kind == "close":
                self._drop()
            else:  # pragma: no cover - a typo in a test
                raise ValueError(f"unknown fault kind {fault.kind!r}")

        def _drop(self) -> None:
            """Close the connection without a response."""
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
