"""docs/architecture.md's recipe "add a route", followed once.

A toy ``~hello@1.0/greet`` route is declared as one more :class:`Route` in front
of the node's table and served by a real node over HTTP: it answers, its
errors come out through the one response mapper (a 404 and a 405 with
``Allow``, shaped like every native error), and the node's own routes still answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from aonode.errors import NotFound
from aonode.http.app import App
from aonode.http.inprocess import asgi_exchange
from aonode.http.request import Request
from aonode.http.responses import Response, json_response
from aonode.http.routes import ROUTES
from aonode.http.routing import Match, Route
from aonode.node import Node
from aonode.services import Services


async def greet(svc: Services, request: Request, m: Match) -> Response:
    """The toy handler: it reads the node through its services, like every handler."""
    name = request.query.get("name", "")
    if not name:
        raise NotFound("whom? give name=…", code="nobody")
    return json_response({"hello": name, "node": svc.identity.address})


async def test_a_route_added_as_the_recipe_says_is_served_beside_the_nodes(
    make_node: Callable[..., Awaitable[Node]],
) -> None:
    node = await make_node()
    app = App(node.services(), routes=(Route(("GET",), "/~hello@1.0/greet", greet), *ROUTES))

    async def call(method: str, target: str) -> tuple[int, dict[str, str], Any]:
        status, headers, body = await asgi_exchange(app, method, target, [], b"")
        return status, headers, orjson.loads(body)

    status, _, doc = await call("GET", "/~hello@1.0/greet?name=ao")
    assert status == 200 and doc == {"hello": "ao", "node": node.address}
    status, _, doc = await call("GET", "/~hello@1.0/greet")
    assert status == 404 and doc["error"]["code"] == "nobody"
    status, headers, _ = await call("POST", "/~hello@1.0/greet")
    assert status == 405 and headers["allow"] == "GET"
    status, _, doc = await call("GET", "/~scheduler@1.0/status")  # the node's table still serves
    assert status == 200 and doc["address"] == node.address
