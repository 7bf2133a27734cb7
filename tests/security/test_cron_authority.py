"""Issue 19 part 1: the node signs only what it decided (DESIGN.md invariant 9).

The attack: an anonymous ``POST /~cron@1.0/once`` naming another user's
process, with ``From-Process=<its owner>`` and ``Action=Eval``.  Before the
fix the node signed the firing with the caller's tags copied in and aos, which
trusts the node as the process's Authority, ran the Eval as the owner.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.codec import ans104, jsonform
from aonode.codec.b64 import b64url_encode
from aonode.codec.httpsig_sign import sign as httpsig_sign
from aonode.cron.task import RunStatus
from aonode.cron.timer import Cron, CronPolicy
from aonode.push.ledger import delivery_tags
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.process.test_device_http import send, spawn_lua

Live = Callable[..., Awaitable[LiveNode]]
WAIT = 60.0
TOKEN = "op-token"
OP = {"authorization": f"Bearer {TOKEN}"}
ANS = {"content-type": "application/ans104"}


async def state_of(ln: LiveNode, owner: Wallet, pid: str, expr: str) -> str:
    """``expr`` evaluated in the process by its owner, at the latest slot."""
    slot = await send(ln, owner, pid, f"return tostring({expr})")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": slot})
    assert r.status_code == 200, r.text
    data: str = r.json()["results"]["data"]
    return data


async def settle(cron: Cron, ln: LiveNode) -> None:
    """Let the timer loop pass a due moment: a 0-delay operator task has fired."""
    seen: list[tuple[str, RunStatus]] = []
    cron.observe(lambda task, status: seen.append((task.id, status)))
    r = await ln.client.post(
        "/~cron@1.0/once",
        params={"cron-path": "/~meta@1.0/info"},
        headers=OP,
    )
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    await asyncio.wait_for(cron.wait_for(lambda: any(t == task for t, _ in seen)), WAIT)


async def test_anonymous_cron_cannot_eval_as_the_owner(live: Live, user_wallet: Wallet) -> None:
    ln = await live(operator_token=TOKEN)
    pid = await spawn_lua(ln, user_wallet)
    assert await state_of(ln, user_wallet, pid, "Pwned") == "nil"
    before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    r = await ln.client.post(
        "/~cron@1.0/once",
        json={
            "cron-path": f"/{pid}~process@1.0/schedule",
            "From-Process": user_wallet.address,
            "Action": "Eval",
            "data": "Pwned = 'yes'",
        },
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    await settle(ln.node.cron, ln)
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == before
    assert await state_of(ln, user_wallet, pid, "Pwned") == "nil"
    assert [t["cron-path"] for t in (await ln.client.get("/~cron@1.0/tasks")).json()] == [
        "/~meta@1.0/info"
    ]


# -- helpers ---------------------------------------------------------------


def signed(wallet: Wallet, tags: list[tuple[str, str]], *, data: bytes = b"") -> bytes:
    """A cron request's parameters as a signed ANS-104 item (the signer owns the task)."""
    return ans104.sign(wallet, data=data, tags=tags, anchor=os.urandom(32)).raw


async def create(ln: LiveNode, kind: str, body: bytes, **kw: Any) -> httpx.Response:
    return await ln.client.post(f"/~cron@1.0/{kind}", content=body, headers=ANS, **kw)


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


async def stored_tasks(ln: LiveNode) -> int:
    return len(await ln.node.store.records("cron"))


# -- who may create --------------------------------------------------------


