"""arbundles against a live node: its items are scheduled, tampered ones refused,
and the node's assignment commitments verify in arbundles."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.interop.conftest import RunNode

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]


def _item(data: str, tags: list[tuple[str, str]], target: str = "") -> dict[str, Any]:
    return {
        "data": b64url_encode(data.encode()),
        "tags": [{"name": n, "value": v} for n, v in tags],
        "target": target,
        "anchor": "",
    }


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_arbundles_client_schedules_and_verifies_commitments(
    live: Live, run_node: RunNode, rsa_wallet: Wallet, ed_wallet: Wallet, kind: str
) -> None:
    # the node commits with both an RSA and an ed25519 wallet
    ln = await live(wallets=[rsa_wallet, ed_wallet])
    schedulers = f"{rsa_wallet.address},{ed_wallet.address}"
    proc_tags = [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.N.1"),
        ("Type", "Process"),
        ("Scheduler", schedulers),
    ]
    spawned = run_node(
        "arbundles_sign.js",
        {"signer": {"kind": f"{kind}-new"}, "items": [_item("1984", proc_tags)]},
    )
    proc_raw = b64url_decode(spawned["items"][0]["raw"])
    pid = spawned["items"][0]["id"]
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc_raw, headers=ANS)
    assert r.status_code == 200, r.text
    assert r.json()["process"] == pid and r.json()["slot"] == 0

    # messages from the same arbundles client, targeting the process
    jwk_path = ln.node.config.data_dir / f"client-{kind}.json"
    jwk_path.write_text(json.dumps(spawned["jwk"]))
    msg_tags = [("Data-Protocol", "ao"), ("Type", "Message"), ("Action", "Eval")]
    made = run_node(
        "arbundles_sign.js",
        {
            "signer": {"kind": f"{kind}-jwk", "jwk_path": str(jwk_path)},
            "items": [_item(f"X = {i}", msg_tags, target=pid) for i in range(3)],
        },
    )
    assignments = []
    for item in made["items"]:
        raw = b64url_decode(item["raw"])
        r = await ln.client.post(f"/{pid}~process@1.0/schedule", content=raw, headers=ANS)
        assert r.status_code == 200, r.text
        assert r.json()["message"] == item["id"]
        assignments.append(r.json())
    assert [a["slot"] for a in assignments] == [1, 2, 3]

    # a tampered arbundles item is refused and changes nothing
    bad = bytearray(b64url_decode(made["items"][0]["raw"]))
    bad[-1] ^= 0x01
    r = await ln.client.post(f"/{pid}/schedule", content=bytes(bad), headers=ANS)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-signature"
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == 3

    # every commitment of every assignment verifies in arbundles, with its id and tags
    page = (await ln.client.get(f"/{pid}/schedule")).json()
    commitments = [c for a in page["assignments"] for c in a["commitments"]]
    assert {c["committer"] for c in commitments} == {rsa_wallet.address, ed_wallet.address}
    checked = run_node("arbundles_verify.js", {"items": [c["raw"] for c in commitments]})
    owners = [a for a in page["assignments"] for _ in a["commitments"]]
    for c, result, owner in zip(
        commitments,
        checked["results"],
        owners,
        strict=True,
    ):
        assert result["valid"] is True, result
        assert result["id"] == c["id"]
        tags = {t["name"]: t["value"] for t in result["tags"]}
        assert tags["Slot"] == str(owner["slot"]) and tags["Process"] == pid
        assert tags["Message"] == owner["message"]
        assert tags["Hash-Chain"] == owner["hash-chain"]
    # a commitment with a flipped byte does not verify in arbundles
    forged = bytearray(b64url_decode(commitments[0]["raw"]))
    forged[-3] ^= 0x01
    again = run_node("arbundles_verify.js", {"items": [b64url_encode(bytes(forged))]})
    assert again["results"][0]["valid"] is False
