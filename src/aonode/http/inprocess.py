"""Requests to an ASGI app inside this process (no socket): the node calling itself.

``~cron@1.0`` fires through this, so a firing behaves exactly as the same
HTTP request from a client would, route for route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


async def asgi_request(
    app: ASGIApp, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, bytes]:
    """One request to an ASGI app in this process; (status, body)."""
    status, _, answer = await asgi_exchange(app, method, target, headers, body)
    return status, answer


async def asgi_exchange(
    app: ASGIApp, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """One request to an ASGI app in this process; (status, headers lowercased, body)."""
    split = urlsplit(target)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": split.path,
        "raw_path": split.path.encode(),
        "query_string": split.query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in headers]
        + [(b"content-length", str(len(body)).encode())],
        "client": None,
        "server": None,
    }
    sent = False
    status = 0
    answer_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(event: MutableMapping[str, Any]) -> None:
        nonlocal status
        if event["type"] == "http.response.start":
            status = int(event["status"])
            for key, value in event.get("headers", []):
                answer_headers[bytes(key).decode("latin-1").lower()] = bytes(value).decode(
                    "latin-1"
                )
        elif event["type"] == "http.response.body":
            chunks.append(bytes(event.get("body", b"")))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)