async def test_the_owner_creates_and_the_firing_names_task_and_owner(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live(operator_token=TOKEN)
    runs: list[tuple[str, RunStatus]] = []
    ln.node.cron.observe(lambda task, status: runs.append((task.id, status)))
    pid = await spawn_lua(ln, user_wallet)
    path = ("cron-path", f"/{pid}~process@1.0/schedule")
    r = await create(ln, "once", signed(user_wallet, [path, ("Action", "Eval")], data=b"x=1"))
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    assert r.json()["owner"] == user_wallet.address
    await asyncio.wait_for(ln.node.cron.wait_for(lambda: any(t == task for t, _ in runs)), WAIT)
    page = (await ln.client.get(f"/{pid}/schedule", params={"from": 1})).json()
    body = page["assignments"][0]["body"]
    tags = {t["name"]: t["value"] for t in body["tags"]}
    assert tags["Cron-Task"] == task and tags["Cron-Owner"] == user_wallet.address
    assert not {"From-Process", "From", "Owner"} & set(tags)
    assert jsonform.from_json(body).owner_address == ln.node.address
    # aos takes From from the signer (the node), never from Cron-Owner
    assert await state_of(ln, user_wallet, pid, "x") == "nil"


async def test_a_stranger_may_not_message_someone_elses_process(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live(operator_token=TOKEN)
    pid = await spawn_lua(ln, user_wallet)
    stranger = wallet_mod.generate("ed25519")
    for tags in (
        [("cron-path", f"/{pid}~process@1.0/schedule"), ("Action", "Eval")],
        [("cron-path", f"/{pid}/push"), ("Action", "Eval")],
        [("cron-path", "/~scheduler@1.0/schedule"), ("target", pid), ("Action", "Eval")],
        [("cron-path", f"/?process-id={pid}"), ("Action", "Eval")],
        [("cron-path", f"/{b64url_encode(os.urandom(32))}/schedule"), ("Action", "X")],
    ):
        r = await create(ln, "once", signed(stranger, tags, data=b"Pwned = 'yes'"))
        assert r.status_code == 403, (tags, r.text)
        assert error_code(r) == "not-process-owner"
    r = await create(ln, "once", signed(stranger, [("cron-path", "/"), ("Action", "Eval")]))
    assert r.status_code == 403 and error_code(r) == "no-target-process"
    # a GET firing signs nothing: anyone signed may read on a timer
    r = await create(ln, "once", signed(stranger, [("cron-path", f"/{pid}/now")]))
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == stranger.address
    # the operator may send anywhere
    r = await ln.client.post(
        "/~cron@1.0/once",
        params={"cron-path": f"/{pid}/schedule", "Action": "Tick", "delay": "1-day"},
        headers=OP,
    )
    assert r.status_code == 200 and r.json()["owner"] == "operator"


@pytest.mark.parametrize(
    "key",
    [
        "From-Process",
        "from-process",
        "FROM",
        "Owner",
        "Pushed-From",
        "Pushed-For",
        "From-Slot",
        "From-Module",
        "Outbox-Index",
        "Forwarded-By",
        "Forwarded-For",
        "Cron-Task",
        "Cron-Owner",
        "From_Process",
    ],
)
async def test_identity_keys_are_refused(live: Live, user_wallet: Wallet, key: str) -> None:
    ln = await live(operator_token=TOKEN)
    pid = await spawn_lua(ln, user_wallet)
    tags = [("cron-path", f"/{pid}/schedule"), ("Action", "Tick"), (key, user_wallet.address)]
    r = await create(ln, "once", signed(user_wallet, tags))  # even the owner
    assert r.status_code == 400 and error_code(r) == "identity-key", r.text
    params = {"cron-path": f"/{pid}/schedule", key: "x"}
    r = await ln.client.post("/~cron@1.0/once", params=params, headers=OP)  # even the operator
    assert r.status_code == 400 and error_code(r) == "identity-key", r.text
    assert await stored_tasks(ln) == 0


async def test_operator_token_and_unsigned_parameters(live: Live, user_wallet: Wallet) -> None:
    ln = await live(operator_token=TOKEN)
    info = {"cron-path": "/~meta@1.0/info", "delay": "1-day"}
    for headers in ({}, {"authorization": "Bearer wrong-token"}, {"authorization": TOKEN}):
        r = await ln.client.post("/~cron@1.0/once", params=info, headers=headers)
        assert r.status_code == 401 and error_code(r) == "unauthenticated", headers
    r = await ln.client.post("/~cron@1.0/once", params=info, headers=OP)
    assert r.status_code == 200
    # a signed body with an unsigned query beside it: the query could be anyone's
    pid = await spawn_lua(ln, user_wallet)
    body = signed(user_wallet, [("cron-path", "/~meta@1.0/info")])
    r = await create(ln, "once", body, params={"cron-path": f"/{pid}/schedule", "A": "b"})
    assert r.status_code == 400 and error_code(r) == "unsigned-parameter"
    # no token configured: there is no operator, whatever is sent
    assert not Cron(ln.node.store, user_wallet, CronPolicy()).is_operator(TOKEN)
    assert not Cron(ln.node.store, user_wallet, CronPolicy()).is_operator("")


async def test_httpsig_signer_owns_and_stops(live: Live, user_wallet: Wallet) -> None:
    ln = await live(operator_token=TOKEN)
    headers = httpsig_sign(user_wallet, {"cron-path": "/~meta@1.0/info", "delay": "1-day"})
    r = await ln.client.post("/~cron@1.0/once", headers=headers)
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    assert r.json()["owner"] == user_wallet.address
    stranger = wallet_mod.generate("ed25519")
    r = await ln.client.post("/~cron@1.0/stop", headers=httpsig_sign(stranger, {"task": task}))
    assert r.status_code == 403 and error_code(r) == "not-task-owner"
    r = await ln.client.post("/~cron@1.0/stop", headers=httpsig_sign(user_wallet, {"task": task}))
    assert r.status_code == 200, r.text
    assert await stored_tasks(ln) == 0


# -- who may stop ----------------------------------------------------------


async def test_only_the_owner_or_the_operator_stops(live: Live, user_wallet: Wallet) -> None:
    ln = await live(operator_token=TOKEN)
    mine = [("cron-path", "/~meta@1.0/info"), ("delay", "1-day")]
    tasks = [(await create(ln, "once", signed(user_wallet, mine))).json()["task"] for _ in "ab"]
    stranger = wallet_mod.generate("ed25519")
    r = await ln.client.post("/~cron@1.0/stop", params={"task": tasks[0]})
    assert r.status_code == 401
    r = await create(ln, "stop", signed(stranger, [("task", tasks[0])]))
    assert r.status_code == 403 and error_code(r) == "not-task-owner"
    assert await stored_tasks(ln) == 2
    r = await create(ln, "stop", signed(user_wallet, [("task", tasks[0])]))
    assert r.status_code == 200 and r.json()["stopped"] is True
    r = await ln.client.post("/~cron@1.0/stop", params={"task": tasks[1]}, headers=OP)
    assert r.status_code == 200
    assert await stored_tasks(ln) == 0


# -- caps and bounds -------------------------------------------------------


async def test_caps_answer_429_with_retry_after(live: Live, user_wallet: Wallet) -> None:
    ln = await live(operator_token=TOKEN, cron_max_per_owner=2, cron_max_tasks=3)
    info = [("cron-path", "/~meta@1.0/info"), ("delay", "1-hour")]
    for _ in range(2):
        assert (await create(ln, "once", signed(user_wallet, info))).status_code == 200
    r = await create(ln, "once", signed(user_wallet, info))
    assert r.status_code == 429 and error_code(r) == "too-many-tasks"
    assert 1 <= int(r.headers["retry-after"]) <= 3600
    other = wallet_mod.generate("ed25519")
    assert (await create(ln, "once", signed(other, info))).status_code == 200
    r = await create(ln, "once", signed(wallet_mod.generate("ed25519"), info))
    assert r.status_code == 429 and "node" in r.json()["error"]["message"]
    r = await ln.client.post("/~cron@1.0/once", params=dict(info), headers=OP)
    assert r.status_code == 429  # the node cap holds for the operator too
    assert await stored_tasks(ln) == 3


async def test_a_cron_storm_is_capped_while_the_node_answers(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live(operator_token=TOKEN, cron_max_per_owner=5)
    info = [("cron-path", "/~meta@1.0/info"), ("delay", "1-hour")]
    bodies = [signed(user_wallet, info) for _ in range(40)]

    async def probe() -> list[int]:
        return [(await ln.client.get("/~meta@1.0/info")).status_code for _ in range(20)]

    storm = asyncio.gather(*(create(ln, "once", b) for b in bodies))
    answers, probes = await asyncio.gather(storm, probe())
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 5 + [429] * 35
    assert probes == [200] * 20
    assert await stored_tasks(ln) == 5


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"interval": "1-second"}, "interval-too-short"),
        ({"interval": "9999-milliseconds"}, "interval-too-short"),
        ({"interval": "100000000000000000000-days"}, "bad-interval"),
        ({"interval": "367-days"}, "bad-interval"),
        ({"interval": "1" * 5000 + "-days"}, "bad-interval"),
        ({"interval": "1-hour", "delay": "100000000000000000000-days"}, "bad-delay"),
    ],
)
async def test_durations_are_bounded(live: Live, params: dict[str, str], code: str) -> None:
    ln = await live(operator_token=TOKEN)  # the default 10 s minimum
    r = await ln.client.post(
        "/~cron@1.0/every", params={"cron-path": "/~meta@1.0/info", **params}, headers=OP
    )
    assert r.status_code == 400 and error_code(r) == code, r.text
    r = await ln.client.post(
        "/~cron@1.0/every",
        params={"cron-path": "/~meta@1.0/info", "interval": "10-seconds"},
        headers=OP,
    )
    assert r.status_code == 200


