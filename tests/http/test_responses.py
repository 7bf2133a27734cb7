"""One error, one status and one set of headers on every surface (http/responses.py).

Native, legacy SU/CU, GraphQL, dashboard and cron routes differ only in the
body's shape their clients parse; status, ``Connection: close``,
``Retry-After`` and ``Allow`` come from the one table.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import httpx
import orjson
import pytest

from aonode import errors as e
from aonode.http.responses import TABLE, Surface, error_response
from aonode.quotas import Rate
from tests.conftest import LiveNode

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}
UNKNOWN = "u" * 43


def _message_of(r: httpx.Response) -> str:
    """The error's message in whichever shape the surface uses."""
    doc = r.json()
    if "errors" in doc:
        return str(doc["errors"][0]["message"])
    error = doc["error"]
    return str(error["message"] if isinstance(error, dict) else error)


@pytest.mark.parametrize("surface", list(Surface))
@pytest.mark.parametrize(
    "error",
    [
        e.PayloadTooLarge("big"),
        e.HeadersTooLarge("big"),
        e.RequestTimeout("slow"),
        e.QuotaExceeded("slow down", retry_after=7),
        e.TooManyTasks("too many", retry_after=60),
        e.Overloaded("full", retry_after=3),
        e.MethodNotAllowed("no", allow=("GET", "POST")),
        e.NotFound("gone", code="unknown-process"),
        e.NotOwner("elsewhere", location="http://owner.example/"),
    ],
)
def test_status_and_headers_do_not_depend_on_the_surface(
    error: e.AONodeError, surface: Surface
) -> None:
    native = error_response(error, target="/x?y=1")
    here = error_response(error, surface, target="/x?y=1")
    assert (here.status, here.headers) == (native.status, native.headers)
    assert error.message in here.body.decode()


def test_the_table_gives_the_headers_each_error_promises() -> None:
    def headers(error: e.AONodeError) -> dict[str, str]:
        return dict(error_response(error, target="/p").headers)

    for cls in (e.PayloadTooLarge, e.HeadersTooLarge, e.RequestTimeout):
        assert headers(cls("x"))["connection"] == "close"
    assert headers(e.QuotaExceeded("x", retry_after=7))["retry-after"] == "7"
    assert headers(e.MethodNotAllowed("x", allow=("GET", "POST")))["allow"] == "GET, POST"
    assert headers(e.NotOwner("x", location="http://o/"))["location"] == "http://o/p"
    assert all(status != 500 for cls, status, _ in TABLE if issubclass(cls, e.InputError))


def test_foreign_errors_become_client_errors_and_faults_stay_500() -> None:
    try:
        orjson.loads(b"{")
    except orjson.JSONDecodeError as exc:
        r = error_response(exc)
    assert r.status == 400 and orjson.loads(r.body)["error"]["code"] == "invalid-json"
    r = error_response(_bad_utf8())
    assert r.status == 400
    r = error_response(RuntimeError("secret detail"), Surface.LEGACY)
    assert r.status == 500 and b"secret" not in r.body


def _bad_utf8() -> Exception:
    try:
        b"\xff".decode()
    except UnicodeDecodeError as exc:
        return exc
    raise AssertionError("decoded")


async def test_oversized_bodies_are_413_with_close_on_native_and_legacy(live: Live) -> None:
    ln = await live(max_body=1024)
    body = os.urandom(4096)
    for path in ("/", "/~scheduler@1.0/schedule", "/graphql", "/~cron@1.0/once"):
        r = await ln.client.post(path, content=body, headers=ANS)
        assert r.status_code == 413, (path, r.text)
        assert r.headers["connection"] == "close", path  # POST / lacked it before
        assert "1024" in _message_of(r), path


async def test_a_read_quota_is_429_with_retry_after_on_every_surface(live: Live) -> None:
    ln = await live(quota_reads=Rate(1, 1 / 3600))
    assert (await ln.client.get("/timestamp")).status_code == 200  # the one token
    seen = {}
    for path in ("/~scheduler@1.0/status", "/timestamp", f"/{UNKNOWN}", "/metrics"):
        r = await ln.client.get(path)
        assert r.status_code == 429, (path, r.text)
        seen[path] = r.headers["retry-after"]
    assert len(set(seen.values())) == 1 and int(next(iter(seen.values()))) >= 1, seen
    r = await ln.client.post("/graphql", json={"query": '{ transaction(id: "x") { id } }'})
    assert r.status_code == 429 and r.headers["retry-after"] == seen["/timestamp"]
    assert r.json()["errors"][0]["message"]


async def test_wrong_methods_are_405_with_allow_on_every_surface(live: Live) -> None:
    ln = await live()
    for method, path, allow in (
        ("PUT", "/~scheduler@1.0/status", "GET"),  # native
        ("PUT", "/", "GET, POST"),  # legacy SU
        ("POST", f"/results/{UNKNOWN}", "GET"),  # legacy CU
        ("GET", "/graphql", "POST"),  # gateway
        ("POST", "/metrics", "GET"),  # dashboard
        ("GET", "/~cron@1.0/once", "POST"),  # cron
        ("DELETE", "/~scheduler@1.0/schedule", "GET, POST"),
    ):
        r = await ln.client.request(method, path)
        assert r.status_code == 405 and r.headers["allow"] == allow, (method, path, r.text)
        assert method in _message_of(r)


async def test_not_found_is_a_json_404_in_each_surface_shape(live: Live) -> None:
    ln = await live()
    r = await ln.client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no-such-route"
    r = await ln.client.get(f"/{UNKNOWN}/slot")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown-process"
    r = await ln.client.get(f"/{UNKNOWN}/latest")  # legacy: {"error": "text"}
    assert r.status_code == 404 and UNKNOWN in r.json()["error"]
    r = await ln.client.get(f"/results/{UNKNOWN}")
    assert r.status_code == 404 and isinstance(r.json()["error"], str)
    r = await ln.client.get(f"/results/{'x' * 10}")  # not an id: a 400, legacy-shaped
    assert r.status_code == 400 and isinstance(r.json()["error"], str)
