"""Failed deliveries to other nodes: one WARNING each, counted, and visible.

Real nodes on 127.0.0.1: a second node that does not know the target (404),
a target no node is known to schedule (no route), and a node that is down
(its port closed: unreachable).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aonode import wallet as wallet_mod
from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message
from tests.process.test_device_http import spawn_lua
from tests.push_helpers import deliveries, nodes, schedule_of, until

ANS = {"content-type": "application/ans104"}


def url_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def warnings(caplog: pytest.LogCaptureFixture, pid: str, slot: int) -> list[str]:
    """The WARNING lines about ``pid``'s ``slot``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aonode.push"
        and r.levelno == logging.WARNING
        and r.getMessage().startswith(f"push of {pid} slot {slot} ")
    ]


async def post(ln: LiveNode, user: Wallet, pid: str, code: str, **params: str) -> dict[str, object]:
    m = sign_message(user, pid, data=code.encode(), action="Eval")
    r = await ln.client.post(
        f"/{pid}~process@1.0/push", content=m.item.raw, headers=ANS, params=params
    )
    assert r.status_code in (200, 202), r.text
    doc: dict[str, object] = r.json()
    return doc


async def failed_total(ln: LiveNode, reason: str) -> float:
    text = (await ln.client.get("/metrics")).text
    line = f'aonode_push_failed_total{{reason="{reason}"}} '
    (value,) = [row[len(line) :] for row in text.splitlines() if row.startswith(line)]
    return float(value)


async def test_refused_and_unrouted_deliveries_are_reported_once_and_shown(
    tmp_path: Path, user_wallet: Wallet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aonode.push")
    w1, w2 = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    p2 = free_port("127.0.0.1")
    ghost, nobody = "g" * 43, "x" * 43  # ghost: sent to node 2, which does not know it
    async with nodes(tmp_path) as serve_at:
        n2 = await serve_at("n2", w2, p2)
        b = await spawn_lua(n2, user_wallet)
        n1 = await serve_at(
            "n1", w1, free_port("127.0.0.1"), scheduler_map={ghost: url_of(p2), b: url_of(p2)}
        )
        a = await spawn_lua(n1, user_wallet)
        code = "".join(f"Send({{ Target = '{t}', Action = 'Hi' }})\n" for t in (nobody, ghost, b))
        tree = await post(n1, user_wallet, a, code)
        slot = tree["slot"]
        assert isinstance(slot, int)
        # the push answer says which entries failed, and why
        first, second, third = tree["1"], tree["2"], tree["3"]
        assert isinstance(first, dict) and isinstance(second, dict) and isinstance(third, dict)
        assert first["failure"] == "no-route" and first["status"] == 404
        assert second["failure"] == "not-found" and second["status"] == 404
        assert second["node"] == url_of(p2)
        assert "failure" not in third and third["node"] == url_of(p2)
        assert deliveries(await schedule_of(n2.client, b)) == [(a, str(slot), "3")]
        # one WARNING per failed entry, naming process, slot, outbox index and reason
        lines = warnings(caplog, a, slot)
        assert len(lines) == 2, lines
        assert f"outbox 1 to {nobody} failed (no-route)" in lines[0]
        assert f"outbox 2 to {ghost} failed (not-found)" in lines[1]
        # pushing the slot again retries, but reports nothing twice
        again = (await n1.client.post(f"/{a}~process@1.0/push", params={"slot": slot})).json()
        assert again["2"]["failure"] == "not-found"
        assert len(warnings(caplog, a, slot)) == 2
        assert await failed_total(n1, "no-route") == 1
        assert await failed_total(n1, "not-found") == 1
        assert await failed_total(n1, "unreachable") == 0
        # the dashboard's figure
        shown = (await n1.client.get("/~dashboard/state")).json()["push-failures"]
        assert shown["open"] == 2
        assert sorted(f["outbox-index"] for f in shown["recent"]) == [1, 2]
        # where a legacy client reads the result
        message_id = tree["id"]
        raw = (await n1.client.get(f"/result/{message_id}", params={"process-id": a})).json()
        assert [(f["outbox-index"], f["reason"]) for f in raw["PushFailures"]] == [
            (1, "no-route"),
            (2, "not-found"),
        ]
        # the records outlive the run: a restarted node still shows them, and does not re-warn
        await n1.close()
        n1 = await serve_at("n1", w1, free_port("127.0.0.1"), scheduler_map={ghost: url_of(p2)})
        await n1.client.post(f"/{a}~process@1.0/push", params={"slot": slot})
        assert len(warnings(caplog, a, slot)) == 2
        assert (await n1.client.get("/~dashboard/state")).json()["push-failures"]["open"] == 2


async def test_an_unreachable_node_is_reported_once_not_per_retry(
    tmp_path: Path, user_wallet: Wallet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aonode.push")
    w1, w2 = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    p2 = free_port("127.0.0.1")
    async with nodes(tmp_path) as serve_at:
        n2 = await serve_at("n2", w2, p2)
        c = await spawn_lua(n2, user_wallet)
        await n2.close()  # node 2's port is closed from here on
        n1 = await serve_at(
            "n1", w1, free_port("127.0.0.1"), scheduler_map={c: url_of(p2)}, push_retry_seconds=0.2
        )
        a = await spawn_lua(n1, user_wallet)
        send_c = f"Send({{ Target = '{c}', Action = 'Hi' }})"
        tree = await post(n1, user_wallet, a, send_c)
        entry = tree["1"]
        assert isinstance(entry, dict) and entry["failure"] == "unreachable"
        assert entry["attempts"] == n1.node.push_limits.remote_attempts
        assert len(warnings(caplog, a, int(str(tree["slot"])))) == 1  # not one per attempt
        # async: the job walks again and again while node 2 is down; one WARNING in all
        accepted = await post(n1, user_wallet, a, send_c, **{"push-mode": "async"})
        slot = int(str(accepted["slot"]))
        rewalk = f"async push of {a} slot {slot}: "

        async def walked_thrice() -> bool:
            return sum(r.getMessage().startswith(rewalk) for r in caplog.records) >= 3

        await until(walked_thrice, "three walks of the async push")
        assert len(warnings(caplog, a, slot)) == 1
        assert await failed_total(n1, "unreachable") == 2
        assert [f.reason for f in n1.node.pusher.failures.of_slot(a, slot)] == ["unreachable"]
        # node 2 comes back: the job delivers, and that failure is closed
        n2 = await serve_at("n2", w2, p2)

        async def done() -> bool:
            return n1.node.pusher.pending() == 0

        await until(done, "the pending push completed")
        assert deliveries(await schedule_of(n2.client, c)) == [(a, str(slot), "1")]
        assert n1.node.pusher.failures.of_slot(a, slot) == []
        shown = (await n1.client.get("/~dashboard/state")).json()["push-failures"]
        assert shown["open"] == 1  # the sync push's entry: it waits for the next push of its slot
        assert len(await n1.node.store.records("push-failure")) == 1
