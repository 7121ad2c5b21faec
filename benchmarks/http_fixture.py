"""Benchmark fixture: a minimal OpenAI-compatible chat-completions server on 127.0.0.1.

Every ``POST .../chat/completions`` is answered after a fixed delay (``--delay``, default
50 ms) with a small, valid completion; any other request gets 404.  HTTP/1.1 with keep-alive,
asyncio, stdlib only, so the server costs as little CPU as possible and the client's overhead
is what the benchmark sees.

  python http_fixture.py --delay 0.05 [--port 0]

Prints ``LISTENING <port>`` once it accepts connections; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if method == "POST" and path.endswith("/chat/completions"):
                await asyncio.sleep(delay)
                req = json.loads(body or b"{}")
                prompt = str((req.get("messages") or [{}])[-1].get("content", ""))
                payload = json.dumps({
                    "id": "bench", "object": "chat.completion", "model": req.get("model", "m"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "answer:" + prompt[:24]}}],
                    "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 2},
                }).encode()
                status = b"200 OK"
            else:
                payload, status = b'{"error": "not found"}', b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: handle(r, w, a.delay), "127.0.0.1", a.port,
                                        backlog=2048)
    port = server.sockets[0].getsockname()[1]
    print(f"LISTENING {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
