"""How a path finds its route: patterns, HyperBEAM's path syntax, 404 and 405.

A pattern is a path of segments: a literal, ``{name}`` (a 43-character
base64url id), ``{name:any}`` (any one segment: the handler checks it) or, last,
``{*name}`` (the rest, possibly empty).  A HyperBEAM path is read in its
canonical form first: ``/{pid}~dev/...`` is the segments ``{pid}``, ``~dev``;
a bare ``/{pid}/key...`` (anything but the legacy ``/{pid}/latest``) means
``~process@1.0``; the segments after the device are HyperBEAM's ``key=value``
and ``key&k=v`` forms (``compute=3``, ``as=execution/compute&Tag=V``), whose
values become :attr:`Match.params`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aonode.errors import MethodNotAllowed, NotFound
from aonode.http.responses import Response, Surface

if TYPE_CHECKING:
    from aonode.http.request import Request
    from aonode.services import Services

ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
DEFAULT_DEVICE = "~process@1.0"


@dataclass(frozen=True, slots=True)
class Match:
    """What a pattern captured: named segments, the rest, and segment parameters."""

    names: dict[str, str] = field(default_factory=dict)
    rest: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.names[name]

    def get(self, name: str) -> str | None:
        return self.names.get(name)


Handler = Callable[["Services", "Request", Match], Awaitable[Response]]


def _split(pattern: str) -> tuple[str, ...]:
    out: list[str] = []
    for segment in (p for p in pattern.split("/") if p):
        head, tilde, device = segment.partition("~")
        out += [head, "~" + device] if tilde and head else [segment]
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Route:
    """``methods`` on ``pattern`` → ``handler``; errors leave shaped for ``surface``."""

    methods: tuple[str, ...]
    pattern: str
    handler: Handler
    surface: Surface = Surface.NATIVE
    segments: tuple[str, ...] = field(init=False)
    # The pattern compiled once (resolve tries many routes per request): one
    # (kind, literal or name) step per segment, the segment count a pattern
    # without ``{*rest}`` needs (-1: any), and its literal first segment.
    _steps: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)
    _size: int = field(init=False, repr=False, compare=False)
    _first: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segments = _split(self.pattern)
        object.__setattr__(self, "segments", segments)
        steps = tuple(_step(s) for s in segments)
        object.__setattr__(self, "_steps", steps)
        open_ended = any(kind == _REST for kind, _ in steps)
        object.__setattr__(self, "_size", -1 if open_ended else len(segments))
        first = steps[0][1] if steps and steps[0][0] == _LITERAL else None
        object.__setattr__(self, "_first", first)

    def match(self, parts: Sequence[str]) -> tuple[dict[str, str], list[str]] | None:
        """(captured names, the rest) when ``parts`` fit the pattern, else ``None``."""
        if self._size >= 0 and len(parts) != self._size:
            return None
        names: dict[str, str] = {}
        for i, (kind, text) in enumerate(self._steps):
            if kind == _REST:
                return names, list(parts[i:])
            if i >= len(parts):
                return None
            got = parts[i]
            if kind == _LITERAL:
                if text != got:
                    return None
            elif kind == _ID and not ID_RE.match(got):
                return None
            else:
                names[text] = got
        return (names, []) if len(parts) == len(self._steps) else None

    def fits(self, shape: Sequence[str | int]) -> bool:
        """Whether a path of this :func:`_shape` matches the pattern (see ``_Index``)."""
        for i, (kind, text) in enumerate(self._steps):
            if kind == _REST:
                return True
            if i >= len(shape):
                return False
            if (kind == _LITERAL and shape[i] != text) or (kind == _ID and shape[i] != _IS_ID):
                return False
        return len(shape) == len(self._steps)

    def capture(self, parts: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """What :meth:`match` returns, for ``parts`` known to fit (no checks)."""
        names: dict[str, str] = {}
        for i, (kind, text) in enumerate(self._steps):
            if kind == _REST:
                return names, list(parts[i:])
            if kind != _LITERAL:
                names[text] = parts[i]
        return names, []


_LITERAL, _ID, _ANY, _REST = 0, 1, 2, 3
_IS_ID, _OTHER = 1, 0  # a path segment's shape when no pattern names it literally there


def _step(segment: str) -> tuple[int, str]:
    """A pattern segment as (kind, literal text or captured name)."""
    if segment.startswith("{*"):
        return _REST, segment[2:-1]
    if segment.startswith("{"):
        name, _, kind = segment[1:-1].partition(":")
        return (_ANY if kind == "any" else _ID), name
    return _LITERAL, segment


def parse_segments(rest: list[str]) -> tuple[list[str], dict[str, str]]:
    """``["compute&slot=3", "results"]`` → ``(["compute", "results"], {"slot": "3"})``."""
    keys: list[str] = []
    params: dict[str, str] = {}
    for segment in rest:
        head, *extra = segment.split("&")
        name, eq, value = head.partition("=")
        if eq:
            params[name.lower()] = value
        keys.append(name)
        for pair in extra:
            k, _, v = pair.partition("=")
            if k:
                params[k.lower()] = v
    return keys, params


def canonical(path: str) -> tuple[list[str], dict[str, str]]:
    """The path's segments in canonical form, and its segment parameters (module doc)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return parts, {}
    head, rest = parts[0], parts[1:]
    pid, tilde, device = head.partition("~")
    if tilde:
        front = [pid, "~" + device] if pid else [head]
    elif ID_RE.match(head) and rest and rest != ["latest"]:
        front = [head, DEFAULT_DEVICE]
    else:
        return parts, {}
    keys, params = parse_segments(rest)
    return front + [k for k in keys if k != "as"], params


