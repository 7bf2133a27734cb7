"""Logs: readable by default, JSON lines with ``--log-format json``, quiet, with process and slot.

The serve tests run the real ``aonode serve`` as a subprocess and read its
stderr; the error test injects a failing COMMIT through the SQLite store's
connection seam (as tests/store/test_sqlite.py does) and reads the line the
scheduler writes about it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aonode import logs
from aonode import wallet as wallet_mod
from aonode.config import NodeConfig
from aonode.errors import StoreError
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process

ANS = {"content-type": "application/ans104"}


async def serve_and_stop(tmp_path: Path, user: Wallet, *flags: str) -> tuple[str, str, list[str]]:
    """Run ``aonode serve``, spawn a process with 3 messages, SIGTERM it: (pid, address, stderr)."""
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    wallet_mod.save(wallet_mod.generate("ed25519"), data_dir / "wallet.json")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert ready.startswith("aonode listening on "), ready
        url, address = ready.split()[3], ready.split("address=")[1].strip()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            spawned = sign_process(user, address)
            r = await client.post("/~scheduler@1.0/schedule", content=spawned.item.raw, headers=ANS)
            assert r.status_code == 200, r.text
            for i in range(3):
                m = sign_message(user, spawned.id, data=str(i).encode())
                r = await client.post(f"/{spawned.id}/schedule", content=m.item.raw, headers=ANS)
                assert r.status_code == 200, r.text
            r = await client.get("/nowhere")  # a client error: not the operator's concern
            assert r.status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return spawned.id, address, err.decode().splitlines()


async def test_json_lines_one_per_start_and_stop(tmp_path: Path, user_wallet: Wallet) -> None:
    pid, address, lines = await serve_and_stop(tmp_path, user_wallet, "--log-format", "json")
    docs: list[dict[str, Any]] = [orjson.loads(line) for line in lines]  # every line is JSON
    for doc in docs:
        assert {"t", "level", "logger", "msg"} <= doc.keys()
    # quiet: a healthy run says only that it started and stopped
    assert [(d["logger"], d["msg"]) for d in docs] == [
        ("aonode.lifecycle", "node started"),
        ("aonode.lifecycle", "scheduler started"),
        ("aonode.lifecycle", "scheduler stopped"),
        ("aonode.lifecycle", "node stopped"),
    ]
    node_started, started, stopped, node_stopped = docs
    assert node_started["address"] == address and node_started["mode"] == "local_confirmation"
    assert node_started["url"].startswith("http://127.0.0.1:")
    assert node_started["store"].startswith("sqlite://")
    assert (started["process_id"], started["slot"]) == (pid, -1)  # a new process: nothing yet
    assert (stopped["process_id"], stopped["slot"]) == (pid, 3)
    assert node_stopped["address"] == address


async def test_readable_by_default(tmp_path: Path, user_wallet: Wallet) -> None:
    pid, _, lines = await serve_and_stop(tmp_path, user_wallet)
    assert len(lines) == 4
    for line in lines:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(line)
    assert " INFO aonode.lifecycle: scheduler stopped " in lines[2]
    assert lines[2].endswith(f"process_id={pid} slot=3")


async def test_bad_log_options_are_refused(tmp_path: Path) -> None:
    for flags in (("--log-format", "xml"), ("--log-level", "loud")):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aonode.ops.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            *flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 2, out
        assert flags[0].removeprefix("--").replace("-", " ") in out.decode()


class FlakyConnection(sqlite3.Connection):
    failures = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and FlakyConnection.failures:
            FlakyConnection.failures -= 1
            raise sqlite3.OperationalError("disk I/O error (injected)")
        return super().execute(sql, *args)


class FlakyStore(SQLiteStore):
    _connection_factory = FlakyConnection


async def test_an_error_line_names_process_and_slot(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("aonode")
    logger.addHandler(handler)
    node = Node(
        NodeConfig(data_dir=tmp_path),
        wallets=[ed_wallet],
        store=FlakyStore(tmp_path / "flaky.sqlite3"),
        timestamps=OfflineSource(),
    )
    await node.start()
    try:
        process = sign_process(user_wallet, ed_wallet.address)
        await node.schedule(process)
        FlakyConnection.failures = 1
        with pytest.raises(StoreError):
            await node.schedule(sign_message(user_wallet, process.id, data=b"lost"))
        kept = await node.schedule(sign_message(user_wallet, process.id, data=b"kept"))
        assert kept.slot == 1  # the failed slot was not left as a gap
    finally:
        await node.stop()
        logger.removeHandler(handler)
    docs = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    errors = [d for d in docs if d["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["process_id"] == process.id and errors[0]["slot"] == 1
    assert "injected" in errors[0]["msg"]
    resumed = [d for d in docs if d["level"] == "warning"]
    assert [(d["process_id"], d["slot"]) for d in resumed] == [(process.id, 0)]


def test_text_format_appends_fields() -> None:
    record = logging.LogRecord("aonode.x", logging.ERROR, __file__, 1, "it %s", ("broke",), None)
    record.__dict__.update(logs.where("P", 3, peer="x"))  # as extra= does
    line = logs.TextFormatter().format(record)
    assert line.endswith("ERROR aonode.x: it broke process_id=P slot=3 peer=x")
    doc = orjson.loads(logs.JsonFormatter().format(record))
    assert doc["msg"] == "it broke" and doc["level"] == "error"
    assert (doc["process_id"], doc["slot"], doc["peer"]) == ("P", 3, "x")
    logging.getLogger("aonode.test").error("no clash", extra=logs.where("P", 3))
