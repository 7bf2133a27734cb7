"""``json-iface@1.0``: aos messages in and out of an image's ``handle``.

In: ``handle(msg, env)`` takes two NUL-terminated JSON strings, the message
and the environment as AO's compute units build them: the message's ``Id,
Owner, From, Target, Anchor, Data, Tags, Timestamp, Block-Height, Epoch,
Nonce, Hash-Chain, Cron, Module`` (from ``aosmsg``, without the tags it also
copies to keys: aos does that itself, and its key normalisation breaks on a
lowercase tag already present as a key: ``invalid key to 'next'``);
``env.Process`` = the process's ``Id, Owner, Tags``, ``env.Module`` =
``{Id, Tags}`` of the image.

Out: one JSON string, ``{"ok": true, "response": {Output, Messages, Spawns,
Assignments, Error?, GasUsed?}}`` (``ok: false`` when aos itself failed).
``Output`` is aos's ``{data, prompt, print?, test?}`` (or plain text in older
builds); aos puts the printed lines and an Eval's value together in
``Output.data``, so that text is both the result's ``data`` and ``output``
(as for hyper-aos: there is no separate return value).
"""

from __future__ import annotations

from typing import Any

import orjson

from aonode.process.runtime.base import MESSAGE_FIELDS, Json, Results, json_default


def encode(msg: Json, env: Json, module: Json | None = None) -> tuple[bytes, bytes]:
    """The two NUL-terminated arguments of ``handle``."""
    return encode_message(msg), encode_env(env, module)


def encode_message(msg: Json) -> bytes:
    """``handle``'s first argument: the message's fields, NUL-terminated."""
    # a worker's message (aosmsg) has exactly these keys, in this order: as it is
    doc = msg if tuple(msg) == MESSAGE_FIELDS else {k: msg[k] for k in MESSAGE_FIELDS if k in msg}
    return orjson.dumps(doc, default=json_default) + b"\0"


def encode_env(env: Json, module: Json | None = None) -> bytes:
    """``handle``'s second argument: the process and module, NUL-terminated."""
    process = env.get("Process")
    environment: Json = {}
    if isinstance(process, dict):
        environment["Process"] = {k: process[k] for k in ("Id", "Owner", "Tags") if k in process}
    if module is not None:
        environment["Module"] = module
    return orjson.dumps(environment, default=json_default) + b"\0"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _value(value: Any) -> str:
    """A tag value or Data as text, as Lua's ``tostring`` writes numbers and booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _text(value)


def _with_tag_keys(msg: Any) -> Json:
    """An aos message with text tags and Data (a message on the wire has nothing
    else; aos leaves ``Send{N = 4}`` a number) and each tag also as a key."""
    if not isinstance(msg, dict):
        return {"Data": _text(msg), "Tags": []}
    out = dict(msg)
    out["Data"] = _value(msg.get("Data"))
    tags = []
    for tag in msg.get("Tags") or []:
        if isinstance(tag, dict) and "name" in tag:
            tags.append({"name": _value(tag["name"]), "value": _value(tag.get("value"))})
    out["Tags"] = tags
    for tag in tags:
        out.setdefault(tag["name"], tag["value"])
    return out


def output_text(output: Any) -> str:
    if isinstance(output, dict):
        return _text(output.get("data"))
    return _text(output)


def decode(raw: bytes) -> Results:
    """The node's results for ``handle``'s reply."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            doc = orjson.loads(raw.decode("utf-8", "replace"))
        except orjson.JSONDecodeError as exc:
            return Results(error=f"handle returned no JSON ({exc}): {raw[:200]!r}")
    if not isinstance(doc, dict):
        return Results(error=f"handle returned {type(doc).__name__}, not an object")
    response = doc.get("response", doc)
    if doc.get("ok") is False or not isinstance(response, dict):
        return Results(error=_text(response) or "handle failed")
    output = response.get("Output")
    text = output_text(output)
    extra: dict[str, Any] = {}
    if isinstance(output, dict) and "prompt" in output:
        extra["prompt"] = output["prompt"]
    if "GasUsed" in response:
        extra["gas-used"] = response["GasUsed"]
    error = response.get("Error")
    return Results(
        data=text,  # aos: no output is "", never null
        output=text,
        outbox=tuple(_with_tag_keys(m) for m in response.get("Messages") or ()),
        spawns=tuple(_with_tag_keys(m) for m in response.get("Spawns") or ()),
        assignments=tuple(response.get("Assignments") or ()),
        error=None if error is None else _text(error),
        extra=extra,
    )