class _Index:
    """A route table's matching routes by the path's *shape*, in table order.

    A path's shape keeps each segment that some pattern names literally at that
    position and reduces every other one to "an id" or "something else" (one
    regex each).  Whether a pattern matches depends on the shape alone, so the
    routes matching a shape are found once and cached (shapes are few: the
    table's words); ``resolve`` then only captures.  A table with a literal
    shaped like an id (which the shape could not tell apart) keeps the plain
    search: every route of the same first segment and length, tried in turn.
    """

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        words: list[set[str]] = []
        for route in routes:
            for i, (kind, text) in enumerate(route._steps):
                if kind == _LITERAL:
                    words += [set() for _ in range(i + 1 - len(words))]
                    words[i].add(text)
        self.words = tuple(frozenset(w) for w in words)
        self.shaped = not any(ID_RE.match(w) for ws in words for w in ws)
        self.found: dict[tuple[str | int, ...], tuple[Route, ...]] = {}
        # (method, path) -> its resolved route: a path is resolved once, then shared
        # by every request for it (nothing mutates a ``Found`` or its ``Match``)
        self.resolved: dict[tuple[str, str], Found] = {}

    def shape(self, parts: Sequence[str]) -> tuple[str | int, ...]:
        words, n = self.words, len(self.words)
        return tuple(
            p if i < n and p in words[i] else (_IS_ID if ID_RE.match(p) else _OTHER)
            for i, p in enumerate(parts)
        )

    def matching(self, parts: Sequence[str]) -> tuple[Route, ...] | None:
        """The routes whose pattern ``parts`` match, in table order (None: not shaped)."""
        if not self.shaped:
            return None
        key = self.shape(parts)
        found = self.found.get(key)
        if found is None:
            found = tuple(r for r in self.routes if r.fits(key))
            if len(self.found) < 1024:  # only absurdly varied paths are left uncached
                self.found[key] = found
        return found


_RESOLVED_KEPT = 4096  # (method, path) pairs whose route is remembered
_INDEXES: dict[int, _Index] = {}  # by id() of the routes tuple


def _index(routes: tuple[Route, ...]) -> _Index:
    index = _INDEXES.get(id(routes))
    if index is None or index.routes is not routes:
        index = _INDEXES[id(routes)] = _Index(routes)
    return index


@dataclass(frozen=True, slots=True)
class Found:
    """A resolved request: the route and what it captured, or the error to answer."""

    surface: Surface
    route: Route | None = None
    match: Match = field(default_factory=Match)
    error: Exception | None = None


def resolve(routes: tuple[Route, ...], method: str, path: str) -> Found:
    """The first route whose pattern and method fit; else 405 (pattern only) or 404."""
    index = _index(routes)
    known = index.resolved.get((method, path))
    if known is not None:
        return known
    parts, params = canonical(path)
    allowed: list[str] = []
    surface: Surface | None = None
    matching = index.matching(parts)
    for route in routes if matching is None else matching:
        got = route.match(parts) if matching is None else None
        if matching is None and got is None:
            continue
        if method in route.methods:
            if got is None:
                got = route.capture(parts)
            found = Found(route.surface, route, Match(got[0], got[1], params))
            if len(index.resolved) >= _RESOLVED_KEPT:
                index.resolved.clear()
            index.resolved[(method, path)] = found
            return found
        surface = surface or route.surface
        allowed += [m for m in route.methods if m not in allowed]
    if surface is not None:
        error: Exception = MethodNotAllowed(
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}", allow=tuple(allowed)
        )
        return Found(surface, error=error)
    return Found(Surface.NATIVE, error=NotFound(f"no route for {path}", code="no-such-route"))
