"""One event loop's HTTP client for :mod:`fastdistill_llms.openai_compat` (aiohttp).

:class:`HttpPool` owns an :class:`aiohttp.ClientSession` (keep-alive connections, at most
``limit`` of them) and the model's concurrency limit in that loop (an :class:`asyncio.Semaphore`
taken *before* a request's timeout starts, so waiting for a free slot never times a request out).
It is created lazily inside the running loop and closed in that loop (see
:class:`fastdistill_llms._runtime.ModelRuntime`); not thread-safe (one per loop).

aiohttp was chosen for its per-request CPU cost: ~0.15 ms against httpx's ~0.8 ms (httpcore ~0.5
ms), which on a small machine is the limit of requests per second (benchmark P2-HTTP).  Proxies
from the environment (``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``) are looked up once per pool,
not per request (aiohttp's ``trust_env`` would look them up, and read ``~/.netrc``, on a worker
thread for every request).

:func:`describe_error` turns a transport failure into a short, library-independent text
(``ConnectError: cannot connect to <url> ...``, ``RemoteProtocolError: ...``) that never holds
credentials from the URL.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Mapping
from typing import Any


def display_url(url: str) -> str:
    """``url`` without user info, query or fragment (safe to show in errors and logs)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def env_proxy(url: str) -> tuple[str | None, Any]:
    """The proxy (and its auth) the environment sets for ``url``, or ``(None, None)``.

    Same rules as aiohttp's ``trust_env`` (``*_PROXY`` variables, ``NO_PROXY``, proxy
    credentials from ``~/.netrc``), evaluated once.
    """
    import urllib.request  # ~8 ms; aiohttp imports it anyway

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in urllib.request.getproxies():
        return None, None
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:  # bypassed (NO_PROXY) or unsupported proxy scheme
        return None, None
    return str(proxy), auth


class HttpPool:
    """``limit`` concurrent requests over one keep-alive :class:`aiohttp.ClientSession`.

    Use (inside the loop that created it)::

        async with pool.slot():
            status, retry_after, body = await pool.post(url, raw_json)
    """

    def __init__(self, limit: int, headers: Mapping[str, str], url: str) -> None:
        import aiohttp

        # keep-alive (aiohttp's default idle time); exactly ``limit`` connections: with the
        # semaphore below in front, a request never queues inside the connector
        connector = aiohttp.TCPConnector(limit=limit)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers=dict(headers),
            # the caller times each attempt as a whole (asyncio.timeout); no second timer here
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            trust_env=False,  # proxies resolved once below, not per request
            raise_for_status=False,
        )
        self.proxy, self.proxy_auth = env_proxy(url)
        self.slots = asyncio.Semaphore(limit)

    def slot(self) -> asyncio.Semaphore:
        """The concurrency limit: ``async with pool.slot():`` around one attempt."""
        return self.slots

    async def post(self, url: str, data: bytes) -> tuple[int, str | None, bytes]:
        """POST ``data`` (JSON); the status, the ``Retry-After`` header and the whole body."""
        if self.proxy is None:
            ctx = self.session.post(url, data=data)
        else:
            ctx = self.session.post(url, data=data, proxy=self.proxy, proxy_auth=self.proxy_auth)
        async with ctx as resp:
            body = await resp.read()
            return resp.status, resp.headers.get("Retry-After"), body

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self.session.close()


def describe_error(exc: BaseException, url: str) -> str:
    """A short text for a failed attempt (no credentials, whatever the URL holds)."""
    import aiohttp

    where = display_url(url)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake ...
        return f"ConnectError: cannot connect to {where}: {exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"RemoteProtocolError: {where} closed the connection without a complete response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"RemoteProtocolError: incomplete response body from {where}: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):  # unparsable status line / headers
        return f"RemoteProtocolError: invalid HTTP response from {where}: {exc.message}"
    return f"{type(exc).__name__}: {exc} ({where})"
