"""The node's HTTP surface: a bare ASGI application over the route table.

What a request meets, in order: the header-block limit, the unsigned-read
quota, the route (:mod:`aonode.http.routes`), its handler.  Any error on the
way leaves through the one mapper (:mod:`aonode.http.responses`), shaped for
the surface whose route it reached; a client error never produces a 5xx and
never changes state.  The app receives the node's :class:`Services`, never
the node.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from aonode.errors import HeadersTooLarge
from aonode.http.request import Receive, Request, Scope
from aonode.http.responses import Response, error_response, raw_target
from aonode.http.routes import ROUTES
from aonode.http.routing import Route, resolve
from aonode.quotas import BucketsFactory, Quotas
from aonode.services import Services

if TYPE_CHECKING:
    from aonode.config import NodeConfig

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def quotas_of(c: NodeConfig, *, buckets: BucketsFactory | None = None, workers: int = 1) -> Quotas:
    """The node's quotas from its configuration.  ``buckets``: where the buckets
    live (default: in this process); ``workers``: the OS processes serving the
    node, over which the dry-run total is split (each gets its ceiling share)."""
    return Quotas(
        messages=c.quota_messages,
        spawns=c.quota_spawns,
        stored_bytes=c.quota_store_bytes,
        reads=c.quota_reads,
        dryruns_per_client=c.dryruns_per_client,
        dryruns_total=math.ceil(c.dryruns_total / max(1, workers)),
        max_keys=c.quota_keys,
        buckets=buckets,
    )


class App:
    """ASGI callable serving one node's :class:`Services`."""

    def __init__(self, services: Services, routes: Sequence[Route] = ROUTES) -> None:
        """``routes`` is the route table (:data:`aonode.http.routes.ROUTES`); an
        embedder or a test may serve another (e.g. one more device's routes)."""
        self.services = services
        given = services.quotas
        self.quotas = given if given is not None else quotas_of(services.config)
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        config = self.services.config
        outside = scope.get("client") is not None  # None: the node calling itself
        request = Request.from_scope(
            scope,
            receive,
            config.max_body,
            quotas=self.quotas if outside else None,
            body_timeout=config.body_timeout,
        )
        found = resolve(self.routes, request.method, request.path)
        try:
            if (size := request.header_bytes) > config.max_header:
                raise HeadersTooLarge(
                    f"the header block is {size} bytes; at most {config.max_header}"
                )
            if outside and (request.method in ("GET", "HEAD") or request.path == "/graphql"):
                self.quotas.charge_read(request.client)  # unsigned reads (dry runs: later)
            if found.error is not None:
                raise found.error
            assert found.route is not None
            response = await found.route.handler(self.services, request, found.match)
        except Exception as exc:
            response = error_response(exc, found.surface, target=raw_target(scope))
        self.services.instruments.http_request(request.method, request.path, response.status)
        await _send(send, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


_CONTENT_TYPES: dict[str, tuple[bytes, bytes]] = {}  # the few content types, encoded once


async def _send(send: Send, response: Response) -> None:
    ctype = _CONTENT_TYPES.get(response.content_type)
    if ctype is None:
        ctype = (b"content-type", response.content_type.encode())
        if len(_CONTENT_TYPES) < 64:
            _CONTENT_TYPES[response.content_type] = ctype
    headers = [ctype, (b"content-length", b"%d" % len(response.body))]
    for k, v in response.headers:
        headers.append((k.encode(), v.encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