# -- the other place the node signs what others chose: outbox deliveries ----


def test_a_delivery_carries_no_sender_the_process_made_up() -> None:
    """An outbox entry's own tags follow the node's trace; none may name another
    sender (a receiving handler may trust the node's ``Cron-Owner``, say)."""
    sender, origin, victim = (b64url_encode(os.urandom(32)) for _ in range(3))
    forged = [
        "From-Process",
        "Pushed-From",
        "From-Slot",
        "Outbox-Index",
        "From",
        "Owner",
        "Pushed-For",
        "Forwarded-By",
        "Forwarded-For",
        "Cron-Task",
        "cron-owner",
    ]
    out = {
        "Target": victim,
        "Tags": [
            {"name": "From-Module", "value": "module-id"},  # aos's ao.send sets it
            *({"name": n, "value": victim} for n in forged),
            {"name": "Action", "value": "Ping"},
        ],
    }
    tags = delivery_tags(sender, 7, origin, 2, out)
    got = {n.lower(): v for n, v in tags}
    assert len(got) == len(tags)  # one value per key
    assert got["from-process"] == sender and got["pushed-from"] == origin
    assert got["from-slot"] == "7" and got["outbox-index"] == "2"
    for name in ("from", "owner", "pushed-for", "forwarded-by", "forwarded-for"):
        assert name not in got, name
    assert "cron-task" not in got and "cron-owner" not in got
    assert got["action"] == "Ping" and got["from-module"] == "module-id"


async def test_a_replayed_signed_request_makes_no_second_task(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live(operator_token=TOKEN)
    body = signed(user_wallet, [("cron-path", "/~meta@1.0/info"), ("delay", "1-day")])
    first = await create(ln, "once", body)
    again = await create(ln, "once", body)  # e.g. someone who saw it sends it again
    assert first.status_code == again.status_code == 200
    assert first.json()["task"] == again.json()["task"]
    assert await stored_tasks(ln) == 1
    r = await ln.client.post("/~cron@1.0/stop", params={"task": first.json()["task"]}, headers=OP)
    assert r.status_code == 200
    r = await create(ln, "once", body)  # stopped (or fired): the request is spent
    assert r.status_code == 409 and error_code(r) == "replayed-request"
    assert await stored_tasks(ln) == 0
    # a new signature of the same parameters is a new request
    fresh = signed(user_wallet, [("cron-path", "/~meta@1.0/info"), ("delay", "1-day")])
    assert (await create(ln, "once", fresh)).status_code == 200
