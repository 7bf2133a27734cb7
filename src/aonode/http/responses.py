"""Every error → its HTTP response, in one table, for every surface.

An error's status and extra headers come from :data:`TABLE` alone, whichever
surface raised it (native, legacy SU/CU, GraphQL, dashboard, cron); only the
body's shape belongs to the surface, because each one's clients parse their
own: native ``{"error": {"code", "message"}}``, legacy ``{"error": "text"}``,
GraphQL ``{"errors": [{"message"}]}``.  Foreign exceptions the routes meet
(a body that is not JSON or not UTF-8, a GraphQL document that does not
parse) are first translated into the node's own tree (:data:`FOREIGN`, the
httpx pattern: foreign errors are mapped at one seam).  Anything else is the
node's fault: a logged 500 that names no internals.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from graphql import GraphQLError

from aonode import errors as e

log = logging.getLogger("aonode.http")

JSON = "application/json"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(
    obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, orjson.dumps(obj), JSON, headers or [])


class Surface(enum.Enum):
    """Whose clients read the error body, and so its shape."""

    NATIVE = "native"
    LEGACY = "legacy"
    GRAPHQL = "graphql"


Headers = Callable[[Any], list[tuple[str, str]]]


def _none(_: e.AONodeError) -> list[tuple[str, str]]:
    return []


def _retry(error: Any) -> list[tuple[str, str]]:
    return [("retry-after", str(getattr(error, "retry_after", 1)))]


def _allow(error: Any) -> list[tuple[str, str]]:
    return [("allow", ", ".join(error.allow))] if error.allow else []


def _close(_: e.AONodeError) -> list[tuple[str, str]]:
    return [("connection", "close")]  # the body is left unread: the connection is not reused


# Most specific first: the first class an error is an instance of wins.
TABLE: tuple[tuple[type[e.AONodeError], int, Headers], ...] = (
    (e.PayloadTooLarge, 413, _close),
    (e.UnsupportedMediaType, 415, _none),
    (e.HeadersTooLarge, 431, _close),
    (e.RequestTimeout, 408, _close),
    (e.InputError, 400, _none),
    (e.Unauthenticated, 401, _none),
    (e.AccessDenied, 403, _none),
    (e.NotFound, 404, _none),
    (e.MethodNotAllowed, 405, _allow),
    (e.Conflict, 409, _none),
    (e.NotOwner, 307, _none),  # Location: see error_response (it needs the request's path)
    (e.TooManyTasks, 429, _retry),
    (e.Overloaded, 503, _retry),
    (e.QuotaExceeded, 429, _retry),
    (e.Expired, 503, _retry),
    (e.UploadTimeout, 504, _none),
    (e.RemoteError, 502, _none),
    (e.LeaseLost, 503, _retry),
    (e.StoreUnavailable, 503, _retry),
    (e.StoreError, 500, _none),
    (e.SchedulerError, 500, _none),
    (e.ConfigError, 500, _none),
)


def _not_json(exc: Exception) -> e.AONodeError:
    return e.InvalidMessage(f"body is not valid JSON: {exc}", code="invalid-json")


def _not_utf8(exc: Exception) -> e.AONodeError:
    return e.BadParameter(f"the request is not valid UTF-8: {exc}", code="bad-encoding")


def _bad_query(exc: Exception) -> e.AONodeError:
    return e.BadParameter(str(getattr(exc, "message", exc)), code="bad-query")


# Foreign exceptions the routes meet, translated into the node's tree first.
FOREIGN: tuple[tuple[type[Exception], Callable[[Exception], e.AONodeError]], ...] = (
    (orjson.JSONDecodeError, _not_json),
    (UnicodeDecodeError, _not_utf8),
    (GraphQLError, _bad_query),
)


def status_of(error: e.AONodeError) -> int:
    return next((status for cls, status, _ in TABLE if isinstance(error, cls)), 500)


def _headers_of(error: e.AONodeError) -> list[tuple[str, str]]:
    found = next((headers for cls, _, headers in TABLE if isinstance(error, cls)), _none)
    return found(error)


def as_node_error(exc: Exception) -> e.AONodeError | None:
    """``exc`` in the node's own tree; ``None`` for a fault of the node itself."""
    if isinstance(exc, e.AONodeError):
        return exc
    for cls, translate in FOREIGN:
        if isinstance(exc, cls):
            return translate(exc)
    return None


def body_of(surface: Surface, code: str, message: str) -> dict[str, Any]:
    if surface is Surface.LEGACY:
        return {"error": message}
    if surface is Surface.GRAPHQL:
        return {"errors": [{"message": message}]}
    return {"error": {"code": code, "message": message}}


def error_response(
    exc: Exception, surface: Surface = Surface.NATIVE, *, target: str | None = None
) -> Response:
    """The one response for ``exc`` on ``surface``.

    ``target`` is the request's path and query as sent: a :class:`NotOwner`
    sends the same request to the owner node (``Location``)."""
    error = as_node_error(exc)
    if error is None:
        log.error("unhandled error on %s", target or "a request", exc_info=exc)
        body = body_of(surface, "internal-error", "the node failed; see its log")
        return json_response(body, 500)
    status = status_of(error)
    headers = _headers_of(error)
    if isinstance(error, e.NotOwner) and target is not None:
        headers.append(("location", error.location.rstrip("/") + target))
    if status == 503 and not headers:
        headers.append(("retry-after", "1"))
    return json_response(body_of(surface, error.code, error.message), status, headers)


def raw_target(scope: MutableMapping[str, Any]) -> str:
    """The request's path and query as the client sent them (for ``Location``)."""
    raw = scope.get("raw_path") or quote(scope.get("path", "/")).encode()
    qs = scope.get("query_string", b"").decode("latin-1")
    path = raw.decode("latin-1")
    return f"{path}?{qs}" if qs else path
