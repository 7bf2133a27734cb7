"""The ``aonode`` command line, run as real subprocesses."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from aonode import wallet as wallet_mod
from tests.conftest import LiveNode

Live = Callable[..., Awaitable[LiveNode]]


async def aonode(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_wallet_new_and_show(tmp_path: Path) -> None:
    for kind in ("rsa", "ed25519"):
        path = tmp_path / f"{kind}.json"
        rc, out = await aonode("wallet", "new", str(path), "--kind", kind)
        assert rc == 0, out
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert out.strip() == wallet_mod.load(path).address
        rc, shown = await aonode("wallet", "show", str(path))
        assert rc == 0 and orjson.loads(shown) == {"address": out.strip(), "kind": kind}
        rc, again = await aonode("wallet", "new", str(path))
        assert rc == 2 and "exists" in again
    rc, out = await aonode("wallet", "show", str(tmp_path / "missing.json"))
    assert rc == 2 and "error:" in out


async def test_serve_refuses_remote_confirmation_and_bad_options(tmp_path: Path) -> None:
    rc, out = await aonode("serve", "--data-dir", str(tmp_path), "--mode", "remote_confirmation")
    assert rc == 2 and "remote_confirmation" in out
    rc, out = await aonode("serve", "--data-dir", str(tmp_path), "--mode", "eventually")
    assert rc == 2 and "unknown mode" in out
    rc, out = await aonode("serve", "--data-dir", str(tmp_path), "--store", "mysql://x")
    assert rc == 2 and "sqlite" in out


async def test_schedule_and_verify_against_a_live_node(tmp_path: Path, live: Live) -> None:
    ln = await live()
    me = tmp_path / "me.json"
    assert (await aonode("wallet", "new", str(me), "--kind", "ed25519"))[0] == 0
    rc, out = await aonode("schedule", "--spawn", "--wallet", str(me), "--url", ln.url)
    assert rc == 0, out
    spawned = orjson.loads(out)
    pid = spawned["process"]
    assert spawned["slot"] == 0
    for i in range(3):
        rc, out = await aonode(
            "schedule",
            "--wallet",
            str(me),
            "--url",
            ln.url,
            "--data",
            f"X = {i}",
            "--tag",
            "Action=Eval",
            "--",
            pid,
        )
        assert rc == 0, out
        body = orjson.loads(out)
        assert body["slot"] == i + 1
        tags = {t["name"]: t["value"] for t in body["body"]["tags"]}
        assert tags["Action"] == "Eval"
    rc, out = await aonode(
        "schedule", "--wallet", str(me), "--url", ln.url, "--tag", "bad", "--", pid
    )
    assert rc == 2 and "K=V" in out
    rc, out = await aonode("verify", "--", ln.url, pid)
    assert rc == 0 and "ok: 4 assignments verified" in out, out
    # the same command twice makes two messages (fresh anchors), not one re-post
    rc, again = await aonode("schedule", "--spawn", "--wallet", str(me), "--url", ln.url)
    assert rc == 0 and orjson.loads(again)["process"] != pid


async def test_verify_names_the_first_broken_slot(tmp_path: Path, live: Live) -> None:
    ln = await live()
    me = tmp_path / "me.json"
    await aonode("wallet", "new", str(me), "--kind", "ed25519")
    rc, out = await aonode("schedule", "--spawn", "--wallet", str(me), "--url", ln.url)
    pid = orjson.loads(out)["process"]
    for i in range(4):
        await aonode("schedule", "--wallet", str(me), "--url", ln.url, "--data", str(i), "--", pid)
    await ln.close()  # stop the node: the store is ours to inspect and to tamper with
    data_dir = ln.node.config.data_dir
    rc, out = await aonode("verify", "--", str(data_dir), pid)
    assert rc == 0 and "ok: 5 assignments verified" in out, out

    db = sqlite3.connect(data_dir / "aonode.sqlite3")
    (doc,) = db.execute(
        "SELECT document FROM assignments WHERE process=? AND slot=3", (pid,)
    ).fetchone()
    forged = orjson.loads(doc)
    forged["timestamp"] += 1  # a changed key the commitment signed
    db.execute(
        "UPDATE assignments SET document=? WHERE process=? AND slot=3", (orjson.dumps(forged), pid)
    )
    db.commit()
    rc, out = await aonode("verify", "--", str(data_dir), pid)
    assert rc == 1 and "slot 3" in out and "commitment" in out, out

    forged["timestamp"] -= 1
    forged["hash-chain"] = forged["hash-chain"][::-1]
    db.execute(
        "UPDATE assignments SET document=? WHERE process=? AND slot=3", (orjson.dumps(forged), pid)
    )
    db.commit()
    db.close()
    rc, out = await aonode("verify", "--", str(data_dir), pid)
    assert rc == 1 and "slot 3" in out and "hash-chain" in out, out


async def test_spawn_eval_compute(tmp_path: Path, live: Live) -> None:
    ln = await live()
    me = tmp_path / "me.json"
    await aonode("wallet", "new", str(me), "--kind", "ed25519")
    rc, pid = await aonode("spawn", "--wallet", str(me), "--url", ln.url)
    assert rc == 0, pid
    pid = pid.strip()
    rc, out = await aonode("eval", "--wallet", str(me), "--url", ln.url, "--", pid, "X = 21")
    assert rc == 0, out
    rc, out = await aonode("eval", "--wallet", str(me), "--url", ln.url, "--", pid, "return X * 2")
    assert rc == 0 and out.strip() == "42", out
    rc, out = await aonode("eval", "--wallet", str(me), "--url", ln.url, "--", pid, "error('boom')")
    assert rc == 1 and "boom" in out
    rc, out = await aonode("compute", "--slot", "2", "--url", ln.url, "--", pid)
    assert rc == 0 and orjson.loads(out)["results"]["data"] == "42"
    rc, out = await aonode("compute", "--slot", "99", "--url", ln.url, "--", pid)
    assert rc == 1 and "slot-not-assigned" in out


async def test_serve_refuses_a_port_another_node_listens_on(tmp_path: Path, live: Live) -> None:
    ln = await live()
    port = ln.url.rsplit(":", 1)[1]
    rc, out = await aonode("serve", "--data-dir", str(tmp_path / "second"), "--port", port)
    assert rc == 2 and "cannot listen" in out, out
    assert (await ln.client.get("/~scheduler@1.0/status")).status_code == 200
