"""Hostile requests to ``~cron@1.0``: each gets a 4xx JSON error and changes nothing.

For every case: the answer is a 4xx with a JSON error code, no cron task is
stored, the target process's schedule and state are as before once the timer
loop has passed a due moment, and the node still serves a normal request.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode
from aonode.codec.httpsig_sign import sign as httpsig_sign
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.process.test_device_http import send, spawn_lua
from tests.security.test_cron_authority import ANS, OP, TOKEN, settle, state_of

Live = Callable[..., Awaitable[LiveNode]]


@dataclass(frozen=True)
class Ctx:
    pid: str
    owner: Wallet
    stranger: Wallet


Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments


def item(wallet: Wallet, tags: list[tuple[str, str]], data: bytes = b"Pwned = 'yes'") -> bytes:
    return ans104.sign(wallet, data=data, tags=tags, anchor=os.urandom(32)).raw


def ans(body: bytes, **kw: Any) -> dict[str, Any]:
    return {"content": body, "headers": ANS, **kw}


def sched(c: Ctx) -> tuple[str, str]:
    return ("cron-path", f"/{c.pid}~process@1.0/schedule")


def _tampered(c: Ctx) -> Request:
    raw = bytearray(item(c.owner, [sched(c), ("Action", "Eval")]))
    raw[-1] ^= 1  # the data changes under the signature
    return "POST", "/~cron@1.0/once", ans(bytes(raw))


def _expired_httpsig(c: Ctx) -> Request:
    headers = httpsig_sign(
        c.owner, {"cron-path": f"/{c.pid}/schedule", "action": "Eval"}, created=1, expires=2
    )
    return "POST", "/~cron@1.0/once", {"headers": headers}


def _owner_spawn(c: Ctx) -> Request:
    tags = [sched(c), ("Type", "Process"), ("Scheduler", c.owner.address)]
    return "POST", "/~cron@1.0/once", ans(item(c.owner, tags))


def _replayed_with_new_query(c: Ctx) -> Request:
    body = item(c.owner, [("cron-path", "/~meta@1.0/info")])  # harmless, as signed
    query = {"cron-path": f"/{c.pid}/schedule", "Action": "Eval", "data": "Pwned = 'yes'"}
    return "POST", "/~cron@1.0/once", ans(body, params=query)


def _target_elsewhere(c: Ctx) -> Request:
    # the stranger owns no process: a target key pointing at the victim is refused
    tags = [("cron-path", "/~scheduler@1.0/schedule"), ("Action", "Eval")]
    raw = ans104.sign(c.stranger, data=b"x", tags=tags, target=b64url_decode(c.pid)).raw
    return "POST", "/~cron@1.0/once", ans(raw)


CASES: dict[str, tuple[Callable[[Ctx], Request], int, str]] = {
    "anonymous-json-from-process-eval": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {
                "json": {
                    **dict([sched(c)]),
                    "From-Process": c.owner.address,
                    "Action": "Eval",
                    "data": "Pwned = 'yes'",
                }
            },
        ),
        401,
        "unauthenticated",
    ),
    "anonymous-query": (
        lambda c: ("POST", "/~cron@1.0/every", {"params": {**dict([sched(c)]), "A": "b"}}),
        401,
        "unauthenticated",
    ),
    "wrong-bearer": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"params": dict([sched(c)]), "headers": {"authorization": "Bearer nope-nope"}},
        ),
        401,
        "unauthenticated",
    ),
    "empty-bearer": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"params": dict([sched(c)]), "headers": {"authorization": "Bearer"}},
        ),
        401,
        "unauthenticated",
    ),
    "basic-scheme": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"params": dict([sched(c)]), "headers": {"authorization": f"Basic {TOKEN}"}},
        ),
        401,
        "unauthenticated",
    ),
    "anonymous-stop": (
        lambda c: ("POST", "/~cron@1.0/stop", {"params": {"task": "x" * 43}}),
        401,
        "unauthenticated",
    ),
    "stranger-schedule-eval": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            ans(item(c.stranger, [sched(c), ("Action", "Eval")])),
        ),
        403,
        "not-process-owner",
    ),
    "stranger-push": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            ans(item(c.stranger, [("cron-path", f"/{c.pid}/push"), ("Action", "Eval")])),
        ),
        403,
        "not-process-owner",
    ),
    "stranger-legacy-post": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            ans(item(c.stranger, [("cron-path", f"/?process-id={c.pid}"), ("Action", "Eval")])),
        ),
        403,
        "not-process-owner",
    ),
    "stranger-target-key": (_target_elsewhere, 403, "not-process-owner"),
    "stranger-every": (
        lambda c: (
            "POST",
            "/~cron@1.0/every",
            ans(item(c.stranger, [sched(c), ("interval", "1-hour"), ("Action", "Eval")])),
        ),
        403,
        "not-process-owner",
    ),
    "owner-from-process": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            ans(item(c.owner, [sched(c), ("From-Process", c.stranger.address)])),
        ),
        400,
        "identity-key",
    ),
    "owner-from-lowercase": (
        lambda c: ("POST", "/~cron@1.0/once", ans(item(c.owner, [sched(c), ("from", "x")]))),
        400,
        "identity-key",
    ),
    "owner-pushed-from": (
        lambda c: ("POST", "/~cron@1.0/once", ans(item(c.owner, [sched(c), ("Pushed-From", "x")]))),
        400,
        "identity-key",
    ),
    "owner-underscore-spelling": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            ans(item(c.owner, [sched(c), ("From_Process", "x")])),
        ),
        400,
        "identity-key",
    ),
    "operator-owner-key": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"params": {**dict([sched(c)]), "Owner": c.owner.address}, "headers": OP},
        ),
        400,
        "identity-key",
    ),
    "operator-forged-cron-owner": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"json": {**dict([sched(c)]), "Cron-Owner": c.owner.address}, "headers": OP},
        ),
        400,
        "identity-key",
    ),
    "owner-spawn-via-node": (_owner_spawn, 400, "bad-message-type"),
    "huge-interval": (
        lambda c: (
            "POST",
            "/~cron@1.0/every",
            {
                "params": {**dict([sched(c)]), "interval": "100000000000000000000-days"},
                "headers": OP,
            },
        ),
        400,
        "bad-interval",
    ),
    "5000-digit-interval": (
        lambda c: (
            "POST",
            "/~cron@1.0/every",
            {"params": {**dict([sched(c)]), "interval": "9" * 5000 + "-days"}, "headers": OP},
        ),
        400,
        "bad-interval",
    ),
    "too-short-interval": (
        lambda c: (
            "POST",
            "/~cron@1.0/every",
            {"params": {**dict([sched(c)]), "interval": "1-millisecond"}, "headers": OP},
        ),
        400,
        "interval-too-short",
    ),
    "negative-delay": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"params": {**dict([sched(c)]), "delay": "-1-seconds"}, "headers": OP},
        ),
        400,
        "bad-delay",
    ),
    "exponent-interval": (
        lambda c: (
            "POST",
            "/~cron@1.0/every",
            {"params": {**dict([sched(c)]), "interval": "1e9-seconds"}, "headers": OP},
        ),
        400,
        "bad-interval",
    ),
    "cron-path-to-cron": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"params": {"cron-path": "/~cron@1.0/stop"}, "headers": OP},
        ),
        400,
        "bad-cron-path",
    ),
    "signed-body-unsigned-query": (_replayed_with_new_query, 400, "unsigned-parameter"),
    "tampered-signature": (_tampered, 400, "invalid-signature"),
    "expired-httpsig": (_expired_httpsig, 400, "signature-expired"),
    "key-with-space": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"json": {**dict([sched(c)]), "Bad Key": "x"}, "headers": OP},
        ),
        400,
        "bad-key",
    ),
    "too-many-keys": (
        lambda c: (
            "POST",
            "/~cron@1.0/once",
            {"json": {**dict([sched(c)]), **{f"K{i}": "v" for i in range(150)}}, "headers": OP},
        ),
        400,
        "too-many-keys",
    ),
    "json-array-body": (
        lambda c: ("POST", "/~cron@1.0/once", {"json": [sched(c)], "headers": OP}),
        400,
        "invalid-message",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_hostile_cron_request(live: Live, user_wallet: Wallet, name: str) -> None:
    make, status, code = CASES[name]
    ln = await live(operator_token=TOKEN, cron_min_interval_ms=10_000)
    pid = await spawn_lua(ln, user_wallet)
    await send(ln, user_wallet, pid, "X = 1")
    before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    ctx = Ctx(pid, user_wallet, wallet_mod.generate("ed25519"))
    method, path, kw = make(ctx)
    r = await ln.client.request(method, path, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code, r.text
    assert await ln.node.store.records("cron") == []  # nothing stored
    await settle(ln.node.cron, ln)  # a due moment passed (and a normal request was served)
    assert (await ln.client.get("/~meta@1.0/info")).status_code == 200
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == before
    assert await state_of(ln, user_wallet, pid, "X .. tostring(Pwned)") == "1nil"
