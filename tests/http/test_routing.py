"""Route lookup: the shape-indexed ``resolve`` finds what a plain scan of the table finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aonode.errors import MethodNotAllowed
from aonode.http.routes import ROUTES
from aonode.http.routing import Found, Route, canonical, resolve

PID = "A" * 43
WORDS = sorted(
    {s for r in ROUTES for s in r.segments if not s.startswith("{")}
    | {"latest", "as", "compute=3", "x&slot=2", "", "-" * 43}
)
segment = st.one_of(
    st.sampled_from(WORDS),
    st.just(PID),
    st.text("abcXYZ09_-~@.=&", max_size=45),
    st.sampled_from([f"{PID}~process@1.0", f"{PID}~scheduler@1.0", "~process@1.0"]),
)


def scan(routes: tuple[Route, ...], method: str, path: str) -> tuple[object, ...]:
    """The table tried in order, every route (what resolve must agree with)."""
    parts, params = canonical(path)
    allowed: list[str] = []
    for route in routes:
        got = route.match(parts)
        if got is None:
            continue
        if method in route.methods:
            return ("route", route, got[0], got[1], params)
        allowed += [m for m in route.methods if m not in allowed]
    return ("405", tuple(allowed)) if allowed else ("404",)


def outcome(found: Found) -> tuple[object, ...]:
    if found.route is not None:
        m = found.match
        return ("route", found.route, m.names, m.rest, m.params)
    if isinstance(found.error, MethodNotAllowed):
        return ("405", found.error.allow)
    return ("404",)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["GET", "POST", "PUT"]), st.lists(segment, max_size=6))
def test_resolve_agrees_with_a_plain_scan(method: str, segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    assert outcome(resolve(ROUTES, method, path)) == scan(ROUTES, method, path)


def test_the_schedule_routes_resolve() -> None:
    found = resolve(ROUTES, "POST", f"/{PID}~process@1.0/schedule")
    assert found.route is not None and found.match.names == {"pid": PID}
    found = resolve(ROUTES, "DELETE", "/~scheduler@1.0/schedule")
    assert isinstance(found.error, MethodNotAllowed) and "POST" in found.error.allow
