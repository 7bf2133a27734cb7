"""The real ``hbsig`` client (HyperBEAM httpsig@1.0 / RFC 9421) against a live node.

hbsig signs an AO message as an HTTP request (keys as headers, data as the
body with ``content-digest``, one ``rsa-pss-sha512`` signature) and sends it
with its own ``send``.  The node must schedule it with hbsig's commitment id
(``rsaid``: sha256 of the signature) as the message id, interleave it with
ANS-104 messages on one hash chain, compute it like any aos message, keep it
re-verifiable (``aonode verify``), and refuse tampered variants with a 400
that changes nothing.

``@permaweb/aoconnect`` (0.0.98, pinned) in mainnet mode signs ANS-104, not
httpsig (API.md, "What AO clients send"; tests/interop/test_aoconnect.py), so
hbsig is the httpsig client here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aonode import wallet as wallet_mod
from aonode.ops.verify import verify_schedule
from aonode.scheduler.hashchain import verify_chain
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message
from tests.interop.conftest import RunNode

pytestmark = pytest.mark.interop

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}
SCHEDULE = "/$PID~process@1.0/schedule"


def _eval(code: str, **extra: str) -> dict[str, Any]:
    fields = {"Type": "Message", "Action": "Eval", "target": "$PID", **extra}
    return {"path": SCHEDULE, "fields": fields, "data": code}


async def _hbsig(
    run_node: RunNode, ln: LiveNode, client: Wallet, tmp_path: Path, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    jwk_path = tmp_path / "hbsig-client.json"
    wallet_mod.save(client, jwk_path)
    config = {"url": ln.url, "jwk_path": str(jwk_path), "steps": steps}
    # the node answers in this event loop: run the client off it
    out: dict[str, Any] = await asyncio.to_thread(run_node, "hbsig_flow.js", config)
    return out


async def test_hbsig_spawn_messages_interleave_and_verify(
    live: Live, run_node: RunNode, rsa_wallet: Wallet, tmp_path: Path
) -> None:
    ln = await live()
    spawn = {
        "path": "/~scheduler@1.0/schedule",
        "fields": {
            "Type": "Process",
            "Scheduler": ln.node.address,
            "Execution-Device": "lua@5.3a",
            "Data-Protocol": "ao",
        },
    }
    out = await _hbsig(
        run_node, ln, rsa_wallet, tmp_path, [spawn, _eval("X = 20"), _eval("X = X + 1")]
    )
    assert out["address"] == rsa_wallet.address
    steps = out["steps"]
    assert [s["status"] for s in steps] == [200, 200, 200], steps
    assert all(s["hbsig_verified"] for s in steps)
    pid = steps[0]["process"]
    assert pid == steps[0]["rsaid"]  # the process id is hbsig's commitment id

    # An ANS-104 message between the httpsig ones, then one more from hbsig.
    m = sign_message(rsa_wallet, pid, data=b"X = X * 2", action="Eval")
    r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
    assert r.status_code == 200 and r.json()["slot"] == 3, r.text
    step = _eval("return X")
    step["path"], step["fields"]["target"] = SCHEDULE.replace("$PID", pid), pid
    final = (await _hbsig(run_node, ln, rsa_wallet, tmp_path, [step]))["steps"][0]
    assert final["status"] == 200, final

    page = (await ln.client.get(f"/{pid}/schedule")).json()
    messages = [a["message"] for a in page["assignments"]]
    assert messages == [pid, steps[1]["rsaid"], steps[2]["rsaid"], m.id, final["rsaid"]]
    assert (
        verify_chain([(a["slot"], a["message"], a["hash-chain"]) for a in page["assignments"]])
        is None
    )
    assert [a["body"].get("codec") for a in page["assignments"]] == [
        "httpsig@1.0",
        "httpsig@1.0",
        "httpsig@1.0",
        None,
        "httpsig@1.0",
    ]

    aos = (await ln.client.get(f"/{pid}/schedule", params={"accept": "application/aos-2"})).json()
    first = aos["edges"][1]["node"]["message"]
    assert first["Id"] == steps[1]["rsaid"] and first["Owner"] == rsa_wallet.address
    assert first["Target"] == pid and first["Data"] == "X = 20"
    assert {"name": "Action", "value": "Eval"} in first["Tags"]

    r = await ln.client.get(f"/{pid}/compute", params={"slot": 4})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == "42"

    assert await verify_schedule(ln.url, pid) == (None, 5)
    assert await verify_schedule(str(ln.node.config.data_dir), pid) == (None, 5)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"action": "Transfer"}, "invalid-signature"),
        ({"signature-input": "http-sig-0=(garbage"}, "invalid-signature-input"),
        ({"action": None}, "missing-component"),
        (
            {"content-digest": "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"},
            "content-digest-mismatch",
        ),
    ],
)
async def test_tampered_hbsig_requests_change_nothing(
    live: Live,
    run_node: RunNode,
    rsa_wallet: Wallet,
    tmp_path: Path,
    tamper: dict[str, str | None],
    code: str,
) -> None:
    ln = await live()
    spawn = {
        "path": "/~scheduler@1.0/schedule",
        "fields": {"Type": "Process", "Scheduler": ln.node.address},
    }
    bad = _eval("X = 1") | {"tamper": tamper}
    out = await _hbsig(run_node, ln, rsa_wallet, tmp_path, [spawn, bad])
    spawned, refused = out["steps"]
    assert spawned["status"] == 200
    assert refused["status"] == 400, refused
    assert f'"code":"{code}"' in refused["response"].replace(" ", "")
    pid = spawned["process"]
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 0
    assert await ln.node.store.get_message(refused["rsaid"]) is None
