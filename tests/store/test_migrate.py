"""``aonode export`` / ``aonode import``: SQLite → PostgreSQL → SQLite, on real stores.

The source is written by a real node (signed processes and messages, so
``aonode verify`` has real signatures to check) plus one of every other kind
of row (a message no schedule assigns, a location, results with a snapshot,
records).  After each move the target must hold exactly the same data.
"""

from __future__ import annotations

import asyncio
import io
import re
import sys
from pathlib import Path

import pytest

from aonode.ops.migrate import ImportConflict, export_store, import_store
from aonode.store import LocationRecord, Record, ResultRecord, Store, open_store
from aonode.store.dumpfile import BadStream
from aonode.wallet import Wallet
from tests.conftest import NodeFactory, sign_message, sign_process


async def _fill(schedule: NodeFactory, user: Wallet, db: Path) -> list[str]:
    """Three processes with a few messages each, via a real node on ``db``; their ids,
    then the id of a message stored without a slot."""
    node = await schedule(db=db)
    pids = []
    for n in range(3):
        proc = sign_process(user, node.address, data=str(n).encode())
        await node.schedule(proc)
        pids.append(proc.id)
        for i in range(4 + n):
            await node.schedule(sign_message(user, proc.id, data=f"{n}/{i}".encode()))
    loose = sign_message(user, pids[0], data=b"stored, never scheduled")
    await node.store.put_message(loose.record())
    where = sign_message(user, pids[0], data=b"location")
    await node.store.put_location(LocationRecord(node.address, 7, where.id), where.record())
    await node.store.put_result(ResultRecord(pids[1], 2, "m", b'{"ok":1}', b"state"))
    await node.store.put_result(ResultRecord(pids[1], 3, "m2", b'{"ok":2}'))
    await node.store.put_record(Record("cron", "task-1", b'{"every":"1-minute"}'))
    await node.store.put_record(Record("push", "job/1", b"\x00\x01"))
    await node.stop()
    return [*pids, loose.id]


async def _contents(url: str, pids: list[str], loose: tuple[str, ...] = ()) -> dict[str, object]:
    """Everything a store holds that an export carries, in comparable form."""
    store = open_store(url)
    await store.open()
    try:
        out: dict[str, object] = {"processes": await store.processes()}
        for pid in pids:
            out[pid] = [
                (s.assignment, s.body.raw, s.body.codec)
                for s in await store.slots(pid, 0, 10**6, 10**6)
            ]
            out[f"{pid}/results"] = [await store.get_result(pid, slot) for slot in range(8)] + [
                await store.latest_snapshot(pid, 100)
            ]
        out["loose"] = [await store.get_message(mid) for mid in loose]
        out["records"] = await store.records("cron") + await store.records("push")
        out["locations"] = [await store.get_location(a) for a in await _addresses(store, pids)]
        return out
    finally:
        await store.close()


async def _addresses(store: Store, pids: list[str]) -> list[str]:
    first = await store.slots(pids[0], 1, 1, 1)
    if not first:
        return []
    return [orjson_loads(first[0].assignment.document)["commitments"][0]["committer"]]


def orjson_loads(raw: bytes) -> dict[str, object]:
    import orjson

    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value


async def _export(url: str, **options: bool) -> bytes:
    out = io.BytesIO()
    await export_store(url, out, **options)
    return out.getvalue()


