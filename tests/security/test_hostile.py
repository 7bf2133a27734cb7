"""The hostile corpus: every route, both surfaces; each request refused, nothing changed.

Each case is sent to one node (per module) by :mod:`tests.security.hostile`,
which asserts a 4xx JSON error, an unchanged schedule, process state and store,
and a normal answer afterwards.  The attacks named in issue 19 are here by
name: ``compute?slot=10^30`` and ``push?slot=2^63`` (500 before), a 100 KiB
header (accepted before).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
import pytest_asyncio

from aonode import wallet as wallet_mod
from aonode.codec import ans104, jsonform
from aonode.codec.b64 import b64url_encode
from aonode.codec.httpsig_sign import sign as hs_sign
from tests.conftest import sign_message, sign_process
from tests.security.hostile import ANS, BAD_IMAGES, JSON, Case, Corpus, start

pytestmark = pytest.mark.asyncio(loop_scope="module")

Build = Callable[[Corpus], Case]
CASES: dict[str, Build] = {}
UNKNOWN = b64url_encode(b"\x07" * 32)
HUGE = str(10**30)
I63 = str(2**63)

# -- ANS-104 binary: every signed-message route × every way to break an item ------------
# Offsets in an ed25519 item: type 0..2, signature 2..66, owner 66..98, target flag 98,
# target 99..131, anchor flag 131, anchor 132..164, tag count 164..172, tag bytes 172..180.


def _set(raw: bytes, at: int, new: bytes) -> bytes:
    return raw[:at] + new + raw[at + len(new) :]


def _flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]


BROKEN_ITEMS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda m: b"",
    "garbage": lambda m: b"hello, I am not a data item",
    "truncated-type": lambda m: m[:1],
    "truncated-signature": lambda m: m[:40],
    "truncated-owner": lambda m: m[:80],
    "truncated-tags": lambda m: m[:190],
    "flipped-signature": lambda m: _flip(m, 10),
    "flipped-owner": lambda m: _flip(m, 70),
    "flipped-target": lambda m: _flip(m, 100),
    "flipped-tag": lambda m: _flip(m, 190),
    "flipped-data": lambda m: _flip(m, len(m) - 1),
    "appended-data": lambda m: m + b"!",
    "signature-type-99": lambda m: _set(m, 0, struct.pack("<H", 99)),
    "signature-type-0": lambda m: _set(m, 0, struct.pack("<H", 0)),
    "tag-count-2^63": lambda m: _set(m, 164, struct.pack("<Q", 2**63)),
    "tag-bytes-2^62": lambda m: _set(m, 172, struct.pack("<Q", 2**62)),
    "target-flag-2": lambda m: _set(m, 98, b"\x02"),
}
SIGNED_ROUTES = {
    "schedule": "/{pid}/schedule",
    "scheduler-device": "/~scheduler@1.0/schedule",
    "process-schedule": "/{pid}~process@1.0/schedule",
    "push": "/{pid}~process@1.0/push",
    "spawn-push": "/push",
    "store": "/~message@1.0/store",
    "legacy-post": "/",
}


def _binary(route: str, path: str, name: str, breaker: Callable[[bytes], bytes]) -> Build:
    return lambda c: Case(f"ans104/{route}/{name}", "POST", path, breaker(c.message), ANS)


for _route, _path in SIGNED_ROUTES.items():
    for _name, _breaker in BROKEN_ITEMS.items():
        CASES[f"ans104/{_route}/{_name}"] = _binary(_route, _path, _name, _breaker)

# -- JSON data items --------------------------------------------------------------------


def _item_json(c: Corpus, **change: object) -> bytes:
    doc = jsonform.to_json(ans104.parse(c.message))
    doc.update(change)
    return orjson.dumps(doc)


OTHER = wallet_mod.generate("ed25519")
BROKEN_JSON: dict[str, Callable[[Corpus], bytes]] = {
    "not-json": lambda c: b"{nope",
    "array": lambda c: b"[]",
    "string": lambda c: b'"item"',
    "null": lambda c: b"null",
    "empty-object": lambda c: b"{}",
    "nested-100k": lambda c: b"[" * 100_000,
    "signature-type-text": lambda c: _item_json(c, signature_type="one"),
    "owner-not-b64": lambda c: _item_json(c, owner="***"),
    "tags-not-list": lambda c: _item_json(c, tags="Action=Eval"),
    "tag-name-number": lambda c: _item_json(c, tags=[{"name": 1, "value": "x"}]),
    "data-changed": lambda c: _item_json(c, data=b64url_encode(b"X = 666")),
    # forged identity: another key claimed as Owner of a signature it did not make
    "forged-owner": lambda c: _item_json(c, owner=b64url_encode(OTHER.owner)),
}


def _json(route: str, path: str, name: str, body: Callable[[Corpus], bytes]) -> Build:
    return lambda c: Case(f"json/{route}/{name}", "POST", path, body(c), JSON)


for _route in ("schedule", "push", "store"):
    for _name, _body in BROKEN_JSON.items():
        CASES[f"json/{_route}/{_name}"] = _json(_route, SIGNED_ROUTES[_route], _name, _body)

# -- httpsig (RFC 9421) -----------------------------------------------------------------


def _hs(
    c: Corpus, tamper: Callable[[dict[str, str]], dict[str, str]], body: bytes = b"X=1"
) -> Case:
    fields = {"Type": "Message", "Action": "Eval", "target": c.pid, "nonce": os.urandom(6).hex()}
    headers = hs_sign(c.user, fields, body=b"X=1", path=f"/{c.pid}~process@1.0/schedule")
    return Case("httpsig", "POST", "/{pid}~process@1.0/schedule", body, tamper(dict(headers)))


def _sub(key: str, pattern: str, repl: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda h: {**h, key: re.sub(pattern, repl, h[key])}


HTTPSIG: dict[str, Callable[[Corpus], Case]] = {
    "tampered-field": lambda c: _hs(c, lambda h: {**h, "action": "Transfer"}),
    "wrong-key": lambda c: _hs(
        c, _sub("signature-input", r'keyid="[^"]*"', f'keyid="{b64url_encode(OTHER.owner)}"')
    ),
    "no-signature": lambda c: _hs(c, lambda h: {k: v for k, v in h.items() if k != "signature"}),
    "garbage-input": lambda c: _hs(c, lambda h: {**h, "signature-input": "(((;;"}),
    "garbage-signature": lambda c: _hs(c, _sub("signature", r"=:.*:$", "=:AAAA:")),
    "unknown-alg": lambda c: _hs(c, _sub("signature-input", r'alg="[^"]*"', 'alg="md5"')),
    "body-swapped": lambda c: _hs(c, lambda h: h, body=b"X=2"),
    "digest-garbage": lambda c: _hs(c, lambda h: {**h, "content-digest": "sha-256=:x:"}),
}
for _name, _build in HTTPSIG.items():
    CASES[f"httpsig/{_name}"] = _build


def _get(name: str, path: str, status: int | None = None, code: str | None = None) -> None:
    CASES[name] = lambda c: Case(name, "GET", path, status=status, code=code)


def _post(
    name: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    status: int | None = None,
    code: str | None = None,
) -> None:
    CASES[name] = lambda c: Case(name, "POST", path, body, headers or {}, status, code)


# -- compute, now, snapshot ---------------------------------------------------------------
P = "/{pid}~process@1.0"
_get("compute/slot=10^30", f"{P}/compute?slot={HUGE}", 400, "bad-parameter")
_get("compute/slot=2^63", f"{P}/compute?slot={I63}", 400, "bad-parameter")
_get("compute/slot=2^53", f"{P}/compute?slot={2**53}", 400, "bad-parameter")
_get("compute/slot=-1", f"{P}/compute?slot=-1", 400, "bad-parameter")
_get("compute/slot=abc", f"{P}/compute?slot=abc", 400, "bad-parameter")
_get("compute/slot=1e3", f"{P}/compute?slot=1e3", 400, "bad-parameter")
_get("compute/slot=unicode-digits", f"{P}/compute?slot=%D9%A3", 400, "bad-parameter")
_get("compute/segment=10^30", f"{P}/compute={HUGE}", 400, "bad-parameter")
_get("compute/amp-slot=10^30", f"{P}/compute&slot={HUGE}", 400, "bad-parameter")
_get("compute/beyond-current", f"{P}/compute?slot=99", 404)
_get("compute/unknown-process", f"/{UNKNOWN}~process@1.0/compute?slot=0", 404)
_get("compute/no-execution-device", "/{bare}~process@1.0/compute?slot=0", 400)
_get("now/no-such-key", f"{P}/now/results/nothing-here", 404)
_get("now/unknown-process", f"/{UNKNOWN}~process@1.0/now", 404)
_get("snapshot/unknown-process", f"/{UNKNOWN}~process@1.0/snapshot", 404)
_post("compute/results=10^30", f"{P}/compute/results={HUGE}", status=400)
_post("compute/results=2^63", f"{P}/compute/results={I63}", status=400)

# -- push ---------------------------------------------------------------------------------
_post("push/slot=2^63", f"{P}/push?slot={I63}", status=400, code="bad-parameter")
_post("push/slot=10^30", f"{P}/push?slot={HUGE}", status=400, code="bad-parameter")
_post("push/slot=-1", f"{P}/push?slot=-1", status=400, code="bad-parameter")
_post("push/slot=x", f"{P}/push?slot=x", status=400, code="bad-parameter")
_post("push/slot-beyond-current", f"{P}/push?slot=99", status=404)
_post("push/result-depth=10^30", f"{P}/push?slot=1&result-depth={HUGE}", status=400)
_post("push/result-depth=-1", f"{P}/push?slot=1&result-depth=-1", status=400)
_post("push/push-depth=2^63", f"{P}/push?slot=1&push-depth={I63}", status=400)
_post("push/push-budget=-5", f"{P}/push?slot=1&push-budget=-5", status=400)
_post("push/mode-bogus", f"{P}/push?slot=1&push-mode=bogus", status=400)
_post("push/slot-without-process", "/push?slot=1", status=400, code="missing-target")
_post("push/unknown-process", f"/{UNKNOWN}~process@1.0/push?slot=0", status=404)
_get("push/get", f"{P}/push", 405)

# -- dry run ------------------------------------------------------------------------------
DRY = f"{P}/as=execution/compute"
_post("dryrun/not-json", DRY, b"{nope", JSON, 400)
_post("dryrun/array", DRY, b"[1]", JSON, 400)
_post("dryrun/tags-not-list", DRY, b'{"Tags": "x"}', JSON, 400)
_post("dryrun/tag-without-value", DRY, b'{"Tags": [{"name": "a"}]}', JSON, 400)
_post("dryrun/garbage-item", DRY, b"garbage", ANS, 400)
_post("dryrun/nested-100k", DRY, b"[" * 100_000, JSON, 400)
_post("dryrun/unknown-process", f"/{UNKNOWN}~process@1.0/compute", b"{}", JSON, 404)
_post("dryrun/no-execution-device", "/{bare}~process@1.0/compute", b"{}", JSON, 400)

# -- schedule and slot reads --------------------------------------------------------------
_get("schedule/from=10^30", f"/{{pid}}/schedule?from={HUGE}", 400, "bad-parameter")
_get("schedule/to=10^30", f"/{{pid}}/schedule?to={HUGE}", 400, "bad-parameter")
_get("schedule/limit=10^30", f"/{{pid}}/schedule?limit={HUGE}", 400, "bad-parameter")
_get("schedule/limit=-1", "/{pid}/schedule?limit=-1", 400, "bad-parameter")
_get("schedule/from=-1", "/{pid}/schedule?from=-1", 400, "bad-parameter")
_get("schedule/to-below-from", "/{pid}/schedule?from=5&to=2", 400, "bad-parameter")
_get("schedule/from=abc", "/{pid}/schedule?from=abc", 400, "bad-parameter")
_get("schedule/no-target", "/~scheduler@1.0/schedule", 400, "missing-target")
_get("schedule/unknown-target", f"/~scheduler@1.0/schedule?target={UNKNOWN}", 404)
_get("slot/no-target", "/~scheduler@1.0/slot", 400, "missing-target")
_get("slot/unknown-process", f"/{UNKNOWN}/slot", 404)
_get("slot/sub-path", "/{pid}/slot/nothing", 404)

# -- legacy Scheduler-Unit and Compute-Unit routes ---------------------------------------
_get("legacy/page-from=10^30", f"/{{pid}}?from={HUGE}", 400)
_get("legacy/page-to=2^63", f"/{{pid}}?to={I63}", 400)
_get("legacy/page-limit=10^30", f"/{{pid}}?limit={HUGE}", 400)
_get("legacy/page-limit=0", "/{pid}?limit=0", 400)
_get("legacy/page-limit=abc", "/{pid}?limit=abc", 400)
_get("legacy/page-from-nonce=10^30", f"/{{pid}}?from-nonce={HUGE}", 400)
_get("legacy/page-to-nonce=-1", "/{pid}?to-nonce=-1", 400)
_get("legacy/unknown-id", f"/{UNKNOWN}", 404)
_get("legacy/unknown-process-id", f"/{UNKNOWN}?process-id={UNKNOWN}", 404)
_get("legacy/processes-unknown", f"/processes/{UNKNOWN}", 404)
_get("legacy/latest-unknown", f"/{UNKNOWN}/latest", 404)
_get("legacy/result-no-process", f"/result/{UNKNOWN}", 400)
_get("legacy/result-unknown-message", f"/result/{UNKNOWN}?process-id={{pid}}", 404)
_get("legacy/results-limit=10^30", f"/results/{{pid}}?limit={HUGE}", 400)
_get("legacy/results-limit=0", "/results/{pid}?limit=0", 400)
_get("legacy/results-from=10^30", f"/results/{{pid}}?from={HUGE}", 400)
_get("legacy/results-bad-cursor", "/results/{pid}?from=!!!", 400)
_get(
    "legacy/results-cursor-2^63",
    "/results/{pid}?from=" + b64url_encode(orjson.dumps({"timestamp": 1, "ordinate": I63})),
    400,
)
_get("legacy/results-sort", "/results/{pid}?sort=SIDEWAYS", 400)
_get("legacy/state-to=10^30", f"/state/{{pid}}?to={HUGE}", 400)
_post("legacy/dry-run-no-process", "/dry-run", b"{}", JSON, 400)
_post("legacy/dry-run-garbage", "/dry-run?process-id={pid}", b"{nope", JSON, 400)
_post("legacy/assign-unknown", f"/?process-id={{pid}}&assign={UNKNOWN}", status=404)
_post("legacy/assign-bad-ids", "/?process-id=bad&assign=bad", status=400)


def _unsigned_protocol(c: Corpus) -> Case:
    item = ans104.sign(c.user, data=b"1", tags=[("Type", "Message")], target=b"\x01" * 32)
    return Case("legacy/post-no-data-protocol", "POST", "/", item.raw, ANS, 400)


CASES["legacy/post-no-data-protocol"] = _unsigned_protocol

# -- GraphQL (the gateway's, on the legacy surface) ---------------------------------------
_post("graphql/not-json", "/graphql", b"{nope", JSON, 400)
_post("graphql/no-query", "/graphql", b'{"q": 1}', JSON, 400)
_post("graphql/variables-list", "/graphql", b'{"query": "{a}", "variables": []}', JSON, 400)
_post("graphql/syntax", "/graphql", b'{"query": "{ transactions( }"}', JSON, 400)
_post("graphql/unknown-field", "/graphql", b'{"query": "{ nothing }"}', JSON, 400)
_post(
    "graphql/first=2^40",
    "/graphql",
    orjson.dumps({"query": f"{{ transactions(first: {2**40}) {{ edges {{ cursor }} }} }}"}),
    JSON,
    400,
)
_post("graphql/nested-5k", "/graphql", orjson.dumps({"query": "{" * 5000}), JSON, 400)
_get("graphql/get", "/graphql", 405)
_post(
    "graphql/ids-5k",
    "/graphql",
    orjson.dumps(
        {
            "query": "query($ids: [ID!]) { transactions(ids: $ids) { edges { cursor } } }",
            "variables": {"ids": [UNKNOWN] * 5000},
        }
    ),
    JSON,
    400,
)

# -- messages, spawns, locations, misc ----------------------------------------------------
_post("store/text-plain", "/~message@1.0/store", b"hello", {"content-type": "text/plain"}, 415)
_get("store/get-unknown", f"/~message@1.0/{UNKNOWN}", 404)
_get("store/get-store", "/~message@1.0/store", 405)
_post("location/garbage", "/~scheduler@1.0/location", b"garbage", ANS, 400)
_get("route/unknown", "/~nothing@1.0/at/all", 404)
_get("route/unknown-top", "/not-a-route", 404)
CASES["route/delete-status"] = lambda c: Case(
    "route/delete-status", "DELETE", "/~scheduler@1.0/status", status=405
)
CASES["header/100KiB"] = lambda c: Case(
    "header/100KiB",
    "GET",
    "/~scheduler@1.0/status",
    headers={"x-big": "a" * 100 * 1024},
    status=431,
    code="headers-too-large",
)
CASES["header/many-small"] = lambda c: Case(
    "header/many-small",
    "GET",
    "/~scheduler@1.0/status",
    headers={f"x-h{i}": "b" * 200 for i in range(90)},
    status=431,
)


def _spawn_other_scheduler(c: Corpus) -> Case:
    item = sign_process(c.user, b64url_encode(os.urandom(32))).item.raw
    return Case("spawn/other-scheduler", "POST", "/~scheduler@1.0/schedule", item, ANS, 409)


def _spawn_unknown_device(c: Corpus) -> Case:
    addr = c.ln.node.address
    item = sign_process(c.user, addr, extra=[("Execution-Device", "nothing@9.9")]).item.raw
    return Case("spawn/unknown-execution-device", "POST", "/push", item, ANS, 400)


def _message_unknown_process(c: Corpus) -> Case:
    item = sign_message(c.user, UNKNOWN).item.raw
    return Case("message/unknown-process", "POST", "/~scheduler@1.0/schedule", item, ANS, 404)


CASES["spawn/other-scheduler"] = _spawn_other_scheduler
CASES["spawn/unknown-execution-device"] = _spawn_unknown_device
CASES["message/unknown-process"] = _message_unknown_process


def _wasm_spawn(name: str, path: str) -> Build:
    stack = [
        ("Execution-Device", "stack@1.0"),
        ("Execution-Stack", "wasi@1.0, json-iface@1.0, wasm-64@1.0"),
    ]

    def build(c: Corpus) -> Case:
        extra = [*stack, ("Image", c.images[name])]
        item = sign_process(c.user, c.ln.node.address, data=os.urandom(8), extra=extra)
        return Case(f"wasm/{name}", "POST", path, item.item.raw, ANS, 400, "image-cannot-start")

    return build


for _name in BAD_IMAGES:
    for _route, _path in (("schedule", "/~scheduler@1.0/schedule"), ("push", "/push")):
        # running out of fuel burns the whole per-message budget (~15 s): once is proof
        if "out-of-fuel" not in _name or _route == "push":
            CASES[f"wasm/{_name}/{_route}"] = _wasm_spawn(_name, _path)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Corpus]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    c = await start(tmp, wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519"))
    yield c
    await c.ln.close()


async def test_corpus_is_large() -> None:
    assert len(CASES) >= 120


@pytest.mark.parametrize("name", sorted(CASES))
async def test_hostile(corpus: Corpus, name: str) -> None:
    await corpus.check(CASES[name](corpus))
