"""``/{pid}~process@1.0/...``: compute, now, dry run, snapshot (API.md, Process).

Paths use HyperBEAM's segment syntax: ``compute?slot=N``, ``compute=N``,
``compute&slot=N``, sub-paths into the result (``now/results/data``), and the
forms aoconnect's mainnet mode sends (``compute/results=N`` for a result,
``as=execution/compute&Tag=Value`` for a dry run).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from aonode.codec import ans104, jsonform
from aonode.codec.b64 import b64url_encode
from aonode.errors import InvalidMessage, NotFound
from aonode.http.request import Request, dryrun_slot, parse_int
from aonode.http.responses import Response, json_response
from aonode.http.routing import Match
from aonode.message import Message
from aonode.process.results import results_doc
from aonode.process.runtime.base import Json, Results
from aonode.services import Services

# A dry-run message is never scheduled and has no id of its own: a fixed, visibly fake one.
DRYRUN_ID = b64url_encode(b"dryrun".ljust(32, b"\0"))


def parse_slot(value: str | None) -> int | None:
    return parse_int("slot", value)


def aos_raw(results: Results) -> Json:
    """The result shape aoconnect reads (``raw.Output``, ``raw.Messages``, …)."""
    return {
        "Output": {"data": results.output, "print": True} if results.output else "",
        "Messages": list(results.outbox),
        "Spawns": list(results.spawns),
        "Assignments": list(results.assignments),
        "Error": results.error,
        "Data": results.data,
    }


def sub_value(doc: Any, path: list[str]) -> Any:
    for key in path:
        if isinstance(doc, dict) and key in doc:
            doc = doc[key]
        elif isinstance(doc, list) and key.isdigit() and 0 < int(key) <= len(doc):
            doc = doc[int(key) - 1]  # outbox/1 is the first message, as in HyperBEAM
        else:
            raise NotFound(f"no value at {'/'.join(path)}", code="no-such-key")
    return doc


async def dryrun_message(request: Request, params: dict[str, str], pid: str) -> Json:
    """The message of a dry run: a (not necessarily signed) item, plus ``Tag=Value`` params."""
    body = await request.body()
    tags: list[tuple[str, str]] = []
    data = ""
    owner = ""
    if body:
        ctype = request.content_type
        if ctype == "application/json":
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidMessage(f"body is not JSON: {exc}", code="invalid-json") from None
            if isinstance(obj, dict) and "signature_type" in obj:
                item = jsonform.from_json(obj)
                m = Message.from_item(item)
                tags, data, owner = list(item.tags), item.data.decode("utf-8", "replace"), m.signer
            elif isinstance(obj, dict):
                raw_tags = obj.get("Tags", obj.get("tags", []))
                if not isinstance(raw_tags, list):
                    raise InvalidMessage("Tags must be a list of {name, value}")
                for t in raw_tags:
                    if not isinstance(t, dict) or "name" not in t or "value" not in t:
                        raise InvalidMessage("each tag needs a name and a value")
                    tags.append((str(t["name"]), str(t["value"])))
                data = str(obj.get("Data", obj.get("data", "")))
                owner = str(obj.get("Owner", obj.get("From", "")))
            else:
                raise InvalidMessage("a dry-run body must be a JSON object or a data item")
        else:
            item = ans104.parse(body)  # need not be signed: nothing is stored
            m = Message.from_item(item)
            tags, data, owner = list(item.tags), item.data.decode("utf-8", "replace"), m.signer
    skip = {"slot", "as", "compute", "results", "target", "accept", "require-codec"}
    for k, v in params.items():
        if k not in skip and all(k != name.lower() for name, _ in tags):
            tags.append((k[:1].upper() + k[1:], v))
    doc: Json = {
        "Id": DRYRUN_ID,
        "Owner": owner,
        "From": owner,
        "Target": pid,
        "Anchor": "",
        "Data": data,
        "Tags": [{"name": n, "value": v} for n, v in tags],
        "Timestamp": 0,
        "Block-Height": 0,
        "Epoch": 0,
        "Nonce": -1,
        "Cron": False,
    }
    for name, value in tags:
        doc.setdefault(name, value)
    return doc


def envelope(pid: str, slot: int, results: Results, sub: list[str]) -> Any:
    doc = results_doc(pid, slot, results)
    return sub_value(doc, sub) if sub else doc


def _value(value: Any) -> Response:
    """A sub-path's value: text as text, anything else as JSON."""
    if isinstance(value, str):
        return Response(200, value.encode(), "text/plain; charset=utf-8")
    return json_response(value)


async def snapshot(svc: Services, request: Request, m: Match) -> Response:
    """``GET /{pid}/snapshot``: the runtime's state image at its latest snapshot."""
    pid = m["pid"]
    worker = await svc.processes.worker(await svc.scheduling.require_process(pid))
    slot, state = await worker.snapshot()
    return json_response(
        {
            "process": pid,
            "slot": slot,
            "state": b64url_encode(state),
            "hash": b64url_encode(hashlib.sha256(state).digest()),
        }
    )


async def now(svc: Services, request: Request, m: Match) -> Response:
    """``GET /{pid}/now[/sub/path]``: the results at the latest slot."""
    pid = m["pid"]
    worker = await svc.processes.worker(await svc.scheduling.require_process(pid))
    slot, results = await worker.now()
    return _value(envelope(pid, slot, results, m.rest))


async def compute(svc: Services, request: Request, m: Match) -> Response:
    """``/{pid}/compute``: GET a slot's results; POST a dry run (or aoconnect's result)."""
    pid, sub = m["pid"], m.rest
    worker = await svc.processes.worker(await svc.scheduling.require_process(pid))
    params = {**request.query, **m.params}
    wanted = parse_slot(params.get("slot") or params.get("compute") or params.get("results"))
    if request.method == "POST" and "results" in params and wanted is not None:
        results = await worker.compute(wanted)  # aoconnect's result(s)
        return json_response({"raw": aos_raw(results), "slot": wanted})
    if request.method == "POST":
        msg = await dryrun_message(request, params, pid)
        async with dryrun_slot(request):
            at, results = await worker.dryrun(msg)
        doc = envelope(pid, at, results, sub)
        if isinstance(doc, dict):
            doc["raw"] = aos_raw(results)
        return _value(doc)
    if wanted is None:
        slot, results = await worker.now()
    else:
        slot, results = wanted, await worker.compute(wanted)
    return _value(envelope(pid, slot, results, sub))