async def _run(*args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    """``aonode ARGS``: exit code, stdout (bytes: it may be a stream), stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


async def _cli(*args: str, stdin: bytes = b"") -> tuple[int, str]:
    rc, out, err = await _run(*args, stdin=stdin)
    return rc, out.decode(errors="replace") + err


async def test_sqlite_to_postgres_and_back_through_the_cli(
    make_node: NodeFactory, user_wallet: Wallet, pg_url: str, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    *pids, loose = await _fill(make_node, user_wallet, tmp_path / "source.sqlite3")
    dump = tmp_path / "dump.aonode"
    rc, out = await _cli("export", "--store", source, str(dump))
    assert rc == 0, out
    assert '"A":18' in out and '"M":1' in out and '"L":1' in out and '"R":2' in out, out
    rc, out = await _cli("import", "--store", pg_url, str(dump))
    assert rc == 0, out
    assert '"assignments":18' in out and '"present":0' in out, out
    expected = await _contents(source, pids, (loose,))
    assert await _contents(pg_url, pids, (loose,)) == expected
    rc, out = await _cli("verify", pg_url)
    assert rc == 0, out
    verified = dict(re.findall(r"ok: (\d+) assignments verified for (\S+)", out))
    assert {pid: int(n) for n, pid in verified.items()} == {p: 5 + i for i, p in enumerate(pids)}

    # Idempotent: a second import writes no assignment twice and changes nothing.
    rc, out = await _cli("import", "--store", pg_url, str(dump))
    assert rc == 0 and '"present":18' in out and '"assignments"' not in out, out
    assert await _contents(pg_url, pids, (loose,)) == expected

    # And back, as a pipe: PostgreSQL → stdout → stdin → a new SQLite file.
    back = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    rc, stream, err = await _run("export", "--store", pg_url, "-")
    assert rc == 0 and stream.startswith(b"AONODE-EXPORT\n"), err
    rc, out = await _cli("import", "--store", back, "-", stdin=stream)
    assert rc == 0, out
    assert await _contents(back, pids, (loose,)) == expected
    rc, out = await _cli("verify", back)
    assert rc == 0 and out.count("ok: ") == 3, out


async def test_an_interrupted_or_older_import_is_completed(
    make_node: NodeFactory, user_wallet: Wallet, pg_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "source.sqlite3"
    source = f"sqlite:///{db}"
    *pids, loose = await _fill(make_node, user_wallet, db)
    early = await _export(source)
    node = await make_node(db=db)
    later = [sign_message(user_wallet, pids[2], data=f"later {i}".encode()) for i in range(3)]
    for m in later:
        await node.schedule(m)
    await node.stop()
    full = await _export(source)
    derived = await export_store(source, io.BytesIO(), results=False)
    assert "R" not in derived and derived["A"] == 21  # --no-results leaves results out

    # A stream cut short is reported; what came before the cut is kept and valid.
    with pytest.raises(BadStream, match="cut short"):
        await import_store(pg_url, io.BytesIO(early[: len(early) // 2]))
    report = await import_store(pg_url, io.BytesIO(early))
    assert report.added.get("assignments", 0) + report.present == 18
    report = await import_store(pg_url, io.BytesIO(full))
    assert report.added["assignments"] == 3 and report.present == 18
    assert await _contents(pg_url, pids, (loose,)) == await _contents(source, pids, (loose,))


async def test_a_conflicting_schedule_is_refused_and_nothing_is_written(
    make_node: NodeFactory, user_wallet: Wallet, ed_wallet: Wallet, tmp_path: Path, pg_url: str
) -> None:
    a_db, b_db = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    node = await make_node(db=a_db)
    proc = sign_process(user_wallet, node.address)
    other = sign_process(user_wallet, node.address, data=b"other")
    for m in (proc, other, sign_message(user_wallet, proc.id, data=b"a")):
        await node.schedule(m)
    await node.stop()
    # The same process on another store, where slot 1 went to another message.
    node = await make_node(db=b_db)
    await node.schedule(proc)
    await node.schedule(sign_message(user_wallet, proc.id, data=b"b"))
    await node.stop()
    b = f"sqlite:///{b_db}"
    before = await _contents(b, [proc.id])
    with pytest.raises(ImportConflict, match=proc.id):
        await import_store(b, io.BytesIO(await _export(f"sqlite:///{a_db}")))
    assert await _contents(b, [proc.id]) == before  # not even `other` was imported

    # The same through the CLI: exit 1 and a clear reason, no traceback.
    dump = tmp_path / "a.aonode"
    dump.write_bytes(await _export(f"sqlite:///{a_db}"))
    rc, out = await _cli("import", "--store", b, str(dump))
    assert rc == 1 and "different schedules" in out and "Traceback" not in out, out
    # A shorter target that differs: refused when the stream reaches its last slot.
    rc, out = await _cli("import", "--store", pg_url, str(dump))
    assert rc == 0, out
    node = await make_node(db=tmp_path / "c.sqlite3")
    await node.schedule(proc)
    for i in range(3):
        await node.schedule(sign_message(user_wallet, proc.id, data=f"c{i}".encode()))
    await node.stop()
    with pytest.raises(ImportConflict, match="slot 1 differs"):
        await import_store(pg_url, io.BytesIO(await _export(f"sqlite:///{tmp_path / 'c.sqlite3'}")))


async def test_bad_streams_are_refused(tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path / 't.sqlite3'}"
    with pytest.raises(BadStream, match="not an aonode export"):
        await import_store(target, io.BytesIO(b"hello world, not a stream"))
    rc, out = await _cli("import", "--store", target, "-", stdin=b"{}\n")
    assert rc == 1 and "not an aonode export" in out and "Traceback" not in out, out
    dump = tmp_path / "x.aonode"
    rc, out = await _cli(
        "export", "--store", f"sqlite:///{tmp_path / 'missing.sqlite3'}", str(dump)
    )
    assert rc == 1 and "no SQLite store" in out, out
    assert not (tmp_path / "missing.sqlite3").exists() and not dump.exists()
