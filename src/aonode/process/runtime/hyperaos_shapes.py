"""hyper-aos's message shapes and Lua values, for :mod:`hyperaos`.

The aos message as HyperBEAM hands it to Lua (lowercase keys, commitments),
hyper-aos's outbox entries back in aos shape, and the conversions of values
between Python and a lupa Lua state (``tostring`` as Lua would print them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import lupa.lua53 as lua  # type: ignore[import-untyped]  # lupa ships no stubs

from aonode.process.runtime.base import Json


def body(msg: Mapping[str, Any]) -> Json:
    """The aos message as HyperBEAM hands it to Lua: lowercase keys, commitments.

    We do not keep the original signature, so every signed message appears as
    an httpsig RSA commitment by its Owner (``alg`` and ``type`` both set, the
    two spellings hyper-aos versions read).
    """
    doc: Json = {}
    for tag in msg.get("Tags") or ():
        doc.setdefault(str(tag["name"]).lower(), tag["value"])
    for field in ("Target", "Anchor", "Data"):
        if msg.get(field):
            doc[field.lower()] = msg[field]
    owner, sender, mid = msg.get("Owner"), msg.get("From"), msg.get("Id")
    if sender and owner and sender != owner:
        doc.setdefault("from-process", sender)
    commitments: Json = {}
    if owner:
        commitments[str(mid or "")] = {
            "commitment-device": "httpsig@1.0",
            "alg": "rsa-pss-sha512",
            "type": "rsa-pss-sha512",
            "committer": owner,
        }
    doc["commitments"] = commitments
    return doc


def ordered(box: Any) -> list[Json]:
    if isinstance(box, list):
        return [m for m in box if isinstance(m, dict)]
    if not isinstance(box, dict):
        return []
    keys = sorted(box, key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k))
    return [box[k] for k in keys if isinstance(box[k], dict)]


def is_patch(msg: Json) -> bool:
    low = {k.lower(): v for k, v in msg.items()}
    return low.get("method") == "PATCH" or low.get("device") == "patch@1.0"


def aos_message(msg: Json) -> Json:
    """A hyper-aos outbox entry in aos shape; keys keep the case Lua gave them."""
    special: dict[str, str] = {}
    tags: list[Json] = []
    for key, value in msg.items():
        low = key.lower()
        if low in ("target", "data", "anchor"):
            special.setdefault(low, value_text(value))
        elif low == "tags" and isinstance(value, (dict, list)):
            pairs = value.items() if isinstance(value, dict) else tag_list(value)
            tags.extend({"name": str(n), "value": value_text(v)} for n, v in pairs)
        elif value is not None:
            tags.append({"name": key, "value": value_text(value)})
    out: Json = {"Target": special.get("target"), "Data": special.get("data", ""), "Tags": tags}
    if "anchor" in special:
        out["Anchor"] = special["anchor"]
    for tag in tags:
        out.setdefault(tag["name"], tag["value"])
    return out


def tag_list(items: list[Any]) -> list[tuple[Any, Any]]:
    return [(t.get("name"), t.get("value")) for t in items if isinstance(t, dict)]


def value_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text(value)


def text(value: Any) -> str:
    """Lua's ``tostring`` for the values that cross the boundary."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        s = format(value, ".14g")
        return s if any(c in s for c in ".en") else s + ".0"
    if value is None:
        return "nil"
    return str(value)


def opt_text(value: Any) -> str | None:
    return None if value is None else text(value)


def to_lua(rt: Any, obj: Any) -> Any:
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, Mapping):
        table = rt.table()
        for key, value in obj.items():
            table[to_lua(rt, key)] = to_lua(rt, value)
        return table
    if isinstance(obj, (list, tuple)):
        table = rt.table()
        for i, value in enumerate(obj, 1):
            table[i] = to_lua(rt, value)
        return table
    return obj


def from_lua(value: Any, depth: int = 0) -> Any:
    """Lua value → JSON-able Python; arrays 1..n become lists, keys are sorted."""
    if depth > 64:
        raise ValueError("result nested too deeply (or recursive)")
    kind = lua.lua_type(value)
    if kind is None:
        return text(value) if isinstance(value, bytes) else value
    if kind != "table":
        return None
    items = [(k, from_lua(v, depth + 1)) for k, v in value.items()]
    keys = [k for k, _ in items]
    if items and all(type(k) is int for k in keys) and sorted(keys) == [*range(1, len(keys) + 1)]:
        return [v for _, v in sorted(items, key=lambda kv: kv[0])]
    return {text(k): v for k, v in sorted(items, key=lambda kv: text(kv[0])) if v is not None}
