"""A resolved (method, path) is remembered: the same answer, per method, bounded."""

from __future__ import annotations

from aonode.errors import MethodNotAllowed
from aonode.http import routing
from aonode.http.routes import ROUTES
from aonode.http.routing import resolve

PID = "B" * 43


def test_a_path_resolves_the_same_the_second_time() -> None:
    for method, path in (
        ("POST", "/~scheduler@1.0/schedule"),
        ("POST", f"/{PID}/schedule"),
        ("GET", f"/{PID}/schedule"),
        ("GET", f"/{PID}~process@1.0/compute&slot=3"),
    ):
        first, again = resolve(ROUTES, method, path), resolve(ROUTES, method, path)
        assert first.route is not None and again.route is first.route
        assert again.match == first.match and again.surface == first.surface


def test_methods_are_remembered_apart_and_errors_not_at_all() -> None:
    path = f"/{PID}~process@1.0/compute"
    assert resolve(ROUTES, "GET", path).route is not None
    for _ in range(2):  # a 405 each time, never the GET route remembered for this path
        found = resolve(ROUTES, "DELETE", path)
        assert found.route is None and isinstance(found.error, MethodNotAllowed)


def test_the_memory_is_bounded() -> None:
    for i in range(routing._RESOLVED_KEPT + 10):
        assert resolve(ROUTES, "GET", f"/results/p{i}").route is not None
    remembered = routing._index(ROUTES).resolved
    assert 0 < len(remembered) <= routing._RESOLVED_KEPT
    assert ("GET", f"/results/p{routing._RESOLVED_KEPT + 9}") in remembered
